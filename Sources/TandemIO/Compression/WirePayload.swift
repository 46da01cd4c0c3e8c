// The two ends of a Data message's payload: the sender decides whether LZ4 pays and computes
// the CRC32C of the uncompressed block; the receiver restores the block into its own buffer
// and checks the CRC32C before anything may be written.
import TandemCore

public enum WirePayloadError: Error, Equatable, Sendable, CustomStringConvertible {
    case bufferSizeMismatch(expectedBytes: Int, bufferBytes: Int)
    case decompression(LZ4Error)
    case checksumMismatch(expected: UInt32, computed: UInt32, offsetBytes: UInt64)
    /// A compressed payload too short to restore to the length its header claims.
    case implausibleLength(lengthBytes: Int, payloadBytes: Int)

    public var description: String {
        switch self {
        case .bufferSizeMismatch(let expected, let buffer):
            return "block of \(expected) bytes does not fit a \(buffer)-byte buffer"
        case .decompression(let error):
            return error.description
        case .checksumMismatch(let expected, let computed, let offset):
            return
                "CRC32C mismatch for block at offset \(offset): carried 0x\(String(expected, radix: 16)), computed 0x\(String(computed, radix: 16))"
        case .implausibleLength(let length, let payload):
            return "a compressed payload of \(payload) bytes cannot restore to \(length) bytes (LZ4 expands at most \(LZ4.expansionMax)-fold)"
        }
    }
}

public enum WirePayload {
    /// Prepares a block for sending. Returns the header to send and, when compression paid,
    /// the compressed length in `scratch` (send `scratch[0..<n]`); nil means send `block`.
    public static func prepare(
        block: UnsafeRawBufferPointer, epoch: UInt64, sequence: UInt64, offsetBytes: UInt64, fua: Bool,
        acknowledgedAfterApply: Bool = false, compress: Bool, scratch: UnsafeMutableRawBufferPointer
    ) -> (header: WireDataHeader, compressedBytes: Int?) {
        precondition(!block.isEmpty && block.count <= WireFormat.maxPayloadBytes, "block size out of range")
        var flags: WireDataFlags = fua ? [.fua] : []
        if acknowledgedAfterApply { flags.insert(.acknowledgedAfterApply) }
        let compressed = compress ? LZ4.compressIfItPays(block, into: scratch) : nil
        if compressed != nil { flags.insert(.compressed) }
        let header = WireDataHeader(
            epoch: epoch, sequence: sequence, offsetBytes: offsetBytes, lengthBytes: UInt32(block.count),
            flags: flags, crc32c: FastCRC32C.checksum(UnsafeRawBufferPointer(block)))
        return (header, compressed)
    }

    /// The bytes a receiver allocates to restore a Data frame's block, checked against what
    /// arrived before anything is allocated: an uncompressed payload is the block; a
    /// compressed one cannot restore to more than LZ4 can expand it to, so a peer's claimed
    /// length alone (up to 32 MiB for a few bytes) sizes nothing.
    public static func restoredBytes(_ header: WireDataHeader, payloadBytes: Int) throws(WirePayloadError) -> Int {
        let length = Int(header.lengthBytes)
        if header.flags.contains(.compressed) {
            guard length <= LZ4.decompressedBytesMax(compressedBytes: payloadBytes) else {
                throw .implausibleLength(lengthBytes: length, payloadBytes: payloadBytes)
            }
        } else if payloadBytes != length {
            throw .bufferSizeMismatch(expectedBytes: length, bufferBytes: payloadBytes)
        }
        return length
    }

    /// Restores a received block into `destination` (exactly `header.lengthBytes` long) and
    /// verifies its CRC32C. On any error the destination must not be written to disk.
    public static func restore(
        _ header: WireDataHeader, payload: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) throws(WirePayloadError) {
        let length = try restoredBytes(header, payloadBytes: payload.count)
        guard destination.count == length else {
            throw .bufferSizeMismatch(expectedBytes: length, bufferBytes: destination.count)
        }
        let computed: UInt32
        if header.flags.contains(.compressed) {
            do { try LZ4.decompress(payload, into: destination) } catch { throw .decompression(error) }
            computed = FastCRC32C.checksum(UnsafeRawBufferPointer(destination))
        } else {
            computed = FastCRC32C.copyChecksum(from: payload, into: destination)  // one pass over the block
        }
        guard computed == header.crc32c else {
            throw .checksumMismatch(expected: header.crc32c, computed: computed, offsetBytes: header.offsetBytes)
        }
    }

    /// Verifies an uncompressed payload in place, for a receiver that writes straight from
    /// the buffer the payload arrived in.
    public static func verify(_ header: WireDataHeader, payload: UnsafeRawBufferPointer) throws(WirePayloadError) {
        precondition(!header.flags.contains(.compressed), "compressed payloads are verified by restore")
        let computed = FastCRC32C.checksum(payload)
        guard computed == header.crc32c, payload.count == Int(header.lengthBytes) else {
            throw .checksumMismatch(expected: header.crc32c, computed: computed, offsetBytes: header.offsetBytes)
        }
    }
}
