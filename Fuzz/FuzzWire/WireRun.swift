// WireRun: one pass of a WireDecoder over a stream fed in given pieces, the way the peer link
// drives it: after every piece, `next()` until it returns nil or throws; at the end, `finish()`.
import FuzzSupport
import TandemCore

struct WireRun {
    var frames: [WireFrame] = []
    /// The first error from `next()` or `finish()`.
    var error: WireError?
    var decoder: WireDecoder

    /// `receiveEvery`: every n-th piece goes in through `receive(upTo:)` (the TLS path), the
    /// rest through `feed`; 0 feeds every piece.
    init(_ stream: [UInt8], pieces: [Range<Int>], checksOrdering: Bool = true, receiveEvery: Int = 0) {
        decoder = WireDecoder(checksOrdering: checksOrdering)
        for (index, piece) in pieces.enumerated() where error == nil {
            if receiveEvery > 0 && index % receiveEvery == 0 {
                receive(stream[piece])
            } else {
                decoder.feed(stream[piece])
            }
            drain()
        }
        guard error == nil else { return }
        do {
            try decoder.finish()
        } catch {
            self.error = error
        }
    }

    /// Offers more room than the piece (as a TLS read does) and writes only the piece.
    private mutating func receive(_ piece: ArraySlice<UInt8>) {
        let written = decoder.receive(upTo: piece.count + 7) { room in
            piece.withUnsafeBytes { room.copyMemory(from: $0) }
            return piece.count
        }
        fuzzCheck(written == piece.count, "receive reported \(written) of \(piece.count) bytes")
    }

    private mutating func drain() {
        do {
            while let frame = try decoder.next() { frames.append(frame) }
        } catch {
            self.error = error
        }
        fuzzCheck(decoder.error == error, "the decoder's error property disagrees with what it threw")
    }
}
