// WirePlacedRun: one pass of a WireDecoder over a stream the way TLSWireChannel drives it with
// a placement pool: the stream arrives in pieces (one piece is one decrypted TLS record);
// before each piece the frames decoded so far are taken, and when the next frame is a Data
// payload worth placing (`placeablePayload`) and the "pool" has a buffer (the input decides),
// its payload goes into a buffer of its own (`beginPlacing`, `placedPayloadReceived`), the
// part already decoded copied over, with its CRC32C computed piece by piece as the channel's
// PlacedPayload does (FastCRC32C). A placed frame is returned with its payload put back, so
// the run compares equal to a plain decode of the same bytes.
import FuzzSupport
import TandemCore
import TandemIO

struct WirePlacedRun {
    var frames: [WireFrame] = []
    var error: WireError?
    /// How many payloads were placed (a fuzz run should see some).
    var placedCount = 0
    private var decoder = WireDecoder()
    /// The payload being placed and its running CRC32C.
    private var placed: [UInt8] = []
    private var placedCRC: UInt32 = 0
    private let minimumRemainingBytes: Int
    /// Bit k set: the k-th placing opportunity finds the pool empty (mod 64).
    private let poolEmptyMask: UInt64
    private var opportunities = 0

    init(_ stream: [UInt8], pieces: [Range<Int>], minimumRemainingBytes: Int, poolEmptyMask: UInt64) {
        self.minimumRemainingBytes = minimumRemainingBytes
        self.poolEmptyMask = poolEmptyMask
        for piece in pieces where error == nil {
            var rest = stream[piece]
            while error == nil, !rest.isEmpty {
                drain()
                guard error == nil, decoder.error == nil else { break }
                let remaining = decoder.placedPayloadRemainingBytes
                if remaining > 0 {
                    let part = rest.prefix(remaining)
                    placed.append(contentsOf: part)
                    placedCRC = part.withUnsafeBytes { FastCRC32C.checksum($0, seed: placedCRC) }
                    decoder.placedPayloadReceived(part.count)
                    rest = rest.dropFirst(part.count)
                } else if !beginPlacing() {
                    decoder.receive(upTo: rest.count) { room in
                        rest.withUnsafeBytes { room.copyMemory(from: $0) }
                        return rest.count
                    }
                    rest = []
                }
            }
            drain()
        }
        guard error == nil else { return }
        do { try decoder.finish() } catch { self.error = error }
    }

    /// The channel's `beginPlacing`: the part of the payload already decoded is copied into
    /// the buffer, checksummed as it is copied.
    private mutating func beginPlacing() -> Bool {
        guard let header = decoder.placeablePayload(minimumRemainingBytes: minimumRemainingBytes) else { return false }
        defer { opportunities += 1 }
        guard poolEmptyMask & (1 << UInt64(opportunities % 64)) == 0 else { return false }
        var buffer = [UInt8](repeating: 0x5A, count: Int(header.lengthBytes))
        var crc: UInt32 = 0
        var copied = 0
        do throws(WireError) {
            try decoder.beginPlacing { part in
                copied = part.count
                crc = buffer.withUnsafeMutableBytes { target in
                    FastCRC32C.copyChecksum(from: part, into: UnsafeMutableRawBufferPointer(rebasing: target[..<part.count]))
                }
            }
        } catch {
            return false  // the decoder failed; `next` reports it
        }
        placed = Array(buffer[..<copied])
        placedCRC = crc
        placedCount += 1
        return true
    }

    private mutating func drain() {
        do {
            while let frame = try decoder.next() { frames.append(restored(frame)) }
        } catch {
            self.error = error
        }
        fuzzCheck(decoder.error == error, "the placing decoder's error property disagrees with what it threw")
    }

    /// A placed frame with its payload put back where a plain decode has it; its CRC32C,
    /// computed piece by piece, checked against the software CRC of the bytes.
    private mutating func restored(_ frame: WireFrame) -> WireFrame {
        guard case .data(let data) = frame.message, let bytes = data.placedPayloadBytes else { return frame }
        fuzzCheck(data.payload.isEmpty, "a placed frame also carries a payload in the decoder")
        fuzzCheck(bytes == placed.count && bytes == Int(data.header.lengthBytes),
                  "a placed frame says \(bytes) bytes, \(placed.count) were placed, the header says \(data.header.lengthBytes)")
        fuzzCheck(placedCRC == CRC32C.checksum(placed), "the piecewise CRC32C of a placed payload is wrong")
        var frame = frame
        frame.message = .data(WireData(header: data.header, payload: placed[...]))
        placed = []
        placedCRC = 0
        return frame
    }
}
