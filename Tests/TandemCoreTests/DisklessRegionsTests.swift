// The diskless regions (PrimaryNode+DisklessRegions, LackingRecord; issue 13 §4): a diskless
// primary's record keeps the regions written through the peer, each durable before a write
// over it goes through the peer, and a start pulls the regions the record proves — the whole
// volume, with the reason, only when it cannot prove them.
import TandemCore
import Testing

private func held(_ actions: [PrimaryNodeAction]) -> Bool {
    actions.contains { if case .holdLocalWrite = $0 { return true } else { return false } }
}

/// The page writes asked for: (ticket, runs, fresh).
private func pageWrites(_ actions: [PrimaryNodeAction]) -> [(UInt64, [BlockRun], Bool)] {
    actions.compactMap {
        if case let .persistLackingRegions(ticket, runs, blockBytes, fresh) = $0 {
            #expect(blockBytes == 4096)
            return (ticket, runs, fresh)
        }
        return nil
    }
}

/// A node whose disk failed under a write of block 0 and whose record keeps regions: the
/// first page write (fresh, block 0) and the flag are done.
private func recordedNode() -> PrimaryNode {
    var node = disklessConnectedNode(keepsRegions: true)
    _ = disklessHandle(&node, .request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
    _ = disklessHandle(&node, .localWriteDone(sequence: 1, errno: 5))
    // The peer applied the failed write: it asks for the record (and waits for it).
    let acked = disklessHandle(&node, .peer(.dataAck(sequence: 1)))
    let fresh = pageWrites(acked)
    #expect(fresh.count == 1 && fresh[0].2 && fresh[0].1 == [BlockRun(first: 0, count: 1)],
            "the failed write's region, written fresh before the flag: \(acked)")
    #expect(!acked.contains(.answer(1, errno: 0)) && !acked.contains(.answer(1, errno: 5)), "\(acked)")
    let first = disklessHandle(&node, .request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
    #expect(pageWrites(first).isEmpty && !first.contains(.recordLocalLacksWrites(true)) && !held(first), "\(first)")
    let flag = disklessHandle(&node, .lackingRegionsPersisted(ticket: fresh[0].0, errno: 0, reason: nil))
    #expect(flag == [.recordLocalLacksWrites(true)], "then the flag: \(flag)")
    #expect(node.localDisk.regionsKept == true)
    return node
}

@Suite struct DisklessRegionsTests {
    @Test func aWriteThroughThePeerWaitsUntilItsRegionIsDurableInTheRecord() {
        var node = recordedNode()
        let recorded = disklessHandle(&node, .localLacksWritesRecorded(set: true, errno: 0, reason: nil))
        #expect(recorded.contains(.answer(1, errno: 0)), "the failed write's region is durable: it succeeds: \(recorded)")
        let asked = pageWrites(recorded)
        #expect(asked.count == 1 && !asked[0].2 && asked[0].1 == [BlockRun(first: 2, count: 1)], "\(recorded)")
        #expect(!held(recorded), "not sent to the peer before its bit is durable: \(recorded)")
        let durable = disklessHandle(&node, .lackingRegionsPersisted(ticket: asked[0].0, errno: 0, reason: nil))
        #expect(held(durable) && pageWrites(durable).isEmpty, "\(durable)")
        #expect(disklessHandle(&node, .peer(.dataAck(sequence: 2))).contains(.answer(2, errno: 0)))
        // Its region again, and a region inside the durable set: at once, no page write.
        let again = disklessHandle(&node, .request(id: 3, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        #expect(held(again) && pageWrites(again).isEmpty, "\(again)")
        #expect(node.localDisk.regionWrites == 2)
    }

    @Test func writesQueuedBehindAPageWriteShareTheNextOne() {
        var node = recordedNode()
        let recorded = disklessHandle(&node, .localLacksWritesRecorded(set: true, errno: 0, reason: nil))
        let first = pageWrites(recorded)[0]
        // While the page write is in flight, two more writes to new regions queue up behind it.
        #expect(pageWrites(disklessHandle(&node, .request(id: 3, .write(offsetBytes: 1 << 20, lengthBytes: 8192, fua: false)))).isEmpty)
        #expect(pageWrites(disklessHandle(&node, .request(id: 4, .write(offsetBytes: 4 << 20, lengthBytes: 4096, fua: false)))).isEmpty)
        let next = disklessHandle(&node, .lackingRegionsPersisted(ticket: first.0, errno: 0, reason: nil))
        // Write 2 goes; write 3's region is not durable: one page write for 3 and 4.
        let asked = pageWrites(next)
        #expect(asked.count == 1, "\(next)")
        #expect(asked.first?.1 == [BlockRun(first: 256, count: 2), BlockRun(first: 1024, count: 1)], "\(asked)")
        let both = disklessHandle(&node, .lackingRegionsPersisted(ticket: asked[0].0, errno: 0, reason: nil))
        let heldCount = both.filter { if case .holdLocalWrite = $0 { return true } else { return false } }.count
        #expect(heldCount == 2 && pageWrites(both).isEmpty, "one fdatasync for both: \(both)")
    }

    @Test func aPageWriteThatFailsRefusesWritesThroughThePeer() {
        var node = recordedNode()
        let recorded = disklessHandle(&node, .localLacksWritesRecorded(set: true, errno: 0, reason: nil))
        let asked = pageWrites(recorded)[0]
        let failed = disklessHandle(&node, .lackingRegionsPersisted(ticket: asked.0, errno: 5, reason: "the bitmap page write failed"))
        #expect(failed.contains(.answer(2, errno: 5)) && !held(failed), "never through the peer unrecorded: \(failed)")
        guard case let .refused(reason) = node.mutationPath else { Issue.record("not refused: \(node.mutationPath)"); return }
        #expect(reason.contains("the bitmap page write failed"), "\(reason)")
    }

    @Test func aRecordThatCannotKeepRegionsKeepsTheFlagAlone() {
        var node = disklessConnectedNode(keepsRegions: true)
        _ = disklessHandle(&node, .request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        _ = disklessHandle(&node, .localWriteDone(sequence: 1, errno: 5))
        let first = pageWrites(disklessHandle(&node, .peer(.dataAck(sequence: 1))))
        _ = disklessHandle(&node, .request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        #expect(first.count == 1, "the failed write's region, asked for when the peer applied it")
        guard let fresh = first.first else { return }
        let flag = disklessHandle(&node, .lackingRegionsPersisted(ticket: fresh.0, errno: 5, reason: "the metadata is internal"))
        #expect(flag == [.recordLocalLacksWrites(true)], "\(flag)")
        let recorded = disklessHandle(&node, .localLacksWritesRecorded(set: true, errno: 0, reason: nil))
        #expect(held(recorded) && pageWrites(recorded).isEmpty, "the flag alone, as before: \(recorded)")
        #expect(recorded.contains(.answer(1, errno: 0)), "the flag alone covers the failed write too: \(recorded)")
        #expect(node.localDisk.regionsKept == false)
    }

    @Test func aDriverThatKeepsNoRegionsAsksForNone() {
        var node = disklessConnectedNode()
        _ = disklessHandle(&node, .request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        _ = disklessHandle(&node, .localWriteDone(sequence: 1, errno: 5))
        #expect(disklessHandle(&node, .peer(.dataAck(sequence: 1))).contains(.recordLocalLacksWrites(true)),
                "the flag alone, no page write first")
    }

    // MARK: The start

    @Test func aStartPullsTheRegionsTheRecordProvesNotTheVolume() {
        var pages = DirtyBitmap(volumeSizeBytes: 64 << 20, blockBytes: 65_536)  // the metadata's geometry
        pages.setRange(offsetBytes: 8 << 20, lengthBytes: 2 << 20)
        pages.setRange(offsetBytes: 30 << 20, lengthBytes: 4096)  // a 64 KiB block
        var node = disklessConnectedNode(keepsRegions: true, localLacksWrites: true, record: .regions(pages))
        #expect(!node.localDisk.wholeVolume && node.localDisk.wholeVolumeBecause == nil)
        #expect(node.localDisk.lackingBytes == (2 << 20) + 65_536, "\(node.localDisk.lackingBytes)")
        #expect(node.localDisk.regionsKept == true)
        var pulled: UInt64 = 0
        var actions: [PrimaryNodeAction] = []
        while let region = node.localDisk.pulls.first {
            #expect(region.offsetBytes >= 8 << 20 && region.offsetBytes < 30 << 20 + 65_536, "\(region)")
            pulled += UInt64(region.lengthBytes)
            actions = disklessHandle(&node, .regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes,
                                                  errno: 0, local: false))
        }
        #expect(pulled == (2 << 20) + 65_536)
        #expect(actions.contains(.recordLocalLacksWrites(false)), "\(actions)")
        // A write over a region the record holds needs no page write (it stays set until the
        // flag is cleared); one elsewhere would.
        #expect(node.localDisk.durable?.anySet(offsetBytes: 8 << 20, lengthBytes: 4096) == true)
    }

    @Test func aStartThatCannotProveTheRegionsPullsTheWholeVolumeAndSaysWhy() {
        let unproven = disklessConnectedNode(volumeBytes: 1 << 20, keepsRegions: true, localLacksWrites: true, record: .unproven("page 0: zeroes"))
        #expect(unproven.localDisk.wholeVolume && unproven.localDisk.lackingBytes == 1 << 20)
        #expect(unproven.localDisk.wholeVolumeBecause?.contains("page 0: zeroes") == true)
        #expect(unproven.localDisk.regionsKept == false, "no page write may add to pages it could not prove")
        let flagOnly = disklessConnectedNode(volumeBytes: 1 << 20, keepsRegions: true, localLacksWrites: true, record: .flagOnly)
        #expect(flagOnly.localDisk.wholeVolume)
        #expect(flagOnly.localDisk.wholeVolumeBecause?.contains("not which regions") == true)
    }

    @Test func theDecisionPrefersThisProcesssExactSetAndRefusesAnotherVolumesPages() {
        var kept = DirtyBitmap(volumeSizeBytes: 64 << 20, blockBytes: 4096)
        kept.setRange(offsetBytes: 8 << 20, lengthBytes: 4096)
        var pages = DirtyBitmap(volumeSizeBytes: 64 << 20, blockBytes: 1 << 20)
        pages.setRange(offsetBytes: 8 << 20, lengthBytes: 4096)
        let both = LackingStart.decide(volumeSizeBytes: 64 << 20, blockBytes: 4096, kept: kept, record: .regions(pages))
        #expect(both.lacking?.outOfSyncBytes == 4096, "the exact set, not the record's 1 MiB block")
        #expect(both.durable?.outOfSyncBytes == 1 << 20, "the record's bits are durable")
        let other = DirtyBitmap(volumeSizeBytes: 32 << 20, blockBytes: 4096)
        let resized = LackingStart.decide(volumeSizeBytes: 64 << 20, blockBytes: 4096, kept: nil, record: .regions(other))
        #expect(resized.lacking == nil && resized.durable == nil && resized.wholeVolumeBecause != nil)
        let converted = LackingStart.convert(pages, blockBytes: 4096)
        #expect(converted.outOfSyncBytes == 1 << 20 && converted.anySet(offsetBytes: 8 << 20, lengthBytes: 1 << 20))
    }
}
