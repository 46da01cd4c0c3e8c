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

    /// A turn's writes the file does not cover are held together: each adds its extents to the
    /// pending set (a write in an extent already pending waits too: pending is not durable),
    /// a covered one goes at once, and one record holds the file, the known set and all of them.
    @Test func theWritesOfOneTurnWaitForOneRecord() throws {
        let file = Self.bitmap([BlockRun(first: 0, count: 1_024)])  // extent 0
        var pending: DirtyBitmap? = nil
        let geometry = Self.bitmap()
        func hold(_ block: UInt64, _ blocks: UInt64 = 1) -> Bool {
            PartedCover.hold(writeOffsetBytes: block * 4096, lengthBytes: blocks * 4096, cover: file, pending: &pending,
                             geometry: geometry, extentBytes: Self.extentBytes)
        }
        #expect(!hold(7), "extent 0 is in the file: the write goes now")
        #expect(pending == nil)
        #expect(hold(1_030), "extent 1 is not")
        #expect(hold(1_500), "extent 1 is pending, not durable: this one waits too")
        #expect(hold(4_095, 2), "straddles extents 3 and 4")
        #expect(!hold(1_023), "extent 0 still goes at once")
        let extents = try #require(pending)
        #expect(extents.nextDirtyRun(from: 0) == BlockRun(first: 1_024, count: 1_024))
        #expect(extents.nextDirtyRun(from: 2_048) == BlockRun(first: 3_072, count: 2_048))
        #expect(extents.outOfSyncBytes == 3 * Self.extentBytes)
        let known = Self.bitmap([BlockRun(first: 7, count: 1), BlockRun(first: 9_000, count: 1)])
        let record = PartedCover.record(cover: file, known: known, pending: extents)
        #expect(record.nextDirtyRun(from: 0) == BlockRun(first: 0, count: 2_048))
        #expect(record.nextDirtyRun(from: 2_048) == BlockRun(first: 3_072, count: 2_048))
        #expect(record.nextDirtyRun(from: 5_120) == BlockRun(first: 9_000, count: 1))
        #expect(record.outOfSyncBytes == 4 * Self.extentBytes + 4096)
        // With the record durable as the file, the same writes go at once.
        var after: DirtyBitmap? = nil
        for block: UInt64 in [1_030, 1_500, 4_095, 4_096] {
            #expect(!PartedCover.hold(writeOffsetBytes: block * 4096, lengthBytes: 4096, cover: record, pending: &after,
                                      geometry: geometry, extentBytes: Self.extentBytes))
        }
        #expect(after == nil)
    }

    /// With no file at all (a primary's first write alone since parting), every write waits,
    /// and the record holds at least the known set and every held write's extents.
    @Test func withNoFileEveryWriteWaitsAndTheRecordHoldsTheKnownSet() throws {
        var pending: DirtyBitmap? = nil
        let known = Self.bitmap([BlockRun(first: 16_384, count: 1)])
        #expect(PartedCover.hold(writeOffsetBytes: 0, lengthBytes: 512, cover: nil, pending: &pending,
                                 geometry: known, extentBytes: Self.extentBytes))
        #expect(!PartedCover.hold(writeOffsetBytes: 0, lengthBytes: 0, cover: nil, pending: &pending,
                                  geometry: known, extentBytes: Self.extentBytes), "an empty write records nothing")
        let record = PartedCover.record(cover: nil, known: known, pending: try #require(pending))
        #expect(record.nextDirtyRun(from: 0) == BlockRun(first: 0, count: 1_024))
        #expect(record.nextDirtyRun(from: 1_024) == BlockRun(first: 16_384, count: 1))
    }

    /// The cover unit is the activity log's extent up to 1,024 of them per volume, then the
    /// smallest doubling of it that keeps the count at 1,024 or fewer: the file is rewritten
    /// before writes at most about that often, however randomly they scatter.
    @Test func theCoverUnitKeepsAVolumeToAtMostAThousandAndTwentyFourUnits() {
        let mib: UInt64 = 1 << 20
        #expect(PartedCover.unitBytes(volumeSizeBytes: 256 * mib, extentBytes: 4 * mib, blockBytes: 4096) == 4 * mib)
        #expect(PartedCover.unitBytes(volumeSizeBytes: 4096 * mib, extentBytes: 4 * mib, blockBytes: 4096) == 4 * mib)
        #expect(PartedCover.unitBytes(volumeSizeBytes: 4096 * mib + 1, extentBytes: 4 * mib, blockBytes: 4096) == 8 * mib)
        #expect(PartedCover.unitBytes(volumeSizeBytes: 64 << 30, extentBytes: 4 * mib, blockBytes: 4096) == 64 * mib)
        #expect(PartedCover.unitBytes(volumeSizeBytes: 1 << 40, extentBytes: 4 * mib, blockBytes: 4096) == 1 << 30)
        #expect(PartedCover.unitBytes(volumeSizeBytes: 16 * mib, extentBytes: 4096, blockBytes: 64 << 10) == 64 << 10)
        for size: UInt64 in [1, 4095, 64 << 30, (1 << 40) + 12_345] {
            let unit = PartedCover.unitBytes(volumeSizeBytes: size, extentBytes: 4 * mib, blockBytes: 4096)
            #expect((size + unit - 1) / unit <= PartedCover.unitsPerVolumeMax, "\(size)")
        }
    }
}
