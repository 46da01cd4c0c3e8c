import TandemCore
import Testing

@Suite struct MetadataFormatTests {
    static let name = "r0"
    static let sizeBytes: UInt64 = 64 << 20
    static let expected = MetadataExpectation(resourceName: name, volumeSizeBytes: sizeBytes)

    static func sample(sequence: UInt64) -> MetadataSuperblock {
        var superblock = MetadataSuperblock(resourceName: name, volumeSizeBytes: sizeBytes)
        superblock.sequence = sequence
        superblock.resourceUUID = 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210
        superblock.roleLastTaken = .secondary
        superblock.flags = [.enabled, .synced, .peerLacksWrites, .fullSyncTarget]
        superblock.currentGeneration = 11
        superblock.bitmapGeneration = 12
        superblock.history = [13, 14, 15, 16]
        superblock.promotionNumber = 17
        superblock.session = 18
        superblock.durableEpoch = 19
        superblock.continuedFrom = 20
        superblock.cleanStop = 21
        superblock.stagingSession = 22
        superblock.stagedJournalBytes = 23
        superblock.stagedFrom = [27, 28, 29]
        superblock.consistentAsOfNs = 24
        superblock.changedBytes = 25
        superblock.peerNodeName = "beta"
        superblock.recordWrites = 26
        superblock.peerLacksSinceUnixNs = 0x1122_3344_5566_7788
        return superblock
    }

    static var fileBytes: UInt64 { sample(sequence: 1).geometry.fileBytes }

    @Test func everySuperblockFieldRoundTrips() throws {
        let superblock = Self.sample(sequence: 7)
        let bytes = MetadataSuperblockCodec.encode(superblock)
        #expect(bytes.count == 4096)
        #expect(Array(bytes[0..<8]) == Array("TNDMMD03".utf8))
        #expect(try MetadataSuperblockCodec.decode(bytes).get() == superblock)
        #expect(bytes[128] == 2)  // role at its documented offset
        #expect(bytes[192] == 18)  // session
        #expect(bytes[256] == UInt8(ascii: "b"))  // peer node name
        #expect(bytes[392] == 0x88 && bytes[399] == 0x11)  // peer lacks writes since (little-endian)
    }

    @Test func theRecordViewStoresEveryReplicationRecordField() {
        var superblock = MetadataSuperblock(resourceName: "r0", volumeSizeBytes: 4096)
        let record = ReplicationRecord(generation: 3, session: 4, durableThroughEpoch: 5, synced: true, continuedFrom: 6,
                                       cleanStop: 7, primaryStarted: true, promotedInconsistent: true)
        superblock.record = record
        superblock.enabled = true
        #expect(superblock.record == record)
        superblock.record = ReplicationRecord()
        #expect(superblock.record == ReplicationRecord())
        #expect(superblock.enabled)  // not part of the record
    }

    @Test func aFlipAnywhereInASlotIsAChecksumMismatch() {
        let bytes = MetadataSuperblockCodec.encode(Self.sample(sequence: 7))
        for offset in [9, 20, 130, 300, 4095] {
            var torn = bytes
            torn[offset] ^= 0x10
            #expect(MetadataSuperblockCodec.decode(torn) == .failure(.checksumMismatch), "offset \(offset)")
        }
    }

    @Test func unknownFlagsAndVersionsAreRefused() {
        var superblock = Self.sample(sequence: 1)
        superblock.flags = MetadataFlags(rawValue: 1 << 20)
        #expect(MetadataSuperblockCodec.decode(MetadataSuperblockCodec.encode(superblock)) == .failure(.unknownFlags(1 << 20)))
        var newer = MetadataSuperblockCodec.encode(Self.sample(sequence: 1))
        newer[6] = UInt8(ascii: "0")
        newer[7] = UInt8(ascii: "4")
        newer[8] = 4
        reseal(&newer)
        #expect(MetadataSuperblockCodec.decode(newer) == .failure(.unknownVersion(4)))
    }

    /// Issue 14's flags (a secondary's clean stop, a split brain) survive the codec; the
    /// first bit above them is still refused.
    @Test func theCleanStopAndSplitBrainFlagsRoundTripAndTheNextBitIsRefused() throws {
        var superblock = Self.sample(sequence: 1)
        superblock.flags = [.secondaryCleanStop, .splitBrain, .enabled]
        let decoded = try MetadataSuperblockCodec.decode(MetadataSuperblockCodec.encode(superblock)).get()
        #expect(decoded.flags == [.secondaryCleanStop, .splitBrain, .enabled])
        superblock.flags = MetadataFlags(rawValue: 1 << 13)
        #expect(MetadataSuperblockCodec.decode(MetadataSuperblockCodec.encode(superblock)) == .failure(.unknownFlags(1 << 13)))
    }

    @Test func geometryFieldsOutOfRangeAreRefused() {
        var superblock = Self.sample(sequence: 1)
        superblock.bitmapBlockBytes = 6000
        guard case .failure(.invalidField) = MetadataSuperblockCodec.decode(MetadataSuperblockCodec.encode(superblock)) else {
            Issue.record("a non-power-of-two block was accepted")
            return
        }
    }

    /// Found while fuzzing the loader (docs/fuzzing.md, FuzzMetadata): a sealed slot whose
    /// volume size is near 2^64 decoded, and its geometry (the file size the loader checks,
    /// `bitmapBits`) overflowed: the daemon would trap on a file naming such a size. No Linux
    /// volume is larger than 2^63 − 1 bytes (offsets are signed), so a slot that says more is
    /// refused as invalid.
    @Test func aVolumeSizeWhoseGeometryOverflowsIsRefused() {
        for size in [UInt64.max, UInt64.max - 4094, UInt64(Int64.max) + 1] {
            var superblock = Self.sample(sequence: 1)
            superblock.volumeSizeBytes = size
            let slot = MetadataSuperblockCodec.encode(superblock)
            guard case .failure(.invalidField) = MetadataSuperblockCodec.decode(slot) else {
                Issue.record("a volume size of \(size) bytes was accepted")
                continue
            }
        }
        var largest = Self.sample(sequence: 1)
        largest.volumeSizeBytes = MetadataGeometry.volumeSizeBytesMax
        #expect(MetadataSuperblockCodec.decode(MetadataSuperblockCodec.encode(largest)) == .success(largest))
        #expect(largest.geometry.fileBytes > largest.geometry.bitmapOffset)
    }

    @Test func theNewerValidSlotWins() throws {
        let loaded = try load(Self.sample(sequence: 8), Self.sample(sequence: 9)).get()
        #expect(loaded.superblock.sequence == 9)
        #expect(loaded.recovered == nil)
    }

    @Test func aTornSlotLeavesThePreviousStateInTheOther() throws {
        // The write of sequence 9 (slot B) tore: half of the new bytes over the old ones.
        let old = MetadataSuperblockCodec.encode(Self.sample(sequence: 7))
        var torn = MetadataSuperblockCodec.encode(Self.sample(sequence: 9))
        torn.replaceSubrange(2048..<4096, with: old[2048..<4096])
        torn[300] = 1  // differs from the old half too
        let loaded = try MetadataLoad.decide(
            fileBytes: Self.fileBytes, slotA: MetadataSuperblockCodec.encode(Self.sample(sequence: 8)), slotB: torn,
            expected: Self.expected
        ).get()
        #expect(loaded.superblock.sequence == 8)
        #expect(loaded.recovered?.slot == 1)
        #expect(loaded.recovered?.reason == .checksumMismatch)
    }

    @Test func bothSlotsBadIsAFailureNeverAFreshRecord() {
        var a = MetadataSuperblockCodec.encode(Self.sample(sequence: 8))
        var b = MetadataSuperblockCodec.encode(Self.sample(sequence: 9))
        a[100] ^= 1
        b[200] ^= 1
        let verdict = MetadataLoad.decide(fileBytes: Self.fileBytes, slotA: a, slotB: b, expected: Self.expected)
        #expect(verdict == .failure(.bothSlotsBad(slotA: .checksumMismatch, slotB: .checksumMismatch)))
        let zeroes = [UInt8](repeating: 0, count: 4096)
        #expect(MetadataLoad.decide(fileBytes: Self.fileBytes, slotA: zeroes, slotB: zeroes, expected: Self.expected)
            == .failure(.bothSlotsBad(slotA: .zeroes, slotB: .zeroes)))
    }

    @Test func aTruncatedOrMissingFileFails() {
        #expect(MetadataLoad.decide(fileBytes: 0, slotA: [], slotB: [], expected: Self.expected)
            == .failure(.truncated(fileBytes: 0, neededBytes: 8192)))
        #expect(MetadataLoad.decide(fileBytes: nil, slotA: [], slotB: [], expected: Self.expected) == .failure(.missing))
        // Both slots whole, the bitmap cut off.
        let verdict = load(Self.sample(sequence: 8), Self.sample(sequence: 9), fileBytes: 8192)
        #expect(verdict == .failure(.truncated(fileBytes: 8192, neededBytes: Self.fileBytes)))
    }

    @Test func metadataOfAnotherResourceOrSizeFails() {
        var other = Self.sample(sequence: 9)
        other.resourceName = "r1"
        #expect(load(Self.sample(sequence: 8), other) == .failure(.otherResource(found: "r1", expected: "r0")))
        var bigger = Self.sample(sequence: 9)
        bigger.volumeSizeBytes *= 2
        #expect(load(bigger, bigger, fileBytes: bigger.geometry.fileBytes)
            == .failure(.otherSize(foundBytes: Self.sizeBytes * 2, expectedBytes: Self.sizeBytes)))
        var expectation = Self.expected
        expectation.resourceUUID = 5
        guard case .failure(.otherUUID) = MetadataLoad.decide(
            fileBytes: Self.fileBytes, slotA: MetadataSuperblockCodec.encode(Self.sample(sequence: 8)),
            slotB: MetadataSuperblockCodec.encode(Self.sample(sequence: 9)), expected: expectation)
        else { Issue.record("another UUID was accepted"); return }
    }

    @Test func aNewerFormatInEitherSlotFails() {
        var newer = MetadataSuperblockCodec.encode(Self.sample(sequence: 9))
        newer[6] = UInt8(ascii: "0")
        newer[7] = UInt8(ascii: "4")
        newer[8] = 4
        reseal(&newer)
        let verdict = MetadataLoad.decide(fileBytes: Self.fileBytes, slotA: MetadataSuperblockCodec.encode(Self.sample(sequence: 8)),
                                          slotB: newer, expected: Self.expected)
        #expect(verdict == .failure(.unknownVersion(4)))
        #expect(MetadataLoadFailure.unknownVersion(4).description.contains("upgrade tandemd"))
    }

    @Test func aNewFileLoadsFromTwoValidSlots() throws {
        let slots = MetadataLoad.newFileSlots(Self.sample(sequence: 0))
        let loaded = try MetadataLoad.decide(fileBytes: Self.fileBytes, slotA: slots.slotA, slotB: slots.slotB,
                                             expected: Self.expected).get()
        #expect(loaded.recovered == nil)
        #expect(loaded.superblock == slots.superblock)
        #expect(loaded.superblock.slot == 0)
    }

    @Test func geometryPlacesTheRingAndTheBitmap() {
        let geometry = MetadataGeometry(volumeSizeBytes: 100 << 30, bitmapBlockBytes: 4096, alSlots: 8)
        #expect(geometry.activityLogSlotOffset(0) == 8192)
        #expect(geometry.bitmapOffset == 8192 + 8 * 4096)
        #expect(geometry.bitmapBits == 26_214_400)
        #expect(geometry.bitmapPages == 807)  // ceil(26 214 400 / 32 512)
        #expect(geometry.fileBytes == geometry.bitmapOffset + 807 * 4096)
        #expect(geometry.internalAreaBytes == 4 << 20)
        #expect(MetadataGeometry.bitsPerPage == 32_512)
    }

    @Test func activityLogTransactionsRoundTripAndTheNewestValidWins() {
        let uuid: UInt128 = 77
        let older = ActivityLogTransaction(transaction: 4, resourceUUID: uuid, extents: [1, 5, 900])
        let newer = ActivityLogTransaction(transaction: 5, resourceUUID: uuid, extents: [5, 6])
        #expect(ActivityLogTransaction.decode(older.encode(), resourceUUID: uuid, extentsMax: 512) == .success(older))
        var torn = ActivityLogTransaction(transaction: 6, resourceUUID: uuid, extents: [9]).encode()
        torn[40] ^= 0xFF
        let slots = [older.encode(), newer.encode(), torn, [UInt8](repeating: 0, count: 4096)]
        #expect(ActivityLogTransaction.newest(slots, resourceUUID: uuid, extentsMax: 512) == newer)
        #expect(ActivityLogTransaction.decode(older.encode(), resourceUUID: 78, extentsMax: 512)
            == .failure(.invalidField("transaction of another resource")))
        guard case .failure(.invalidField) = ActivityLogTransaction.decode(older.encode(), resourceUUID: uuid, extentsMax: 2)
        else { Issue.record("more extents than the maximum were accepted"); return }
    }

    @Test func bitmapPagesRoundTripAndABadPageIsReported() throws {
        let bits = (0..<BitmapPageHeader.bitsBytes).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let page = BitmapPageHeader(pageIndex: 3, superblockSequence: 42, resourceTag: 0x5A).encodePage(bits: bits)
        let decoded = try BitmapPageHeader.decodePage(page, expectedIndex: 3).get()
        #expect(decoded.header == BitmapPageHeader(pageIndex: 3, superblockSequence: 42, resourceTag: 0x5A))
        #expect(page[24] == 0x5A)  // the resource tag at its documented offset
        #expect(Array(decoded.bits) == bits)
        guard case .failure(.invalidField) = BitmapPageHeader.decodePage(page, expectedIndex: 4) else {
            Issue.record("a page at the wrong place was accepted"); return
        }
        var flipped = page
        flipped[1000] ^= 1
        guard case .failure(.checksumMismatch) = BitmapPageHeader.decodePage(flipped, expectedIndex: 3) else {
            Issue.record("a corrupted page was accepted"); return
        }
    }

    @Test func formatTwoFilesConvertWithTheirMarkers() throws {
        let record = ReplicationRecord(generation: 9, session: 0xAB, durableThroughEpoch: 7, synced: true)
        let older = ReplicationRecord(generation: 8, session: 0xAA)
        let meta = MetadataConversion.encodeLegacySlot(record) + MetadataConversion.encodeLegacySlot(older)
        let old = MetadataConversion.LegacyState(metaBytes: meta, enabledMarker: true, peerFailedMarker: false)
        let converted = try MetadataConversion.convert(old, role: .secondary, resourceName: "r0", volumeSizeBytes: 4096,
                                                       resourceUUID: 1).get()
        #expect(converted.record == record)
        #expect(converted.enabled && !converted.peerLacksWrites)
        #expect(converted.currentGeneration == 0xAB)
        // No .meta: the old daemon had not written a record yet.
        let none = MetadataConversion.LegacyState(metaBytes: nil, enabledMarker: false, peerFailedMarker: true)
        let fresh = try MetadataConversion.convert(none, role: .primary, resourceName: "r0", volumeSizeBytes: 4096,
                                                   resourceUUID: 1).get()
        #expect(fresh.record == ReplicationRecord() && fresh.peerLacksWrites)
        let zeroed = MetadataConversion.LegacyState(metaBytes: [UInt8](repeating: 0, count: 8192), enabledMarker: false,
                                                    peerFailedMarker: false)
        #expect(try MetadataConversion.convert(zeroed, role: .secondary, resourceName: "r0", volumeSizeBytes: 4096,
                                               resourceUUID: 1).get().record == ReplicationRecord())
        // A .meta with no valid slot is not a fresh record.
        let broken = MetadataConversion.LegacyState(metaBytes: [UInt8](repeating: 1, count: 8192), enabledMarker: false,
                                                    peerFailedMarker: false)
        guard case .failure(.bothSlotsBad) = MetadataConversion.convert(
            broken, role: .secondary, resourceName: "r0", volumeSizeBytes: 4096, resourceUUID: 1)
        else { Issue.record("an unreadable .meta converted"); return }
    }

    private func load(_ a: MetadataSuperblock, _ b: MetadataSuperblock, fileBytes: UInt64 = MetadataFormatTests.fileBytes)
        -> Result<MetadataLoaded, MetadataLoadFailure>
    {
        MetadataLoad.decide(fileBytes: fileBytes, slotA: MetadataSuperblockCodec.encode(a),
                            slotB: MetadataSuperblockCodec.encode(b), expected: Self.expected)
    }

    /// Recomputes a slot's CRC after a deliberate edit.
    private func reseal(_ bytes: inout [UInt8]) {
        for index in 12..<16 { bytes[index] = 0 }
        let crc = CRC32C.checksum(bytes)
        for index in 0..<4 { bytes[12 + index] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(index))) }
    }
}
