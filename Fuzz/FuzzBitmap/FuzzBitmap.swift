// FuzzBitmap: a split brain's bitmap exchange and the parted-bitmap file under libFuzzer
// (docs/fuzzing.md). The peer's BitmapChunk / BitmapDone frames go through the wire decoder
// (whole and in pieces) into PeerBitmapReceiver, as the survivor takes them; the same frames,
// or the stream's raw bytes, framed as a `<name>.parted-bitmap` file, go through
// PartedBitmapCodec.decode, as a restart reads it. Invariants, beyond "no trap":
// - the receiver accepts a stream exactly when an independent model of docs/protocol.md's
//   rules (ExchangeModel) does, refuses it at the same frame, and then yields exactly the
//   model's bits; after a refusal it takes nothing more; a quarter of the inputs bound the
//   receiver's bitmap to 1024 blocks (a block size that makes more is refused before the
//   bitmap is allocated, as a survivor bounds a peer's by its own geometry);
// - an accepted bitmap, sent again (`bitmapExchangeMessages`), is received to the same bits,
//   and written as a parted-bitmap file, decodes to the same generation and bits;
// - a file decodes only with its magic, a matching CRC32C, this volume's size, no unknown
//   flag, a non-zero generation and frames that fill its length exactly, chunks then one
//   BitmapDone the receiver accepts; a decoded file is the model's bitmap;
// - every failure's description is at most 400 bytes (status and the log carry it).
import FuzzSupport
import TandemCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBitmapTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    BitmapFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !TANDEM_LIBFUZZER
@main
enum FuzzBitmapTool {
    static func main() {
        FuzzTool.main(name: "FuzzBitmap", seeds: BitmapSeeds.all, check: BitmapFuzz.check)
    }
}
#endif

enum BitmapFuzz {
    static let descriptionBytesMax = 400
    /// The volumes a receiver may be for: one partial block, whole and partial blocks, a few
    /// pages of bits; at most 64 Ki blocks of 4 KiB, so a model walk stays cheap.
    static let volumeSizes: [UInt64] = [1, 4096, 4097, (1 << 20) + 1, 16 << 20, (256 << 20) + 4096]
    /// The receiver's bound on the peer's bitmap: the format's own, or 1024 blocks (16 MiB at
    /// 4 KiB blocks is refused, at 16 KiB taken; 256 MiB + 4 KiB needs 512 KiB blocks).
    static let blocksMaxChoices: [UInt64] = [DirtyBitmap.blockCountMax, DirtyBitmap.blockCountMax,
                                             DirtyBitmap.blockCountMax, 1024]
    static let boundSalt: UInt64 = 0x626F_756E

    static func check(_ bytes: UnsafeRawBufferPointer) {
        let input = FuzzInput(bytes)
        let volume = volumeSizes[input.choice(0x766F_6C75, below: volumeSizes.count)]
        let blocksMax = blocksMaxChoices[input.choice(boundSalt, below: blocksMaxChoices.count)]
        let messages = ExchangeOps.messages(from: input.stream, volumeSizeBytes: volume)
        var frames: [UInt8] = []
        for message in messages {
            guard let encoded = try? WireEncoder.encode(message, promotionNumber: 0) else { continue }
            frames += encoded
        }
        checkExchange(input, frames: frames, volume: volume, blocksMax: blocksMax)
        // The file around the generated frames, or around the raw stream (any frame type).
        checkFile(input, frames: input.choice(0x6669_6C65, below: 2) == 0 ? frames : input.stream, volume: volume,
                  blocksMax: blocksMax)
    }

    /// The frames through the decoder and the receiver, whole and in pieces; the outcome is
    /// the model's. Returns the model's verdict for the file check.
    static func checkExchange(_ input: FuzzInput, frames: [UInt8], volume: UInt64, blocksMax: UInt64) {
        let whole = receive(pieces: [0..<frames.count], of: frames, volume: volume, blocksMax: blocksMax)
        let pieces = receive(pieces: FuzzInput(seed: input.seed, stream: frames).chunks(), of: frames, volume: volume,
                             blocksMax: blocksMax)
        fuzzCheck(whole.summary == pieces.summary, "whole \(whole.summary), in pieces \(pieces.summary)")
        var model = ExchangeModel(volumeSizeBytes: volume, blocksMax: blocksMax)
        for message in whole.messages { model.take(message) }
        model.check(whole.outcome)
        if case .accepted(let bitmap) = whole.outcome {
            // Sent again: the same bits; written as a file: the same generation and bits.
            var again = PeerBitmapReceiver(volumeSizeBytes: volume, blocksMax: blocksMax)
            var result: DirtyBitmap?
            for message in bitmap.bitmapExchangeMessages() {
                do {
                    switch message {
                    case .bitmapChunk(let chunk): try again.receive(chunk)
                    case .bitmapDone(let total): result = try again.done(setBlocks: total)
                    default: fuzzCheck(false, "bitmapExchangeMessages made a \(message.type)")
                    }
                } catch { fuzzCheck(false, "a bitmap's own messages were refused: \(error)") }
            }
            fuzzCheck(result.map { ExchangeModel.runs(of: $0) == ExchangeModel.runs(of: bitmap) } == true,
                      "a bitmap sent again differs")
            let parted = PartedBitmap(partingGeneration: 0x5EED, bitmap: bitmap)
            do {
                let file = try PartedBitmapCodec.encode(parted)
                let back = try PartedBitmapCodec.decode(file, volumeSizeBytes: volume, blocksMax: blocksMax)
                fuzzCheck(back.partingGeneration == 0x5EED && ExchangeModel.runs(of: back.bitmap) == ExchangeModel.runs(of: bitmap),
                          "a parted-bitmap file does not decode to what was written")
            } catch { fuzzCheck(false, "a parted-bitmap file of an accepted bitmap was refused: \(error)") }
        }
    }

    struct Received {
        var messages: [WireMessage] = []
        var outcome: ExchangeModel.Outcome = .open
        var summary: String {
            switch outcome {
            case .accepted(let bitmap): return "\(messages.count) frames, accepted \(ExchangeModel.runs(of: bitmap))"
            case .refused(let index, let error): return "\(messages.count) frames, refused at \(index): \(error)"
            case .open: return "\(messages.count) frames, open"
            }
        }
    }

    /// Feeds the frames in `pieces`; frames go to the receiver as the survivor does (stopping
    /// at its first error or the BitmapDone).
    static func receive(pieces: [Range<Int>], of frames: [UInt8], volume: UInt64, blocksMax: UInt64) -> Received {
        var decoder = WireDecoder(checksOrdering: false)
        var receiver = PeerBitmapReceiver(volumeSizeBytes: volume, blocksMax: blocksMax)
        var received = Received()
        for piece in pieces {
            decoder.feed(frames[piece])
            while case .open = received.outcome, let frame = try? decoder.next() {
                received.messages.append(frame.message)
                let index = received.messages.count - 1
                do {
                    switch frame.message {
                    case .bitmapChunk(let chunk): try receiver.receive(chunk)
                    case .bitmapDone(let total): received.outcome = .accepted(try receiver.done(setBlocks: total))
                    default: fuzzCheck(false, "ExchangeOps made a \(frame.message.type)")
                    }
                } catch {
                    let text = "\(error)"
                    fuzzCheck(text.utf8.count <= descriptionBytesMax, "a description of \(text.utf8.count) bytes")
                    received.outcome = .refused(index: index, error: error)
                }
            }
        }
        if case .refused = received.outcome {
            // Refused once, refused for good.
            do {
                try receiver.receive(WireBitmapChunk(firstBlock: 0, blockCount: 1, blockBytes: 4096, runs: [1, 0, 0, 0]))
                fuzzCheck(false, "a receiver took a chunk after refusing")
            } catch { fuzzCheck(error == .finished, "after a refusal: \(error), not finished") }
        }
        return received
    }

    /// The parted-bitmap file around `frames`; the seed may spoil the magic, the size, the
    /// flags (an undefined bit), the generation, the length or the checksum, one at a time (4: a
    /// defined flag).
    static func checkFile(_ input: FuzzInput, frames: [UInt8], volume: UInt64, blocksMax: UInt64) {
        let spoil = input.choice(0x7370_6F69, below: 8)
        var file = PartedBitmapCodec.magic
        func put<T: FixedWidthInteger>(_ value: T) {
            for index in 0..<MemoryLayout<T>.size { file.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
        }
        put(spoil == 1 ? UInt64(0) : UInt64(0x5EED))
        put(spoil == 2 ? volume + 1 : volume)
        put(spoil == 3 ? UInt32(8) : UInt32(spoil == 4 ? 1 : 0))  // 8: no flag bit 3 is defined
        put(UInt32(spoil == 5 ? frames.count + 1 : frames.count))
        file += frames
        put(CRC32C.checksum(file) ^ (spoil == 6 ? 1 : 0))
        if spoil == 7 { file[0] ^= 0x20 }
        let expected = [0, 4].contains(spoil) ? ExchangeModel.fileBitmap(frames, volumeSizeBytes: volume, blocksMax: blocksMax) : nil
        do {
            let parted = try PartedBitmapCodec.decode(file, volumeSizeBytes: volume, blocksMax: blocksMax)
            fuzzCheck(expected != nil, "a file the model refuses (spoilt: \(spoil)) was loaded")
            fuzzCheck(parted.partingGeneration == 0x5EED, "generation \(parted.partingGeneration)")
            fuzzCheck(ExchangeModel.runs(of: parted.bitmap) == expected, "the file's bits differ from the model's")
        } catch {
            fuzzCheck(error.description.utf8.count <= descriptionBytesMax, "a description of \(error.description.utf8.count) bytes")
            fuzzCheck(expected == nil, "a file the model accepts was refused: \(error)")
        }
    }
}

extension FuzzInput {
    /// An input of this seed and stream (to cut another stream by the same plan).
    init(seed: UInt64, stream: [UInt8]) {
        self = FuzzInput.file(seed: seed, stream: stream).withUnsafeBytes { FuzzInput($0) }
    }
}
