import Testing

@testable import TandemCore

@Suite struct BitmapCodingTests {
    private func randomBitmap(_ random: inout SplitMix64, blocks: UInt64 = 80_000) -> DirtyBitmap {
        var bitmap = DirtyBitmap(volumeSizeBytes: blocks * 4096, blockBytes: 4096)
        for _ in 0..<200 {
            let first = UInt64.random(in: 0..<blocks, using: &random)
            let count = UInt64.random(in: 1...min(blocks - first, 700), using: &random)
            bitmap.setBlocks(BlockRun(first: first, count: count))
        }
        return bitmap
    }

    private func sameBits(_ a: DirtyBitmap, _ b: DirtyBitmap) -> Bool {
        a.setBlockCount == b.setBlockCount && (0..<a.blockCount).allSatisfy { a.isSet(block: $0) == b.isSet(block: $0) }
    }

    @Test func pageBitsAreByteIOverEightBitIModEightOfPageIOver32512() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 1 << 30, blockBytes: 4096)
        bitmap.setBlocks(BlockRun(first: 9, count: 1))
        bitmap.setBlocks(BlockRun(first: 32_512 + 16, count: 1))
        var bytes = [UInt8](repeating: 0xAA, count: DirtyBitmap.pageBitBytes * 2)
        bitmap.encodePageBits(0, into: &bytes, at: 0)
        bitmap.encodePageBits(1, into: &bytes, at: DirtyBitmap.pageBitBytes)
        #expect(bytes[1] == 0x02)
        #expect(bytes.prefix(DirtyBitmap.pageBitBytes).filter { $0 != 0 }.count == 1)
        #expect(bytes[DirtyBitmap.pageBitBytes + 2] == 0x01)
    }

    @Test func pagesRoundTripAndLoadedPagesAreClean() throws {
        var random = SplitMix64(seed: 7)
        let bitmap = randomBitmap(&random)
        var loaded = DirtyBitmap(volumeSizeBytes: bitmap.volumeSizeBytes, blockBytes: 4096)
        var bytes = [UInt8](repeating: 0, count: DirtyBitmap.pageBitBytes)
        for page in 0..<bitmap.pageCount {
            bitmap.encodePageBits(page, into: &bytes, at: 0)
            try loaded.loadPageBits(page, from: bytes[...])
        }
        #expect(sameBits(bitmap, loaded))
        #expect(loaded.dirtyPageCount == 0)
    }

    @Test func aBadPageIsRefusedAndChangesNothing() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 40_000 * 4096, blockBytes: 4096)  // page 1 holds 7 488 bits
        bitmap.setBlocks(BlockRun(first: 32_600, count: 3))
        var bytes = [UInt8](repeating: 0, count: DirtyBitmap.pageBitBytes)
        #expect(throws: BitmapCodingError.wrongPageLength(page: 1, bytes: 100, expected: 4064)) {
            try bitmap.loadPageBits(1, from: bytes[0..<100])
        }
        bytes[7_488 / 8] = 0x01  // the first bit past the volume's last block
        #expect(throws: BitmapCodingError.bitsBeyondVolume(page: 1)) { try bitmap.loadPageBits(1, from: bytes[...]) }
        bytes[7_488 / 8] = 0
        bytes[4000] = 0xFF
        #expect(throws: BitmapCodingError.bitsBeyondVolume(page: 1)) { try bitmap.loadPageBits(1, from: bytes[...]) }
        #expect(bitmap.setBlockCount == 3 && bitmap.isSet(block: 32_601))
    }

    @Test func anUnreadablePageCountsAsAllSetAndIsRewritten() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 40_000 * 4096, blockBytes: 4096)
        bitmap.markPageAllSet(1)
        #expect(bitmap.setBlockCount == 40_000 - 32_512)
        #expect(bitmap.isPageDirty(1) && !bitmap.isPageDirty(0))
    }

    @Test func runsRoundTripInChunksOfAnySize() throws {
        var random = SplitMix64(seed: 99)
        for capacity in [8, 12, 64, 4096] {
            let source = randomBitmap(&random)
            var target = DirtyBitmap(volumeSizeBytes: source.volumeSizeBytes, blockBytes: 4096)
            var buffer = [UInt8](repeating: 0, count: capacity)
            var first: UInt64 = 0
            var setTotal: UInt64 = 0
            var chunks = 0
            while first < source.blockCount {
                let (blocks, bytes) = source.encodeRuns(
                    firstBlock: first, blockCount: source.blockCount - first, into: &buffer, at: 0, capacityBytes: capacity)
                #expect(blocks > 0)
                setTotal += try target.unionRuns(firstBlock: first, blockCount: blocks, runs: buffer[0..<bytes])
                first += blocks
                chunks += 1
            }
            #expect(sameBits(source, target))
            #expect(setTotal == source.setBlockCount)
            #expect(capacity < 4096 || chunks == 1)
        }
    }

    @Test func runsStartWithAClearRunEvenWhenTheFirstBlockIsSet() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 64 * 4096, blockBytes: 4096)
        bitmap.setBlocks(BlockRun(first: 0, count: 3))
        var buffer = [UInt8](repeating: 0xFF, count: 64)
        let (blocks, bytes) = bitmap.encodeRuns(firstBlock: 0, blockCount: 64, into: &buffer, at: 0, capacityBytes: 64)
        #expect(blocks == 64 && bytes == 12)
        #expect(Array(buffer[0..<12]) == [0, 0, 0, 0, 3, 0, 0, 0, 61, 0, 0, 0])
    }

    @Test func malformedRunsAreRefusedAndChangeNothing() {
        var bitmap = DirtyBitmap(volumeSizeBytes: 64 * 4096, blockBytes: 4096)
        bitmap.setBlocks(BlockRun(first: 60, count: 1))
        func runs(_ values: [UInt32]) -> ArraySlice<UInt8> {
            values.flatMap { value in (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }[...]
        }
        #expect(throws: BitmapCodingError.runsNotWholeWords(bytes: 5)) {
            try bitmap.unionRuns(firstBlock: 0, blockCount: 4, runs: [1, 2, 3, 4, 5][...])
        }
        #expect(throws: BitmapCodingError.emptyRun(index: 1)) {
            try bitmap.unionRuns(firstBlock: 0, blockCount: 4, runs: runs([2, 0, 2]))
        }
        #expect(throws: BitmapCodingError.runsTotal(expected: 4, found: 3)) {
            try bitmap.unionRuns(firstBlock: 0, blockCount: 4, runs: runs([1, 2]))
        }
        #expect(throws: BitmapCodingError.runsTotal(expected: 4, found: 5)) {
            try bitmap.unionRuns(firstBlock: 0, blockCount: 4, runs: runs([1, 2, 2]))
        }
        #expect(throws: BitmapCodingError.runsTotal(expected: 4, found: UInt64(UInt32.max) + 1)) {
            try bitmap.unionRuns(firstBlock: 0, blockCount: 4, runs: runs([1, UInt32.max]))
        }
        #expect(throws: BitmapCodingError.chunkOutsideBitmap(firstBlock: 60, blockCount: 5, bitmapBlocks: 64)) {
            try bitmap.unionRuns(firstBlock: 60, blockCount: 5, runs: runs([0, 5]))
        }
        #expect(throws: BitmapCodingError.chunkOutsideBitmap(firstBlock: .max, blockCount: 2, bitmapBlocks: 64)) {
            try bitmap.unionRuns(firstBlock: .max, blockCount: 2, runs: runs([0, 2]))
        }
        #expect(bitmap.setBlockCount == 1 && bitmap.isSet(block: 60))
    }

    @Test func randomRunBytesNeverCrashAndEitherApplyWhollyOrNotAtAll() {
        var random = SplitMix64(seed: 2026)
        for _ in 0..<5000 {
            var bitmap = DirtyBitmap(volumeSizeBytes: 256 * 4096, blockBytes: 4096)
            let count = Int.random(in: 0...40, using: &random)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...3, using: &random) }
            let first = UInt64.random(in: 0...300, using: &random)
            let blocks = UInt64.random(in: 0...300, using: &random)
            do {
                let set = try bitmap.unionRuns(firstBlock: first, blockCount: blocks, runs: bytes[...])
                #expect(bitmap.setBlockCount == set)
            } catch {
                #expect(bitmap.setBlockCount == 0)
            }
        }
    }
}
