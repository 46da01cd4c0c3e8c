// FuzzWire: the peer protocol's stream decoder (WireDecoder) under libFuzzer, and the Data
// payload restore path behind it (WirePayload: LZ4 and CRC32C). Invariants, beyond "no trap":
// - the same bytes fed whole and fed in random pieces (via `feed` and `receive(upTo:)`)
//   give the same frames and the same error;
// - every decoded frame re-encodes to exactly the bytes it was decoded from, so frames are
//   contiguous and nothing is skipped or invented;
// - a failed decoder stays failed with the same error, whatever is fed after;
// - with ordering checks on, the decoder refuses exactly the first frame that breaks the
//   ordering rules of docs/protocol.md (an independent model here), and otherwise agrees
//   with the decoder that does not check ordering;
// - a payload restores only if its CRC32C (checked again here with TandemCore's software
//   CRC) matches, and a restored block survives prepare/restore (compressed or not).
import TandemCore
import TandemIO
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWireTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    WireFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !TANDEM_LIBFUZZER
@main
enum FuzzWireTool {
    static func main() {
        FuzzTool.main(name: "FuzzWire", seeds: WireSeeds.all, check: WireFuzz.check)
    }
}
#endif

enum WireFuzz {
    static func check(_ bytes: UnsafeRawBufferPointer) {
        var input = FuzzInput(bytes)
        // Mutations almost never keep a CRC32C right, so half of the inputs get their header
        // and block checksums recomputed: that lets the fuzzer reach every body decoder with
        // any type and length, and a successful restore with any block, while the other
        // half keeps the checksum checks covered.
        if input.choice(0xC4C, below: 2) == 0 { input.stream = WireChecksumFixup.apply(input.stream) }
        let whole = WireRun(input.stream, pieces: input.stream.isEmpty ? [] : [0..<input.stream.count])
        let pieces = WireRun(input.stream, pieces: input.chunks(), receiveEvery: 1 + input.choice(0x5EED, below: 3))
        fuzzCheck(whole.frames == pieces.frames, "fed in pieces, the frames differ")
        fuzzCheck(whole.error == pieces.error, "fed in pieces, the error differs: \(String(describing: whole.error)) vs \(String(describing: pieces.error))")
        checkPlacing(input, whole)
        checkReencoding(whole, input.stream)
        checkStaysFailed(whole)
        let unordered = WireRun(input.stream, pieces: [0..<input.stream.count], checksOrdering: false)
        checkOrdering(ordered: whole, unordered: unordered)
        for frame in unordered.frames {
            if case .data(let data) = frame.message { WirePayloadFuzz.check(data) }
        }
    }

    /// The placing decode agrees with the plain one; where placing starts (the least payload
    /// still to come) and which opportunities find the pool empty are the input's choice.
    static func checkPlacing(_ input: FuzzInput, _ whole: WireRun) {
        let minimumRemainingBytes = [1, 2, 64, 4096][input.choice(0x91ACE, below: 4)]
        let poolEmptyMask = input.choice(0x9001, below: 2) == 0 ? 0 : UInt64(input.choice(0x9002, below: 1 << 16))
        let placing = WirePlacedRun(input.stream, pieces: input.chunks(), minimumRemainingBytes: minimumRemainingBytes,
                                    poolEmptyMask: poolEmptyMask)
        fuzzCheck(placing.frames == whole.frames, "decoded with placed payloads, the frames differ")
        // Placing validates a Data frame's fields (and its order) once they have arrived, not
        // once its whole body has: a stream that ends inside such a frame fails on the fields
        // there, where the plain decode can only say it was truncated.
        let earlier: Bool
        switch (whole.error, placing.error) {
        case (.truncated?, .inconsistentBody(.data, _)?), (.truncated?, .outOfOrder(.data, _)?): earlier = true
        default: earlier = false
        }
        fuzzCheck(placing.error == whole.error || earlier,
                  "decoded with placed payloads, the error differs: \(String(describing: whole.error)) vs \(String(describing: placing.error))")
    }

    /// Frame k re-encodes to the k-th run of bytes of the stream; what is left after the last
    /// frame is exactly what the error accounts for.
    static func checkReencoding(_ run: WireRun, _ stream: [UInt8]) {
        var position = 0
        for frame in run.frames {
            let encoded: [UInt8]
            do {
                encoded = try WireEncoder.encode(frame.message, promotionNumber: frame.header.promotionNumber)
            } catch {
                fuzzCheck(false, "a decoded frame does not encode: \(error)")
                return
            }
            fuzzCheck(encoded.count == WireFormat.headerBytes + frame.header.bodyBytes, "re-encoded length differs from the header's")
            fuzzCheck(position + encoded.count <= stream.count, "a frame claims bytes past the end of the stream")
            fuzzCheck(stream[position..<(position + encoded.count)].elementsEqual(encoded), "a decoded frame does not re-encode to its bytes")
            position += encoded.count
        }
        switch run.error {
        case nil: fuzzCheck(position == stream.count, "decoding ended cleanly with \(stream.count - position) bytes unaccounted")
        case .truncated(let buffered)?: fuzzCheck(position + buffered == stream.count, "truncation reports \(buffered) bytes, \(stream.count - position) left")
        case .some: fuzzCheck(position < stream.count, "an error with no bytes left to cause it")
        }
    }

    /// After an error: the same error from `next`, `finish` and `error`, and feeding changes nothing.
    static func checkStaysFailed(_ run: WireRun) {
        guard let error = run.error else { return }
        var decoder = run.decoder
        let buffered = decoder.bufferedBytes
        decoder.feed(WireSeeds.validStream)
        fuzzCheck(decoder.bufferedBytes == buffered, "a failed decoder took more bytes")
        fuzzCheck(decoder.error == error, "a failed decoder changed its error")
        do {
            _ = try decoder.next()
            fuzzCheck(false, "a failed decoder returned a frame or nil")
        } catch {
            fuzzCheck(error == run.error, "a failed decoder threw a different error")
        }
        do {
            try decoder.finish()
            fuzzCheck(false, "a failed decoder finished cleanly")
        } catch {
            fuzzCheck(error == run.error, "a failed decoder's finish threw a different error")
        }
    }

    static func checkOrdering(ordered: WireRun, unordered: WireRun) {
        var model = WireOrderModel()
        for frame in ordered.frames {
            fuzzCheck(model.accepts(frame.message), "the decoder accepted a frame the ordering rules refuse: \(frame.message.type)")
        }
        let count = ordered.frames.count
        fuzzCheck(unordered.frames.count >= count, "ordering checks let more frames through than none")
        fuzzCheck(Array(unordered.frames[..<count]) == ordered.frames, "ordering checks changed a frame")
        if case .outOfOrder? = ordered.error {
            fuzzCheck(unordered.frames.count > count, "an ordering error on a frame that does not decode")
            fuzzCheck(!model.accepts(unordered.frames[count].message), "the decoder refused a frame the ordering rules allow")
        } else {
            fuzzCheck(unordered.frames.count == count, "no ordering error, yet fewer frames than without checks")
            fuzzCheck(unordered.error == ordered.error, "ordering checks changed a non-ordering error")
        }
    }
}
