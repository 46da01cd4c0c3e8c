// ExchangeModel: docs/protocol.md's rules for a bitmap exchange (*Bitmap exchange*), written
// again without PeerBitmapReceiver's code, to check its verdicts: chunks in order from block
// 0, once each, of one valid block size (whose bitmap stays within the receiver's bound of
// blocks), whose runs (alternating clear / set, starting clear,
// none empty but the first) add up to the chunk's count within the volume's blocks; then a
// BitmapDone after the whole volume whose total is the set blocks. ExchangeOps turns the
// fuzzer's stream into such messages, mostly almost right.
import FuzzSupport
import TandemCore

struct ExchangeModel {
    enum Outcome {
        case open
        case accepted(DirtyBitmap)
        case refused(index: Int, error: PeerBitmapError)
    }

    enum Verdict: Equatable {
        case open
        case accepted(runs: [BlockRun])
        case refused(index: Int)
    }

    let volumeSizeBytes: UInt64
    /// The receiver's bound on the bitmap's blocks (the first chunk's block size decides them).
    let blocksMax: UInt64
    private var blockBytes: UInt64?
    private var blocks: UInt64 = 0
    private var next: UInt64 = 0
    private var setTotal: UInt64 = 0
    private var setRuns: [BlockRun] = []
    private var index = 0
    private(set) var verdict = Verdict.open

    init(volumeSizeBytes: UInt64, blocksMax: UInt64 = UInt64(UInt32.max)) {
        self.volumeSizeBytes = volumeSizeBytes
        self.blocksMax = blocksMax
    }

    mutating func take(_ message: WireMessage) {
        guard verdict == .open else { return }
        defer { index += 1 }
        switch message {
        case .bitmapChunk(let chunk):
            if !takeChunk(chunk) { verdict = .refused(index: index) }
        case .bitmapDone(let total):
            guard blockBytes != nil, next == blocks, total == setTotal else { return verdict = .refused(index: index) }
            verdict = .accepted(runs: setRuns)
        default:
            verdict = .refused(index: index)
        }
    }

    private mutating func takeChunk(_ chunk: WireBitmapChunk) -> Bool {
        let size = UInt64(chunk.blockBytes)
        if blockBytes == nil {
            guard size >= 4096, size <= 1 << 20, size & (size - 1) == 0 else { return false }
            blocks = volumeSizeBytes / size + (volumeSizeBytes % size == 0 ? 0 : 1)
            guard blocks <= UInt64(UInt32.max), blocks <= blocksMax else { return false }
            blockBytes = size
        }
        guard size == blockBytes, chunk.firstBlock == next, chunk.runs.count % 4 == 0 else { return false }
        guard chunk.firstBlock <= blocks, UInt64(chunk.blockCount) <= blocks - chunk.firstBlock else { return false }
        var lengths: [UInt64] = []
        for start in stride(from: 0, to: chunk.runs.count, by: 4) {
            lengths.append((0..<4).reduce(UInt64(0)) { $0 | UInt64(chunk.runs[start + $1]) << (8 * UInt64($1)) })
        }
        guard lengths.dropFirst().allSatisfy({ $0 > 0 }), lengths.reduce(0, +) == UInt64(chunk.blockCount) else { return false }
        var position = chunk.firstBlock
        for (number, length) in lengths.enumerated() {
            if number % 2 == 1 {
                if let last = setRuns.last, last.end == position {
                    setRuns[setRuns.count - 1] = BlockRun(first: last.first, count: last.count + length)
                } else {
                    setRuns.append(BlockRun(first: position, count: length))
                }
                setTotal += length
            }
            position += length
        }
        next += UInt64(chunk.blockCount)
        return true
    }

    /// The receiver's outcome agrees with the model's.
    func check(_ outcome: Outcome) {
        switch (outcome, verdict) {
        case (.open, .open): return
        case (.accepted(let bitmap), .accepted(let runs)):
            fuzzCheck(Self.runs(of: bitmap) == runs, "accepted bits \(Self.runs(of: bitmap).prefix(8)), the model's \(runs.prefix(8))")
        case (.refused(let index, _), .refused(let expected)):
            fuzzCheck(index == expected, "refused at frame \(index), the model at \(expected)")
        default:
            fuzzCheck(false, "the receiver: \(outcome), the model: \(verdict)")
        }
    }

    /// A bitmap's set blocks as maximal runs.
    static func runs(of bitmap: DirtyBitmap) -> [BlockRun] {
        var runs: [BlockRun] = []
        var block: UInt64 = 0
        while let run = bitmap.nextDirtyRun(from: block) {
            if let last = runs.last, last.end == run.first {
                runs[runs.count - 1] = BlockRun(first: last.first, count: last.count + run.count)
            } else {
                runs.append(run)
            }
            block = run.end
        }
        return runs
    }

    /// What a parted-bitmap file of these frames holds: the model's bitmap when the frames
    /// decode whole to chunks and one accepted BitmapDone at their end; nil otherwise.
    static func fileBitmap(_ frames: [UInt8], volumeSizeBytes: UInt64, blocksMax: UInt64) -> [BlockRun]? {
        var decoder = WireDecoder(checksOrdering: false)
        decoder.feed(frames)
        var model = ExchangeModel(volumeSizeBytes: volumeSizeBytes, blocksMax: blocksMax)
        do {
            while let frame = try decoder.next() {
                guard model.verdict == .open else { return nil }
                model.take(frame.message)
            }
        } catch { return nil }
        guard decoder.bufferedBytes == 0, case .accepted(let runs) = model.verdict else { return nil }
        return runs
    }
}

/// The fuzzer's stream as exchange messages. Each op starts with a tag byte:
/// - bit 7 clear, a chunk: bit 6 a raw u64 first block (else the expected one plus a signed
///   byte), bit 5 a raw u32 count (else a u16 plus 1), bits 0–3 the block size (4 KiB << n
///   for n ≤ 8, else a raw u32); then a byte n: n & 0x7F runs (u16 each, u32 with bit 4 of the
///   tag), and with bit 7 of n the count is the runs' sum;
/// - bit 7 set, a BitmapDone: bit 0 the set blocks so far plus a signed byte, else a raw u64.
enum ExchangeOps {
    struct Reader {
        let bytes: [UInt8]
        var offset = 0
        mutating func u8() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }
        mutating func value(_ width: Int) -> UInt64? {
            var value: UInt64 = 0
            for index in 0..<width {
                guard let byte = u8() else { return nil }
                value |= UInt64(byte) << (8 * UInt64(index))
            }
            return value
        }
    }

    static let opsMax = 256

    static func messages(from stream: [UInt8], volumeSizeBytes: UInt64) -> [WireMessage] {
        var reader = Reader(bytes: stream)
        var messages: [WireMessage] = []
        var next: UInt64 = 0
        var set: UInt64 = 0
        while messages.count < opsMax, let tag = reader.u8() {
            if tag & 0x80 != 0 {
                guard let total = tag & 1 != 0 ? reader.u8().map({ UInt64(bitPattern: Int64(set) &+ Int64(Int8(bitPattern: $0))) })
                    : reader.value(8) else { break }
                messages.append(.bitmapDone(setBlocks: total))
                continue
            }
            guard let first = tag & 0x40 != 0 ? reader.value(8)
                    : reader.u8().map({ UInt64(bitPattern: Int64(bitPattern: next) &+ Int64(Int8(bitPattern: $0))) }),
                var count = tag & 0x20 != 0 ? reader.value(4) : reader.value(2).map({ $0 + 1 }),
                let blockBytes = tag & 0x0F <= 8 ? UInt64(4096 << (tag & 0x0F)) : reader.value(4),
                let shape = reader.u8()
            else { break }
            var runs: [UInt8] = []
            var sum: UInt64 = 0
            for number in 0..<Int(shape & 0x7F) {
                guard let run = reader.value(tag & 0x10 != 0 ? 4 : 2) else { break }
                sum &+= run
                if number % 2 == 1 { set &+= run }
                runs += (0..<4).map { UInt8(truncatingIfNeeded: run >> (8 * UInt64($0))) }
            }
            if shape & 0x80 != 0 { count = sum }
            messages.append(.bitmapChunk(WireBitmapChunk(firstBlock: first, blockCount: UInt32(truncatingIfNeeded: count),
                                                         blockBytes: UInt32(truncatingIfNeeded: blockBytes), runs: runs)))
            next = first &+ UInt64(UInt32(truncatingIfNeeded: count))
        }
        return messages
    }
}
