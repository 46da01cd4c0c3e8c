import Testing

@testable import TandemCore

/// What a parted primary records before a write with no replicator (PartedCover): nothing when
/// the file covers every block the write touches; otherwise the file's set, the node's set
/// and the write's extents whole, never less than the write.
@Suite struct PartedCoverTests {
    /// 64 MiB of 4 KiB blocks and a short last block; 4 MiB extents (1,024 blocks).
    static let volumeBytes: UInt64 = (64 << 20) + 512
    static let extentBytes: UInt64 = 4 << 20

    static func bitmap(_ runs: [BlockRun] = []) -> DirtyBitmap {
        var bitmap = DirtyBitmap(volumeSizeBytes: volumeBytes, blockBytes: 4096)
        for run in runs { _ = bitmap.setBlocks(run) }
        return bitmap
    }

    @Test func aWriteOutsideTheFileRecordsItsExtentsAndTheKnownSetFirst() throws {
        let known = Self.bitmap([BlockRun(first: 5, count: 2), BlockRun(first: 5_000, count: 1)])
        // A write of 8 KiB straddling the boundary of extents 1 and 2 (blocks 2,047 and 2,048).
        let cover = try #require(PartedCover.recordBefore(writeOffsetBytes: 2_047 * 4096, lengthBytes: 8192, cover: nil,
                                                          known: known, extentBytes: Self.extentBytes))
        #expect(cover.nextDirtyRun(from: 0) == BlockRun(first: 5, count: 2))
        #expect(cover.nextDirtyRun(from: 7) == BlockRun(first: 1_024, count: 2_048))
        #expect(cover.nextDirtyRun(from: 3_072) == BlockRun(first: 5_000, count: 1))
        #expect(cover.outOfSyncBytes == (2 + 2_048 + 1) * 4096)
    }

    @Test func aWriteTheFileCoversRecordsNothing() {
        let file = Self.bitmap([BlockRun(first: 1_024, count: 1_024)])
        #expect(PartedCover.recordBefore(writeOffsetBytes: 1_024 * 4096 + 100, lengthBytes: 4096, cover: file,
                                         known: Self.bitmap(), extentBytes: Self.extentBytes) == nil)
        // One block past the file's: the write's extent is recorded, with the file's set kept.
        let next = PartedCover.recordBefore(writeOffsetBytes: 2_047 * 4096, lengthBytes: 8192, cover: file,
                                            known: Self.bitmap([BlockRun(first: 9, count: 1)]), extentBytes: Self.extentBytes)
        #expect(next?.nextDirtyRun(from: 0) == BlockRun(first: 9, count: 1))
        #expect(next?.nextDirtyRun(from: 10) == BlockRun(first: 1_024, count: 2_048))
    }

    @Test func theLastExtentEndsWithTheVolume() throws {
        let cover = try #require(PartedCover.recordBefore(writeOffsetBytes: Self.volumeBytes - 512, lengthBytes: 512, cover: nil,
                                                          known: Self.bitmap(), extentBytes: Self.extentBytes))
        // 64 MiB + 512: the 17th extent holds the short last block alone.
        #expect(cover.nextDirtyRun(from: 0) == BlockRun(first: 16_384, count: 1))
        #expect(cover.blockCount == 16_385)
    }
}
