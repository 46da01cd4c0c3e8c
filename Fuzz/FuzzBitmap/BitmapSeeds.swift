// BitmapSeeds: the seed corpus, made by the real encoder (DirtyBitmap.bitmapExchangeMessages)
// and written as ExchangeOps: for each volume size an empty bitmap, a few runs, every block,
// and a block size of 64 KiB; and the garbage the survivor must refuse (runs that do not add
// up, an empty run, a chunk beyond the volume, chunks out of order or twice, a block size that
// changes, a wrong total, a BitmapDone too early). Each seed's first 8 bytes pick the volume
// size the bytes were made for, and whether and how the parted-bitmap file is spoilt.
import FuzzSupport
import TandemCore

enum BitmapSeeds {
    static func all() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(name: String, bytes: [UInt8])] = []
        for (index, volume) in BitmapFuzz.volumeSizes.enumerated() {
            for (name, blockBytes, sets) in [("empty", 4096, [BlockRun]()), ("runs", 4096, [BlockRun(first: 0, count: 1)]),
                                             ("all", 4096, [BlockRun(first: 0, count: .max)]), ("64k", 65536, [])] {
                var bitmap = DirtyBitmap(volumeSizeBytes: volume, blockBytes: UInt64(blockBytes))
                for run in sets { _ = bitmap.setBlocks(BlockRun(first: run.first, count: min(run.count, bitmap.blockCount))) }
                if name == "runs", bitmap.blockCount > 8 {
                    _ = bitmap.setBlocks(BlockRun(first: bitmap.blockCount / 2, count: 3))
                    _ = bitmap.setBlocks(BlockRun(first: bitmap.blockCount - 1, count: 1))
                }
                let ops = encode(bitmap.bitmapExchangeMessages())
                seeds.append(("volume-\(index)-\(name)", FuzzInput.file(seed: seed(volume: index, file: 0, spoil: 0), stream: ops)))
            }
        }
        // 16 MiB (index 4): 4096 blocks of 4 KiB.
        let blocks: UInt32 = 4096
        let half = blocks / 2
        let garbage: [(String, [WireMessage])] = [
            ("runs-do-not-add-up", [chunk(0, blocks, [100, 10]), .bitmapDone(setBlocks: 10)]),
            ("empty-run", [chunk(0, blocks, [blocks - 4, 0, 4]), .bitmapDone(setBlocks: 0)]),
            ("beyond-the-volume", [chunk(0, blocks * 2, [blocks * 2 - 8, 8]), .bitmapDone(setBlocks: 8)]),
            ("out-of-order", [chunk(0, half, [half]), chunk(UInt64(half) + 16, half - 16, [half - 16]), .bitmapDone(setBlocks: 0)]),
            ("twice", [chunk(0, half, [half - 1, 1]), chunk(0, half, [half - 1, 1]), .bitmapDone(setBlocks: 2)]),
            ("block-size-changes", [chunk(0, half, [half]), chunk(UInt64(half), half / 2, [half / 2], blockBytes: 8192)]),
            ("wrong-total", [chunk(0, blocks, [blocks - 96, 96]), .bitmapDone(setBlocks: 97)]),
            ("done-too-early", [chunk(0, half, [half - 2, 2]), .bitmapDone(setBlocks: 2)]),
            ("after-done", [chunk(0, blocks, [blocks]), .bitmapDone(setBlocks: 0), chunk(0, blocks, [blocks])]),
        ]
        for (name, messages) in garbage {
            seeds.append(("garbage-\(name)", FuzzInput.file(seed: seed(volume: 4, file: 0, spoil: 0), stream: encode(messages))))
        }
        // A receiver bound to 1024 blocks: 4 KiB blocks over 16 MiB would make 4096 (refused
        // before the bitmap is allocated, as a survivor refuses a peer's that is too fine); 16
        // KiB blocks make exactly 1024 (taken).
        seeds.append(("bound-too-fine", FuzzInput.file(seed: seed(volume: 4, file: 0, spoil: 0, bounded: true),
                                                         stream: encode([chunk(0, blocks, [blocks]), .bitmapDone(setBlocks: 0)]))))
        seeds.append(("bound-fits", FuzzInput.file(seed: seed(volume: 4, file: 0, spoil: 0, bounded: true),
                                                     stream: encode([chunk(0, 1024, [1000, 24], blockBytes: 16384),
                                                                     .bitmapDone(setBlocks: 24)]))))
        // A good file of 16 MiB, spoilt each way.
        var bitmap = DirtyBitmap(volumeSizeBytes: 16 << 20, blockBytes: 4096)
        _ = bitmap.setBlocks(BlockRun(first: 100, count: 20))
        for spoil in 1..<8 {
            seeds.append(("file-spoilt-\(spoil)",
                          FuzzInput.file(seed: seed(volume: 4, file: 0, spoil: spoil), stream: encode(bitmap.bitmapExchangeMessages()))))
        }
        return seeds
    }

    static func chunk(_ first: UInt64, _ count: UInt32, _ runs: [UInt32], blockBytes: UInt32 = 4096) -> WireMessage {
        .bitmapChunk(WireBitmapChunk(firstBlock: first, blockCount: count, blockBytes: blockBytes,
                                     runs: runs.flatMap { run in (0..<4).map { UInt8(truncatingIfNeeded: run >> (8 * $0)) } }))
    }

    /// The first seed whose choices pick this volume size, the generated frames for the file
    /// (0) and this spoiling (`bounded`: and the receiver's bound of 1024 blocks; else any).
    static func seed(volume: Int, file: Int, spoil: Int, bounded: Bool = false) -> UInt64 {
        var candidate: UInt64 = 1
        while true {
            let input = FuzzInput(seed: candidate, stream: [])
            let bound = BitmapFuzz.blocksMaxChoices[input.choice(BitmapFuzz.boundSalt, below: BitmapFuzz.blocksMaxChoices.count)]
            if input.choice(0x766F_6C75, below: BitmapFuzz.volumeSizes.count) == volume,
                input.choice(0x6669_6C65, below: 2) == file, input.choice(0x7370_6F69, below: 8) == spoil,
                !bounded || bound == 1024 {
                return candidate
            }
            candidate += 1
        }
    }

    /// Messages as ExchangeOps: raw first block, raw count, u32 runs (at most 127 a chunk).
    static func encode(_ messages: [WireMessage]) -> [UInt8] {
        var ops: [UInt8] = []
        func put<T: FixedWidthInteger>(_ value: T) {
            for index in 0..<MemoryLayout<T>.size { ops.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
        }
        for message in messages {
            switch message {
            case .bitmapChunk(let chunk):
                let shift = (0...8).first { UInt32(4096) << $0 == chunk.blockBytes }
                ops.append(0x70 | UInt8(shift ?? 0x0F))
                put(chunk.firstBlock)
                put(chunk.blockCount)
                if shift == nil { put(chunk.blockBytes) }
                let runCount = min(chunk.runs.count / 4, 127)
                ops.append(UInt8(runCount))
                ops += chunk.runs.prefix(runCount * 4)
            case .bitmapDone(let total):
                ops.append(0x80)
                put(total)
            default:
                continue
            }
        }
        return ops
    }
}
