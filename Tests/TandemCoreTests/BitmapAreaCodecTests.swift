// The bitmap area's pure codec (docs/metadata.md, *Bitmap page*, *Bitmap validity*): a
// DirtyBitmap round-trips through sealed pages; every page that cannot be proven (corrupted,
// torn, at another index, of another resource, written after the seal, bits past the
// volume) is refused with its reason and changes nothing; the superblock's `bitmap sealed`
// sits at offset 328 and must lie below the slot's own sequence; a geometry that cannot
// hold a bitmap is an error, not a crash.
import TandemCore
import Testing

@Suite struct BitmapAreaCodecTests {
    static let uuid: UInt128 = 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210

    /// 1 GiB at 4 KiB blocks: 262 144 blocks, 9 pages, the last one partial.
    static func superblock(sequence: UInt64 = 11, sealed: UInt64 = 10, uuid: UInt128 = uuid) -> MetadataSuperblock {
        var superblock = MetadataSuperblock(resourceName: "r0", volumeSizeBytes: 1 << 30)
        superblock.sequence = sequence
        superblock.bitmapSealedSequence = sealed
        superblock.resourceUUID = uuid
        return superblock
    }

    static func sample() -> DirtyBitmap {
        var bitmap = DirtyBitmap(volumeSizeBytes: 1 << 30, blockBytes: 4096)
        bitmap.setBlocks(BlockRun(first: 5, count: 3))  // page 0
        bitmap.setBlocks(BlockRun(first: 3 * 32_512 + 100, count: 700))  // page 3
        bitmap.setBlocks(BlockRun(first: 262_143, count: 1))  // the last block, page 8
        return bitmap
    }

    static func page(_ bitmap: DirtyBitmap, _ index: Int, sequence: UInt64 = 9, uuid: UInt128 = uuid) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 4096)
        BitmapAreaCodec.encodePage(bitmap, page: index, resourceUUID: uuid, sequence: sequence, into: &bytes)
        return bytes
    }

    private func sameBits(_ a: DirtyBitmap, _ b: DirtyBitmap) -> Bool {
        a.setBlockCount == b.setBlockCount && (0..<a.blockCount).allSatisfy { a.isSet(block: $0) == b.isSet(block: $0) }
    }

    @Test func theSealLivesAtOffset328AndMustLieBelowTheSlotsSequence() throws {
        let sealed = Self.superblock(sequence: 7, sealed: 6)
        let bytes = MetadataSuperblockCodec.encode(sealed)
        #expect(bytes[328] == 6)
        #expect(try MetadataSuperblockCodec.decode(bytes).get() == sealed)
        #expect(try MetadataSuperblockCodec.decode(bytes).get().bitmapSealed)
        #expect(!(try MetadataSuperblockCodec.decode(MetadataSuperblockCodec.encode(Self.superblock(sealed: 0))).get()
            .bitmapSealed))
        // A seal at or above the slot's own sequence claims pages written after it.
        guard case .failure(.invalidField) = MetadataSuperblockCodec.decode(
            MetadataSuperblockCodec.encode(Self.superblock(sequence: 7, sealed: 7)))
        else { Issue.record("a seal at the slot's own sequence was accepted"); return }
    }

    /// The activity log's page writes (issue 13 §4): blocks of unconfirmed copy chunks are
    /// written set whatever the bitmap says, and the pages are loaded without a seal (then a
    /// page written after any seal is believed), still proven.
    @Test func activityLogPagesCarryTheExtraRunsAndLoadWithoutASeal() throws {
        let bitmap = Self.sample()
        let unsealed = Self.superblock(sequence: 20, sealed: 0)
        var bytes = [UInt8](repeating: 0, count: 4096)
        BitmapAreaCodec.encodePage(bitmap, page: 3, resourceUUID: Self.uuid, sequence: 20,
                                   alsoSet: [BlockRun(first: 3 * 32_512 + 5_000, count: 10), BlockRun(first: 4, count: 2)],
                                   into: &bytes)
        var loaded = try BitmapAreaCodec.emptyBitmap(for: unsealed).get()
        #expect(BitmapAreaCodec.loadPage(bytes, page: 3, superblock: unsealed, sealed: false, into: &loaded) == nil)
        #expect(loaded.setBlockCount == 710, "page 3's 700 bits and the 10 of the run inside it, not the run of page 0")
        #expect(loaded.isSet(block: 3 * 32_512 + 5_009) && !loaded.isSet(block: 4))
        var corrupt = bytes
        corrupt[100] ^= 1
        #expect(BitmapAreaCodec.loadPage(corrupt, page: 3, superblock: unsealed, sealed: false, into: &loaded) != nil,
                "unsealed is not unproven")
    }

    @Test func aBitmapRoundTripsThroughSealedPages() throws {
        let bitmap = Self.sample()
        let superblock = Self.superblock()
        var loaded = try BitmapAreaCodec.emptyBitmap(for: superblock).get()
        #expect(loaded.pageCount == 9 && BitmapAreaCodec.fits(bitmap, superblock))
        for index in 0..<bitmap.pageCount {
            let bytes = Self.page(bitmap, index, sequence: UInt64(index % 2 == 0 ? 10 : 3))  // any sequence ≤ the seal
            #expect(Array(bytes[0..<4]) == Array("TNBM".utf8) && bytes[8] == UInt8(index))
            let problem = BitmapAreaCodec.loadPage(bytes, page: index, superblock: superblock, into: &loaded)
            #expect(problem == nil, "page \(index): \(String(describing: problem))")
        }
        #expect(sameBits(bitmap, loaded))
        #expect(loaded.setBlockCount == 3 + 700 + 1)
        #expect(loaded.dirtyPageCount == 0, "loaded pages equal the disk: none is dirty")
    }

    @Test func everyUnprovablePageIsRefusedWithItsReasonAndChangesNothing() throws {
        let bitmap = Self.sample()
        let superblock = Self.superblock()
        let good = Self.page(bitmap, 3)
        var flipped = good
        flipped[2000] ^= 0x04
        // Torn: the first half of a newer write of page 3 over the second half of the older.
        var newer = bitmap
        newer.setBlocks(BlockRun(first: 3 * 32_512, count: 32_512))
        let torn = Array(Self.page(newer, 3)[0..<2048]) + Array(good[2048...])
        var pastVolume = [UInt8](repeating: 0, count: BitmapPageHeader.bitsBytes)
        pastVolume[(262_144 - 8 * 32_512) / 8] = 1  // the first bit past the last block, on page 8
        let cases: [(String, [UInt8], Int, BitmapPageProblem)] = [
            ("a flipped bit", flipped, 3, .unit(.checksumMismatch)),
            ("a torn write", torn, 3, .unit(.checksumMismatch)),
            ("never written", [UInt8](repeating: 0, count: 4096), 3, .unit(.zeroes)),
            ("a short read", Array(good[0..<1000]), 3, .unit(.truncated(bytes: 1000))),
            ("page 4 at the place of 3", Self.page(bitmap, 4), 3,
             .unit(.invalidField("page index 4 at the place of page 3"))),
            ("another resource", Self.page(bitmap, 3, uuid: Self.uuid + 1), 3,
             .otherResource(foundTag: BitmapPageHeader.resourceTag(Self.uuid + 1),
                            expectedTag: BitmapPageHeader.resourceTag(Self.uuid))),
            ("written after the seal", Self.page(bitmap, 3, sequence: 11), 3,
             .writtenAfterSeal(pageSequence: 11, sealedSequence: 10)),
            ("bits past the volume",
             BitmapPageHeader(pageIndex: 8, superblockSequence: 9, resourceTag: BitmapPageHeader.resourceTag(Self.uuid))
                .encodePage(bits: pastVolume), 8, .bits(.bitsBeyondVolume(page: 8))),
        ]
        for (what, bytes, index, expected) in cases {
            var loaded = try BitmapAreaCodec.emptyBitmap(for: superblock).get()
            let problem = BitmapAreaCodec.loadPage(bytes, page: index, superblock: superblock, into: &loaded)
            #expect(problem == expected, "\(what): \(String(describing: problem))")
            #expect(loaded.setBlockCount == 0 && loaded.dirtyPageCount == 0, "\(what) changed the bitmap")
        }
        #expect(BitmapPageProblem.unit(.checksumMismatch).description.contains("checksum mismatch"))
    }

    @Test func aGeometryThatCannotHoldABitmapIsAnErrorNotACrash() {
        // 2^32 blocks of 4 KiB: one more than a u32 page index and wire run can name.
        var huge = Self.superblock()
        huge.volumeSizeBytes = (UInt64(UInt32.max) + 1) * 4096
        guard case .failure(let error) = BitmapAreaCodec.emptyBitmap(for: huge) else {
            Issue.record("a bitmap of 2^32 blocks was built"); return
        }
        #expect(error.description.contains("exceed"))
        var other = Self.superblock()
        other.bitmapBlockBytes = 8192
        #expect(!BitmapAreaCodec.fits(Self.sample(), other))
    }
}
