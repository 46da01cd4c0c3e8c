import TandemCore
import Testing

@Suite struct CyclePlannerTests {
    static let block: UInt64 = 4096

    private func frozenBitmap(blocks: UInt64 = 4096, runs: [BlockRun]) -> DirtyBitmap {
        var bitmap = DirtyBitmap(volumeSizeBytes: blocks * Self.block, blockBytes: Self.block)
        for run in runs { bitmap.setBlocks(run) }
        bitmap.freezeCycle()
        return bitmap
    }

    private func planner(_ bitmap: DirtyBitmap, reads: Int = 32) -> CyclePlanner {
        var planner = CyclePlanner(
            volumeSizeBytes: bitmap.volumeSizeBytes, blockBytes: Self.block, readsInFlightMax: reads, writesAdmittedMax: 64)
        planner.begin(cycle: 1)
        return planner
    }

    /// Issues and completes every read; returns them.
    private func drain(_ planner: inout CyclePlanner, _ bitmap: DirtyBitmap) -> [CyclePlanner.Read] {
        var reads: [CyclePlanner.Read] = []
        while let read = planner.nextRead(in: bitmap) {
            reads.append(read)
            planner.readCompleted(regionIndex: read.regionIndex)
        }
        return reads
    }

    @Test func adjacentDirtyBlocksAreCoalescedUpToOneMebibyte() {
        let bitmap = frozenBitmap(runs: [BlockRun(first: 3, count: 2), BlockRun(first: 10, count: 600)])
        var cycle = planner(bitmap)
        let reads = drain(&cycle, bitmap)
        #expect(reads.map(\.blocks) == [
            BlockRun(first: 3, count: 2), BlockRun(first: 10, count: 256), BlockRun(first: 266, count: 256),
            BlockRun(first: 522, count: 88),
        ])
        #expect(reads.map(\.regionIndex) == [0, 1, 2, 3])
        #expect(reads[1].offsetBytes == 10 * 4096 && reads[1].lengthBytes == 1 << 20)
        #expect(cycle.isComplete)
    }

    @Test func theLastRegionStopsAtTheVolumesEnd() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 10_000, blockBytes: Self.block)
        bitmap.setBlocks(BlockRun(first: 1, count: 2))
        bitmap.freezeCycle()
        var cycle = planner(bitmap)
        let read = cycle.nextRead(in: bitmap)
        #expect(read?.offsetBytes == 4096 && read?.lengthBytes == 10_000 - 4096)
    }

    @Test func atMostTheConfiguredReadsAreInFlight() {
        let runs = (0..<100).map { BlockRun(first: UInt64($0) * 4, count: 1) }
        let bitmap = frozenBitmap(runs: runs)
        var cycle = planner(bitmap, reads: 32)
        var issued: [CyclePlanner.Read] = []
        while let read = cycle.nextRead(in: bitmap) { issued.append(read) }
        #expect(issued.count == 32 && cycle.readsInFlight == 32)
        cycle.readCompleted(regionIndex: 7)
        #expect(cycle.nextRead(in: bitmap)?.regionIndex == 32)
        #expect(cycle.nextRead(in: bitmap) == nil)
    }

    @Test func anInterruptedCycleResumesWithTheSameRegionsAfterTheStagedOnes() {
        var random = SplitMix64(seed: 77)
        let runs = (0..<200).map { _ in
            BlockRun(first: UInt64.random(in: 0..<8000, using: &random), count: UInt64.random(in: 1...400, using: &random))
        }
        let bitmap = frozenBitmap(blocks: 9000, runs: runs)
        var whole = planner(bitmap)
        let all = drain(&whole, bitmap)
        for staged in [0, 1, 17, all.count - 1, all.count] {
            var resumed = CyclePlanner(volumeSizeBytes: bitmap.volumeSizeBytes, blockBytes: Self.block, writesAdmittedMax: 8)
            resumed.begin(cycle: 1, at: CyclePlanner.cursor(afterRegions: UInt64(staged), in: bitmap))
            #expect(drain(&resumed, bitmap) == Array(all[staged...]))
        }
        // Every frozen block is read exactly once.
        #expect(all.reduce(0) { $0 + $1.blocks.count } == bitmap.frozenBlockCount)
    }

    @Test func aWriteToARegionNotYetReadWaitsForItsRead() {
        let bitmap = frozenBitmap(runs: [BlockRun(first: 0, count: 1), BlockRun(first: 100, count: 1)])
        var cycle = planner(bitmap)
        let blockOffset: UInt64 = 100 * 4096
        #expect(!cycle.writeMayProceed(offsetBytes: blockOffset, lengthBytes: 512, in: bitmap))
        // A clean block, and a block of the next cycle only, are not locked.
        #expect(cycle.writeMayProceed(offsetBytes: 50 * 4096, lengthBytes: 4096, in: bitmap))
        let first = cycle.nextRead(in: bitmap)!
        let second = cycle.nextRead(in: bitmap)!
        #expect(!cycle.writeMayProceed(offsetBytes: blockOffset, lengthBytes: 512, in: bitmap))  // being read
        cycle.readCompleted(regionIndex: second.regionIndex)
        #expect(cycle.writeMayProceed(offsetBytes: blockOffset, lengthBytes: 512, in: bitmap))
        #expect(!cycle.writeMayProceed(offsetBytes: 0, lengthBytes: 4096, in: bitmap))
        cycle.readCompleted(regionIndex: first.regionIndex)
        #expect(cycle.writeMayProceed(offsetBytes: 0, lengthBytes: 8192, in: bitmap))
    }

    @Test func noReadIsIssuedOverAnAdmittedUnansweredWrite() {
        let bitmap = frozenBitmap(runs: [BlockRun(first: 10, count: 4)])
        var cycle = planner(bitmap)
        // In flight when the cycle began (it set these bits).
        let token = cycle.applicationWriteAdmitted(offsetBytes: 12 * 4096, lengthBytes: 4096)
        #expect(cycle.nextRead(in: bitmap) == nil)
        #expect(!cycle.isComplete)
        cycle.applicationWriteAnswered(token)
        #expect(cycle.nextRead(in: bitmap)?.blocks == BlockRun(first: 10, count: 4))
    }

    /// Random application writes and reads: no read in flight ever overlaps an admitted
    /// write, and the cycle reads every frozen block exactly once.
    @Test func readsAndApplicationWritesNeverInterleave() {
        var random = SplitMix64(seed: 1313)
        let runs = (0..<600).map { _ in
            BlockRun(first: UInt64.random(in: 0..<2900, using: &random), count: UInt64.random(in: 1...20, using: &random))
        }
        let bitmap = frozenBitmap(blocks: 3000, runs: runs)
        var cycle = planner(bitmap)
        var reads: [CyclePlanner.Read] = []
        var readBlocks: UInt64 = 0
        var writes: [(BlockRun, CyclePlanner.WriteToken)] = []
        func overlaps(_ a: BlockRun, _ b: BlockRun) -> Bool { a.first < b.end && b.first < a.end }
        // Writes in flight when the cycle began: they may overlap anything.
        for _ in 0..<30 {
            let run = BlockRun(first: UInt64.random(in: 0..<2990, using: &random), count: 4)
            writes.append((run, cycle.applicationWriteAdmitted(offsetBytes: run.first * 4096, lengthBytes: 4 * 4096)))
        }
        var steps = 0
        var writesWaited = 0
        var readsWaited = 0
        while !cycle.isComplete {
            steps += 1
            precondition(steps < 100_000, "the cycle makes no progress")
            switch UInt64.random(in: 0..<6, using: &random) {
            case 0, 1:
                let first = UInt64.random(in: 0..<2990, using: &random)
                let run = BlockRun(first: first, count: UInt64.random(in: 1...6, using: &random))
                guard writes.count < 60 else { break }
                guard cycle.writeMayProceed(offsetBytes: run.first * 4096, lengthBytes: run.count * 4096, in: bitmap) else {
                    writesWaited += 1
                    break
                }
                #expect(!reads.contains { overlaps($0.blocks, run) })
                writes.append((run, cycle.applicationWriteAdmitted(offsetBytes: run.first * 4096, lengthBytes: run.count * 4096)))
            case 2 where !writes.isEmpty && UInt64.random(in: 0..<4, using: &random) == 0:
                cycle.applicationWriteAnswered(writes.remove(at: Int.random(in: 0..<writes.count, using: &random)).1)
            case 3:
                if let read = cycle.nextRead(in: bitmap) {
                    #expect(!writes.contains { overlaps($0.0, read.blocks) })
                    reads.append(read)
                    readBlocks += read.blocks.count
                } else if reads.count < cycle.readsInFlightMax {
                    readsWaited += 1
                }
            default:
                if !reads.isEmpty {
                    cycle.readCompleted(regionIndex: reads.remove(at: Int.random(in: 0..<reads.count, using: &random)).regionIndex)
                }
            }
        }
        #expect(readBlocks == bitmap.frozenBlockCount)
        // Both kinds of waiting happened, or the walk proves nothing.
        #expect(writesWaited > 10 && readsWaited > 10)
    }
}
