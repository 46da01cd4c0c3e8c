import Testing

@testable import TandemCore

/// A plain model of the bitmap: one Bool per block, pages changed since persisted.
private struct BitmapModel {
    var bits: [Bool]
    var dirtyPages: Set<Int> = []
    var setCount = 0
    init(blocks: Int) { bits = Array(repeating: false, count: blocks) }
    mutating func set(_ run: BlockRun) {
        for block in Int(run.first)..<Int(run.end) where !bits[block] {
            bits[block] = true
            setCount += 1
            dirtyPages.insert(block / Int(DirtyBitmap.bitsPerPage))
        }
    }
    mutating func clear(_ run: BlockRun) {
        for block in Int(run.first)..<Int(run.end) where bits[block] {
            bits[block] = false
            setCount -= 1
            dirtyPages.insert(block / Int(DirtyBitmap.bitsPerPage))
        }
    }
}

@Suite struct DirtyBitmapTests {
    @Test func aWriteMarksEveryBlockItTouchesAndAClearOnlyBlocksItCoversWhole() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 1 << 20, blockBytes: 4096)
        #expect(bitmap.setRange(offsetBytes: 4095, lengthBytes: 2) == 2)  // blocks 0 and 1
        #expect(bitmap.isSet(block: 0) && bitmap.isSet(block: 1) && !bitmap.isSet(block: 2))
        #expect(bitmap.outOfSyncBytes == 8192)
        // A clear that covers block 0 only partly leaves it set: part of it may still differ.
        #expect(bitmap.clearRange(offsetBytes: 1, lengthBytes: 8191) == 1)
        #expect(bitmap.isSet(block: 0) && !bitmap.isSet(block: 1))
        #expect(bitmap.setBlockCount == 1)
    }

    @Test func theVolumesShortLastBlockCountsAsWholeWhenARangeReachesTheEnd() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 10_000, blockBytes: 4096)
        #expect(bitmap.blockCount == 3)
        bitmap.setRange(offsetBytes: 9_000, lengthBytes: 1_000)
        #expect(bitmap.isSet(block: 2))
        #expect(bitmap.clearRange(offsetBytes: 8192, lengthBytes: 1808) == 1)
        #expect(bitmap.setBlockCount == 0)
    }

    @Test func theCountAndDirtyPagesMatchAPlainModelOverRandomSetsAndClears() {
        var random = SplitMix64(seed: 13)
        let blockBytes: UInt64 = 4096
        let blocks = Int(DirtyBitmap.bitsPerPage) * 3 + 777
        var bitmap = DirtyBitmap(volumeSizeBytes: UInt64(blocks) * blockBytes - 100, blockBytes: blockBytes)
        var model = BitmapModel(blocks: blocks)
        for step in 0..<3000 {
            let offset = UInt64.random(in: 0..<bitmap.volumeSizeBytes, using: &random)
            let length = UInt64.random(in: 0...min(bitmap.volumeSizeBytes - offset, 300 * blockBytes), using: &random)
            if Bool.random(using: &random) {
                let run = bitmap.blocksTouched(offsetBytes: offset, lengthBytes: length)
                model.set(run)
                bitmap.setRange(offsetBytes: offset, lengthBytes: length)
            } else {
                let run = bitmap.blocksCovered(offsetBytes: offset, lengthBytes: length)
                model.clear(run)
                bitmap.clearRange(offsetBytes: offset, lengthBytes: length)
            }
            #expect(bitmap.setBlockCount == UInt64(model.setCount))
            if step % 97 == 0, let page = model.dirtyPages.first {
                bitmap.pagePersisted(page, version: bitmap.pageVersion(page))
                model.dirtyPages.remove(page)
            }
            #expect(bitmap.dirtyPageCount == model.dirtyPages.count)
        }
        #expect((0..<blocks).allSatisfy { bitmap.isSet(block: UInt64($0)) == model.bits[$0] })
    }

    @Test func dirtyRunsAreFoundFromACursorAndCappedInLength() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 1 << 30, blockBytes: 4096)
        bitmap.setBlocks(BlockRun(first: 10, count: 5))
        bitmap.setBlocks(BlockRun(first: 100, count: 300))
        #expect(bitmap.nextDirtyRun(from: 0) == BlockRun(first: 10, count: 5))
        #expect(bitmap.nextDirtyRun(from: 12) == BlockRun(first: 12, count: 3))
        #expect(bitmap.nextDirtyRun(from: 15, maxBlocks: 256) == BlockRun(first: 100, count: 256))
        #expect(bitmap.nextDirtyRun(from: 356, maxBlocks: 256) == BlockRun(first: 356, count: 44))
        #expect(bitmap.nextDirtyRun(from: 400) == nil)
    }

    @Test func aCompletedCycleClearsOnlyItsBlocksNotThoseWrittenSinceTheFreeze() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 1 << 26, blockBytes: 4096)
        bitmap.setBlocks(BlockRun(first: 0, count: 10))
        bitmap.freezeCycle()
        #expect(bitmap.frozenBlockCount == 10)
        // Rewritten during the cycle (K+1), and new since the freeze.
        bitmap.setBlocks(BlockRun(first: 5, count: 1))
        bitmap.setBlocks(BlockRun(first: 20, count: 2))
        #expect(bitmap.isFrozenSet(block: 5) && !bitmap.isFrozenSet(block: 20))
        #expect(bitmap.completeCycle() == 9)
        #expect(bitmap.isSet(block: 5) && bitmap.isSet(block: 20) && bitmap.isSet(block: 21))
        #expect(!bitmap.isSet(block: 0) && !bitmap.isSet(block: 9))
        #expect(bitmap.setBlockCount == 3)
    }

    @Test func anInterruptedCycleLeavesEveryBlockDirty() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 1 << 26, blockBytes: 4096)
        bitmap.setBlocks(BlockRun(first: 0, count: 10))
        bitmap.freezeCycle()
        bitmap.setBlocks(BlockRun(first: 30, count: 1))
        bitmap.abandonCycle()
        #expect(bitmap.setBlockCount == 11 && !bitmap.cycleFrozen)
        bitmap.freezeCycle()  // the next cycle covers both
        #expect(bitmap.frozenBlockCount == 11)
    }

    @Test func theUnionWithThePeersBitmapIsTheResyncSet() {
        var own = DirtyBitmap(volumeSizeBytes: 1 << 26, blockBytes: 4096)
        var peer = DirtyBitmap(volumeSizeBytes: 1 << 26, blockBytes: 4096)
        own.setBlocks(BlockRun(first: 0, count: 4))
        peer.setBlocks(BlockRun(first: 2, count: 4))
        peer.setBlocks(BlockRun(first: 9000, count: 1))
        #expect(own.formUnion(peer) == 3)
        #expect(own.setBlockCount == 7)
        #expect(own.nextDirtyRun(from: 0) == BlockRun(first: 0, count: 6))
    }

    @Test func aPageChangedWhileItsWriteWasInFlightStaysDirty() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 1 << 30, blockBytes: 4096)
        bitmap.setBlocks(BlockRun(first: 1, count: 1))
        #expect(bitmap.nextDirtyPage(from: 0) == 0)
        let version = bitmap.pageVersion(0)  // encoded now, written...
        bitmap.setBlocks(BlockRun(first: 2, count: 1))  // ...while this bit is set
        bitmap.pagePersisted(0, version: version)
        #expect(bitmap.isPageDirty(0))
        bitmap.pagePersisted(0, version: bitmap.pageVersion(0))
        #expect(!bitmap.isPageDirty(0) && bitmap.dirtyPageCount == 0 && bitmap.nextDirtyPage(from: 0) == nil)
        // Setting a bit already set changes nothing on disk: the page stays clean.
        bitmap.setBlocks(BlockRun(first: 2, count: 1))
        #expect(!bitmap.isPageDirty(0))
    }

    @Test func anExtentMayStraddleTwoPages() {
        let bitmap = DirtyBitmap(volumeSizeBytes: 1 << 30, blockBytes: 4096)
        // Page 0 ends at block 32 512 = byte 133 169 152, inside the 4 MiB extent 31.
        let extentOffset: UInt64 = 31 << 22
        #expect(bitmap.pages(coveringOffset: extentOffset, lengthBytes: 4 << 20) == 0...1)
        #expect(bitmap.pages(coveringOffset: 0, lengthBytes: 4 << 20) == 0...0)
        #expect(bitmap.pageCount == Int((262_144 + 32_511) / 32_512))
    }
}
