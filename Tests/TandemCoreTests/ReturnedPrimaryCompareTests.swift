// The promoted node's resync of a returned primary compares the returned node's set by digest
// (issue 13 §4, issue 14; ReturnedPrimaryCompare, PrimaryNode.unitePeerBitmap): the plan (its
// regions outside the promoted node's own changes, in the copy's geometry) and the union copy's
// walk (only the promoted node's changes and the regions whose digests differ are copied; a
// split brain's union copies the loser's set whole, as before).
import TandemCore
import Testing

@Suite struct ReturnedPrimaryCompareTests {
    static let volumeBytes: UInt64 = 16 << 20
    static let regionBytes: UInt64 = 128 << 10

    private static func bitmap(_ ranges: [(UInt64, UInt64)], blockBytes: UInt64 = 4096) -> DirtyBitmap {
        var bitmap = DirtyBitmap(volumeSizeBytes: volumeBytes, blockBytes: blockBytes)
        for (offset, length) in ranges { _ = bitmap.setRange(offsetBytes: offset, lengthBytes: length) }
        return bitmap
    }

    @Test func thePlanComparesTheReturnedSetOutsideThePromotedNodesChanges() {
        // The returned node's one 4 MiB extent at 8 MiB; the promoted node wrote one block in
        // its third region and 1 MiB elsewhere.
        let returned = Self.bitmap([(8 << 20, 4 << 20)])
        let promoted = Self.bitmap([((8 << 20) + (256 << 10) + 4096, 4096), (0, 1 << 20)])
        let geometry = Self.bitmap([])
        let regions = ReturnedPrimaryCompare.plan(returned: returned, promotedChanges: promoted, geometry: geometry,
                                                  regionBytes: Self.regionBytes)
        #expect(regions.count == 31, "32 regions of the extent, less the one the promoted node wrote into")
        #expect(regions.first == ChecksumRegion(offsetBytes: 8 << 20, lengthBytes: Self.regionBytes))
        #expect(!regions.contains(ChecksumRegion(offsetBytes: (8 << 20) + (256 << 10), lengthBytes: Self.regionBytes)))
        #expect(regions.last == ChecksumRegion(offsetBytes: (12 << 20) - Self.regionBytes, lengthBytes: Self.regionBytes))
    }

    @Test func aReturnedSetOfAnotherBlockSizeIsRoundedOutwardAndCutAtItsRuns() {
        // 1 MiB blocks on the returned node, 64 KiB on the promoted one (the copy's geometry):
        // the run covers the whole 1 MiB block; a 4 KiB promoted change at 1 MiB + 64 KiB
        // removes that region only.
        let returned = Self.bitmap([((1 << 20) + 4096, 4096)], blockBytes: 1 << 20)
        let promoted = Self.bitmap([((1 << 20) + (64 << 10), 4096)])
        let geometry = Self.bitmap([], blockBytes: 64 << 10)
        let regions = ReturnedPrimaryCompare.plan(returned: returned, promotedChanges: promoted, geometry: geometry,
                                                  regionBytes: Self.regionBytes)
        #expect(regions.map(\.offsetBytes) == stride(from: UInt64(1 << 20) + Self.regionBytes, to: 2 << 20,
                                                     by: Int(Self.regionBytes)).map { $0 })
        #expect(regions.allSatisfy { $0.lengthBytes == Self.regionBytes })
        // A set ending inside a region: the region stops with the set.
        let short = ReturnedPrimaryCompare.plan(returned: Self.bitmap([(0, 8192)]), promotedChanges: Self.bitmap([]),
                                                geometry: Self.bitmap([]), regionBytes: Self.regionBytes)
        #expect(short == [ChecksumRegion(offsetBytes: 0, lengthBytes: 8192)])
    }

    /// The promoted node's session (a full copy for the peer) restricted to its own changes,
    /// then the returned node's set united (`compare`: as a returned primary's).
    private static func unionHarness(own: DirtyBitmap, returned: DirtyBitmap, compare: Bool) -> DigestCompareDriver {
        var node = PrimaryNode(
            config: PrimaryNodeConfig(primary: ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 8 << 20),
                                      volumeSizeBytes: volumeBytes),
            session: 77, basis: .fullCopy)
        node.restrictCopy(to: own)
        _ = node.unitePeerBitmap(returned, survivorChanges: own, compareVictim: compare)
        return DigestCompareDriver(node: node, regionBytes: regionBytes)
    }

    @Test func theUnionCopiesThePromotedChangesAndOnlyTheReturnedRegionsThatDiffer() {
        let own = Self.bitmap([(0, 64 << 10)])
        let returned = Self.bitmap([(8 << 20, 512 << 10)])
        var h = Self.unionHarness(own: own, returned: returned, compare: true)
        #expect(h.node.outOfSyncBytes == (64 << 10) + (512 << 10), "the union, until compared")
        h.connect()
        #expect(h.copyReads.map(\.0) == [0], "the promoted node's own changes are copied at once")
        let base: UInt64 = 8 << 20
        let firstFour: [UInt64] = [base, base + Self.regionBytes, base + 2 * Self.regionBytes, base + 3 * Self.regionBytes]
        #expect(h.asked == firstFour, "the returned node's regions are asked, never copied before they are compared")
        h.completeCopyReads()
        #expect(!h.syncCompleteSent, "the copy cannot end while regions wait")
        h.answer(8 << 20, same: true)
        h.answer((8 << 20) + (128 << 10), same: false)
        #expect(h.copyReads.map(\.0) == [(8 << 20) + (128 << 10)])
        h.completeCopyReads()
        h.answer((8 << 20) + (256 << 10), same: true)
        h.answer((8 << 20) + (384 << 10), same: true)
        #expect(h.node.checksumResyncProgress == ChecksumResyncProgress(
            totalBytes: 512 << 10, checkedBytes: 512 << 10, differingBytes: 128 << 10, running: false, abandonedBecause: nil),
            "the union's full-copy marking does not give the compare up")
        h.completeCopyReads()
        #expect(h.syncCompleteSent && !h.node.copyWanted)
        #expect(h.node.copiedBytes == (64 << 10) + (128 << 10), "own changes and the one differing region, nothing else")
    }

    @Test func aSplitBrainsUnionCopiesTheLosersSetWhole() {
        let own = Self.bitmap([(0, 64 << 10)])
        let returned = Self.bitmap([(8 << 20, 512 << 10)])
        var h = Self.unionHarness(own: own, returned: returned, compare: false)
        h.connect()
        #expect(h.asked.isEmpty && h.node.checksumResyncProgress == nil)
        h.completeCopyReads()
        #expect(h.syncCompleteSent && h.node.copiedBytes == (64 << 10) + (512 << 10))
    }

    @Test func widenedToEveryBlockTheCompareIsDropped() {
        var h = Self.unionHarness(own: Self.bitmap([(0, 64 << 10)]), returned: Self.bitmap([(8 << 20, 512 << 10)]), compare: true)
        h.node.widenCopyToEveryBlock()
        h.connect()
        #expect(h.asked.isEmpty && h.node.outOfSyncBytes == Self.volumeBytes)
    }
}
