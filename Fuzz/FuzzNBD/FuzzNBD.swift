// FuzzNBD: the NBD server handshake (NBDHandshake) and transmission request headers
// (NBDRequestHeader) under libFuzzer; the stream is what a client sends. Invariants, beyond
// "no trap":
// - the same bytes fed whole and in random pieces (the unconsumed rest offered again with
//   the next piece, as NBDConnection does) give the same outcome, consumption and replies;
// - replies are well formed: each option the server consumed is answered in order by zero or
//   more INFO/SERVER replies and exactly one ACK or error for that option, except where the
//   protocol says none (EXPORT_NAME, a refused header); a reply stays within a stated bound;
// - the handshake ends in transmission only after GO's ACK or EXPORT_NAME's export data;
// - a finished handshake consumes nothing more, says nothing more and keeps its outcome;
// - after it, each 28-byte request header parses iff its magic is right, and re-encodes to
//   the same bytes.
import FuzzSupport
import TandemCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNBDTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    NBDFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !TANDEM_LIBFUZZER
@main
enum FuzzNBDTool {
    static func main() {
        FuzzTool.main(name: "FuzzNBD", seeds: NBDSeeds.all, check: NBDFuzz.check)
    }
}
#endif

enum NBDFuzz {
    static let export = NBDExport(
        name: "r0", description: "fuzz export", sizeBytes: 1 << 30, transmissionFlags: 0x0D6D)

    static func check(_ bytes: UnsafeRawBufferPointer) {
        let input = FuzzInput(bytes)
        let whole = HandshakeRun(input.stream, pieces: input.stream.isEmpty ? [] : [0..<input.stream.count], export: export)
        let pieces = HandshakeRun(input.stream, pieces: input.chunks(), export: export)
        fuzzCheck(whole.outcome == pieces.outcome, "fed in pieces, the outcome differs: \(whole.outcome) vs \(pieces.outcome)")
        fuzzCheck(whole.consumed == pieces.consumed, "fed in pieces, consumption differs")
        fuzzCheck(whole.output == pieces.output, "fed in pieces, the replies differ")
        NBDReplyCheck(stream: input.stream, run: whole, export: export).check()
        checkStaysFinished(whole, stream: input.stream)
        if case .transmission = whole.outcome { checkRequestHeaders(input.stream[whole.consumed...]) }
    }

    static func checkStaysFinished(_ run: HandshakeRun, stream: [UInt8]) {
        guard run.outcome != .needMore else { return }
        var handshake = run.handshake
        let more = stream[run.consumed...] + NBDSeeds.goStream
        let (used, outcome) = more.withUnsafeBytes { handshake.feed($0) }
        fuzzCheck(used == 0, "a finished handshake went on consuming")
        fuzzCheck(outcome == run.outcome, "a finished handshake changed its outcome to \(outcome)")
        fuzzCheck(handshake.takeOutput().isEmpty, "a finished handshake replied again")
    }

    /// Headers parse iff the magic is right; a parsed header re-encodes to its bytes. The
    /// connection closes at the first bad magic, so checking stops there.
    static func checkRequestHeaders(_ rest: ArraySlice<UInt8>) {
        var start = rest.startIndex
        while start + NBD.requestHeaderBytes <= rest.endIndex {
            let bytes = Array(rest[start..<(start + NBD.requestHeaderBytes)])
            let header = bytes.withUnsafeBytes { NBDRequestHeader.parse($0) }
            let magic = bytes.withUnsafeBytes { $0.loadBE(UInt32.self, at: 0) }
            guard let header else {
                fuzzCheck(magic != NBD.requestMagic, "a header with the right magic did not parse")
                return
            }
            fuzzCheck(magic == NBD.requestMagic, "a header with the wrong magic parsed")
            var encoded = [UInt8](repeating: 0, count: NBD.requestHeaderBytes)
            encoded.withUnsafeMutableBytes { header.encode(into: $0) }
            fuzzCheck(encoded == bytes, "a request header does not re-encode to its bytes")
            start += NBD.requestHeaderBytes
        }
    }
}

/// One pass of the handshake over a stream fed in pieces, as NBDConnection drives it: the
/// bytes not consumed stay in the staging buffer and are offered again with the next piece.
struct HandshakeRun {
    var outcome = NBDHandshake.Outcome.needMore
    var consumed = 0
    var output: [UInt8] = []
    var handshake: NBDHandshake

    init(_ stream: [UInt8], pieces: [Range<Int>], export: NBDExport) {
        handshake = NBDHandshake(export: export)
        for piece in pieces {
            let available = stream[consumed..<piece.upperBound]
            let (used, outcome) = available.withUnsafeBytes { handshake.feed($0) }
            fuzzCheck(used >= 0 && used <= available.count, "the handshake consumed \(used) of \(available.count) bytes")
            consumed += used
            output += handshake.takeOutput()
            if outcome != .needMore {
                self.outcome = outcome
                return
            }
        }
    }
}
