// The checksum-based resync of a crash's activity-log extents (issue 13 §4): the plan (which
// regions are compared, which are copied anyway) and PrimaryNode's walk (what it asks, what
// the copy skips, what it copies, what a lost link or a stop leaves).
import TandemCore
import Testing

/// A crash restart: the log's extent [0, `extentBytes`) and the blocks the durable pages mark;
/// the extent's regions are compared (the plan), the pages' blocks are copied.
private enum CrashHarness {
    static let volumeBytes: UInt64 = 4 << 20
    static let regionBytes: UInt64 = 128 << 10

    /// `checkpointBytes`: the node keeps an activity log and writes the pages of regions found
    /// the same once this many bytes were (nil: no log).
    static func make(extentBytes: UInt64 = 1 << 20, pageBlocks: [UInt64] = [512], bufferBytes: UInt64 = 8 << 20,
                     chunkBytes: UInt32 = 1 << 20, checkpointBytes: UInt64? = nil) -> DigestCompareDriver {
        var pages = DirtyBitmap(volumeSizeBytes: volumeBytes, blockBytes: 4096)
        for block in pageBlocks { _ = pages.setBlocks(BlockRun(first: block, count: 1)) }
        let extents = ActivityLog.dirtyRegions(afterCrash: [0], extentBytes: extentBytes, volumeSizeBytes: volumeBytes)
        let regions = ChecksumResync.plan(extents: extents, dirty: pages, regionBytes: regionBytes)
        var tracked = pages
        _ = tracked.setRange(offsetBytes: 0, lengthBytes: extentBytes)
        var config = PrimaryNodeConfig(primary: ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: bufferBytes),
                                       volumeSizeBytes: volumeBytes, chunkBytes: chunkBytes)
        if let checkpointBytes {
            config.activityLog = ActivityLogSettings(extents: 4, extentBytes: 1 << 20, writeBytesMax: 1 << 20, lastTransaction: 5)
            config.checksumCheckpointBytes = checkpointBytes
        }
        let node = PrimaryNode(
            config: config,
            session: 77, basis: .catchUp([CatchUpBase(session: 9, durableThroughEpoch: 3)]), trackedBitmap: tracked,
            checksumRegions: regions)
        return DigestCompareDriver(node: node, regionBytes: regionBytes)
    }
}

@Suite struct ChecksumResyncTests {
    @Test func thePlanComparesEveryRegionOfTheExtentsThePagesDoNotMarkWhole() {
        var pages = DirtyBitmap(volumeSizeBytes: 64 << 20, blockBytes: 4096)
        _ = pages.setRange(offsetBytes: 0, lengthBytes: 128 << 10)  // the first region, whole
        _ = pages.setBlocks(BlockRun(first: 40, count: 1))  // one block of the second
        let extents = ActivityLog.dirtyRegions(afterCrash: [15, 0], extentBytes: 4 << 20, volumeSizeBytes: 64 << 20)
        let regions = ChecksumResync.plan(extents: extents, dirty: pages, regionBytes: 128 << 10)
        #expect(regions.count == 31 + 32, "32 regions per extent, less the one the pages mark whole")
        #expect(regions.first == ChecksumRegion(offsetBytes: 128 << 10, lengthBytes: 128 << 10),
                "a region the pages mark in part is still compared (the rest may be identical)")
        #expect(regions.last == ChecksumRegion(offsetBytes: (64 << 20) - (128 << 10), lengthBytes: 128 << 10))
        // The volume's last extent may be short: its last region ends with the volume.
        let short = DirtyBitmap(volumeSizeBytes: (1 << 20) + 8192, blockBytes: 4096)
        let tail = ChecksumResync.plan(
            extents: ActivityLog.dirtyRegions(afterCrash: [1], extentBytes: 1 << 20, volumeSizeBytes: (1 << 20) + 8192),
            dirty: short, regionBytes: 128 << 10)
        #expect(tail == [ChecksumRegion(offsetBytes: 1 << 20, lengthBytes: 8192)])
    }

    /// A second crash during the compare: the next restart's plan compares again every region
    /// of the interrupted compare's record that the durable pages still mark whole (never
    /// compared, or found different and not copied yet), leaves one they mark in part to the
    /// copy and one they no longer mark alone (found the same, its page written), and keeps
    /// the newest transaction's extents as before.
    @Test func aResumedPlanComparesTheRecordedRegionsThePagesStillMarkWhole() {
        let volumeBytes: UInt64 = 64 << 20
        let regionBytes: UInt64 = 128 << 10
        let extentZero = ActivityLog.dirtyRegions(afterCrash: [0], extentBytes: 4 << 20, volumeSizeBytes: volumeBytes)
        var pages = DirtyBitmap(volumeSizeBytes: volumeBytes, blockBytes: 4096)
        // The interrupted compare found regions 0–9 the same (their page written clear), then a
        // write set one block of region 10; regions 11–31 were never compared.
        _ = pages.setBlocks(BlockRun(first: 10 * 32 + 5, count: 1))
        _ = pages.setRange(offsetBytes: 11 * regionBytes, lengthBytes: 21 * regionBytes)
        var geometry = DirtyBitmap(volumeSizeBytes: volumeBytes, blockBytes: 4096)
        let record = ChecksumResync.record(
            ChecksumResync.plan(extents: extentZero, dirty: geometry, regionBytes: regionBytes), geometry: geometry)
        #expect(record.outOfSyncBytes == 4 << 20, "the record names the whole extent it compared")
        // The session the second crash cut wrote in extent 3 (its newest transaction names it).
        let extents = ActivityLog.dirtyRegions(afterCrash: [3], extentBytes: 4 << 20, volumeSizeBytes: volumeBytes)
        let fresh = ChecksumResync.plan(extents: extents, dirty: pages, regionBytes: regionBytes)
        let resumed = ChecksumResync.plan(extents: extents, dirty: pages, regionBytes: regionBytes, resuming: record)
        #expect(fresh.count == 32, "without the record, extent 0's regions would be copied whole")
        #expect(resumed.count == 32 + 21, "extent 3, and the 21 regions never compared")
        #expect(resumed.first == ChecksumRegion(offsetBytes: 11 * regionBytes, lengthBytes: regionBytes))
        #expect(resumed == resumed.sorted { $0.offsetBytes < $1.offsetBytes } && resumed.suffix(32) == fresh[...])
        // A record of another geometry speaks for nothing here.
        geometry = DirtyBitmap(volumeSizeBytes: volumeBytes, blockBytes: 8192)
        let other = ChecksumResync.record([ChecksumRegion(offsetBytes: 0, lengthBytes: 4 << 20)], geometry: geometry)
        #expect(ChecksumResync.plan(extents: extents, dirty: pages, regionBytes: regionBytes, resuming: other) == fresh)
    }

    /// The regions found the same reach the bitmap pages as the compare goes (every
    /// `checksumCheckpointBytes`, and at its end), so a second crash does not copy them.
    @Test func regionsFoundTheSameAreWrittenClearToTheBitmapPagesAsTheCompareGoes() {
        var h = CrashHarness.make(pageBlocks: [], checkpointBytes: 256 << 10)
        h.connect()
        _ = Self.answerLog(&h)
        h.answer(0, same: true)
        #expect(Self.answerLog(&h).isEmpty, "128 KiB found the same: below the checkpoint")
        h.answer(128 << 10, same: false)
        #expect(Self.answerLog(&h).isEmpty, "a region that differs stays set: nothing to write")
        h.answer(256 << 10, same: true)
        #expect(Self.answerLog(&h) == [[0]], "256 KiB found the same: their page is written")
        #expect(!h.node.bitmap.anySet(offsetBytes: 0, lengthBytes: 128 << 10)
            && h.node.bitmap.anySet(offsetBytes: 128 << 10, lengthBytes: 128 << 10))
        var written: [[Int]] = []
        for offset in stride(from: UInt64(384 << 10), to: 896 << 10, by: 128 << 10) {
            h.answer(offset, same: true)
            written += Self.answerLog(&h)
        }
        #expect(written == [[0], [0]], "four more regions found the same: two more page writes")
        h.answer(896 << 10, same: true)
        #expect(h.node.checksumResyncProgress?.running == false && h.node.checksumResyncProgress?.checkedBytes == 1 << 20)
        #expect(Self.answerLog(&h) == [[0]], "the last region (below the checkpoint) is written as the compare ends")
    }

    /// Answers the activity-log and page writes the last event asked for (and those they lead
    /// to); returns the pages of each page write.
    static func answerLog(_ h: inout DigestCompareDriver) -> [[Int]] {
        var written: [[Int]] = []
        var pending = h.actions
        while !pending.isEmpty {
            switch pending.removeFirst() {
            case let .persistBitmapPages(ticket, pages, _):
                written.append(pages ?? [])
                pending += h.send(.bitmapPagesPersisted(ticket: ticket, errno: 0))
            case let .writeActivityLog(transaction, _, _, _, _):
                pending += h.send(.activityLogWritten(transaction: transaction, errno: 0))
            default:
                break
            }
        }
        return written
    }

    @Test func aCrashCatchUpCopiesOnlyTheRegionsWhoseDigestsDiffer() {
        var h = CrashHarness.make()
        #expect(h.node.outOfSyncBytes == (1 << 20) + 4096, "the extent and the page's block, until compared")
        h.connect()
        #expect(h.copyReads.map(\.0) == [2 << 20], "the copy takes the page's block, never a region not compared")
        #expect(h.asked == [0, 128 << 10, 256 << 10, 384 << 10], "four regions at once, asked of the peer")
        #expect(h.digestReads == h.asked, "and read here in the same turn")
        h.completeCopyReads()
        #expect(!h.syncCompleteSent && h.node.copyWanted, "the catch-up cannot end while regions wait")

        h.answer(0, same: true)
        #expect(h.asked == [512 << 10], "the next region takes the freed place")
        h.answer(128 << 10, same: false)
        #expect(h.copyReads.map(\.0) == [128 << 10] && h.copyReads.map(\.1) == [128 << 10],
                "a region that differs is copied at once, while the others are compared")
        h.completeCopyReads()
        h.answer(256 << 10, same: true)
        h.answer(384 << 10, same: true)
        for offset in stride(from: UInt64(512 << 10), to: 1 << 20, by: 128 << 10) {
            #expect(!h.syncCompleteSent)
            h.answer(offset, same: true)
        }
        #expect(h.actions.contains(.notice(.checksumResyncEnded(ChecksumResyncProgress(
            totalBytes: 1 << 20, checkedBytes: 1 << 20, differingBytes: 128 << 10, running: false, abandonedBecause: nil)))))
        #expect(h.node.copiedBytes == 4096 + (128 << 10), "the page's block and the region that differs, nothing else")
        h.completeCopyReads()
        #expect(h.syncCompleteSent && !h.node.copyWanted && h.node.outOfSyncBytes == 0)
    }

    @Test func aCatchUpWhoseRegionsAllAgreeCopiesOneBlockAndEnds() {
        var h = CrashHarness.make(extentBytes: 256 << 10, pageBlocks: [])
        h.connect()
        #expect(h.copyReads.isEmpty && h.asked == [0, 128 << 10])
        h.answer(0, same: true)
        h.answer(128 << 10, same: true)
        // A SyncComplete before any Data of the session is a violation to the peer: one block.
        #expect(h.copyReads.map(\.1) == [4096])
        h.completeCopyReads()
        #expect(h.syncCompleteSent && !h.node.copyWanted && h.node.copiedBytes == 4096)
    }

    /// Status `resync_rate_bytes_per_second` is a promise that bytes move: it reads 0 the moment
    /// the copy ends, not at the next sample a second later (the build before kept the last
    /// sample until then).
    @Test func theResyncRateReadsZeroTheMomentTheCopyEnds() {
        var h = CrashHarness.make(extentBytes: 256 << 10, pageBlocks: [])
        h.connect()
        h.send(.tick)  // the first sample starts the clock
        h.answer(0, same: false)
        h.completeCopyReads()
        h.nowNs += 1_000_000_000
        h.send(.tick)
        #expect(h.node.copyRateBytesPerSecond > 0, "the region that differed moved within the last second")
        h.answer(128 << 10, same: true)
        h.completeCopyReads()
        #expect(h.syncCompleteSent || !h.node.copyWanted, "the copy ended")
        #expect(h.node.copyRateBytesPerSecond == 0, "nothing moves any more: \(h.node.copyRateBytesPerSecond) B/s")
    }

    /// A secondary that resumes a journal of an earlier session answers `unvouched`
    /// (SecondaryNode+Verify): the region is copied, even where the local digest happens to
    /// be the same value.
    @Test func anUnvouchedRegionIsCopiedWhateverTheLocalDigest() {
        var h = CrashHarness.make(extentBytes: 256 << 10, pageBlocks: [])
        h.connect()
        #expect(h.asked == [0, 128 << 10])
        h.send(.verifyRegionRead(offsetBytes: 0, digest: .unvouched, errno: 0))
        h.send(.peerDigest(offsetBytes: 0, lengthBytes: 128 << 10, digest: .unvouched))
        #expect(h.copyReads.map(\.0) == [0] && h.copyReads.map(\.1) == [128 << 10])
        h.completeCopyReads()
        h.answer(128 << 10, same: true)
        #expect(h.node.copiedBytes == 128 << 10 && !RegionDigest(high: 1, low: 2).agrees(withPeer: .unvouched))
    }

    @Test func aWriteToARegionBeingComparedWaitsAndARegionIsAskedOnlyOnceSettled() {
        var h = CrashHarness.make(extentBytes: 256 << 10, pageBlocks: [])
        h.send(.enable)
        h.send(.peerVersion(WireFormat.helloVersion))
        h.send(.linkUp)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        #expect(h.asked == [0, 128 << 10])
        h.send(.request(id: 1, .write(offsetBytes: 4096, lengthBytes: 4096, fua: false)))
        #expect(!h.actions.contains { if case .writeLocal = $0 { return true } else { return false } },
                "locked while compared")
        h.answer(0, same: true)
        #expect(h.actions.contains { if case let .writeLocal(w) = $0 { return w.offsetBytes == 4096 } else { return false } })
    }

    /// A region is asked only once the stream's earlier writes to it are confirmed, which a
    /// consistency group's secondary holds while another member is away (its barrier): a
    /// write to a region taken but not asked gives it up to the copy instead of waiting.
    @Test func aWriteToARegionNotAskedYetGivesItUpToTheCopyInsteadOfWaiting() {
        var h = CrashHarness.make(pageBlocks: [])
        h.connect()
        #expect(h.asked == [0, 128 << 10, 256 << 10, 384 << 10])
        // A write to the sixth region before the compare takes it: admitted, never confirmed.
        h.send(.request(id: 1, .write(offsetBytes: 640 << 10, lengthBytes: 4096, fua: false)))
        let first = h.localWrites
        #expect(first.map(\.offset) == [640 << 10])
        h.answer(0, same: true)
        #expect(h.asked == [512 << 10])
        h.answer(128 << 10, same: true)
        #expect(h.asked.isEmpty, "the sixth region is taken (locked) but waits for the held write")
        h.send(.request(id: 2, .write(offsetBytes: (640 << 10) + 8192, lengthBytes: 4096, fua: false)))
        let second = h.localWrites
        #expect(second.map(\.offset) == [(640 << 10) + 8192], "admitted at once: the region is given up")
        #expect(h.asked == [768 << 10], "its place goes to the next region")
        #expect(h.node.checksumResyncProgress?.givenUpBytes == 128 << 10)
        #expect(h.node.outOfSyncBytes == 768 << 10, "its bits stay set (two regions compared equal are cleared)")
        for write in first + second { h.send(.localWriteDone(sequence: write.sequence, errno: 0)) }
        #expect(h.copyReads.map(\.0) == [640 << 10] && h.copyReads.map(\.1) == [128 << 10],
                "the region given up is copied whole, as one that differs, once the writes to it are on this disk")
        h.completeCopyReads()
        for offset: UInt64 in [256 << 10, 384 << 10, 512 << 10, 768 << 10, 896 << 10] { h.answer(offset, same: true) }
        #expect(h.actions.contains(.notice(.checksumResyncEnded(ChecksumResyncProgress(
            totalBytes: 1 << 20, checkedBytes: 7 * (128 << 10), differingBytes: 0, running: false,
            abandonedBecause: nil, givenUpBytes: 128 << 10)))))
        #expect(h.node.outOfSyncBytes == 0)
    }

    /// A WRITE_ZEROES admitted before the compare took its regions, whose later chunks wait
    /// for room in the buffer: the stream does not hold them yet and they pass no region lock,
    /// so a region they will land in is asked only once they are issued and durable on the
    /// peer (before, it was asked at once and the chunk was written during its reads).
    @Test func aRegionWithZeroChunksStillToIssueIsNotAsked() {
        // One 64 KiB chunk fits the buffer at a time (sync: a full buffer makes the request wait).
        var h = CrashHarness.make(pageBlocks: [], bufferBytes: 96 << 10, chunkBytes: 64 << 10)
        h.connect()
        #expect(h.asked == [0, 128 << 10, 256 << 10, 384 << 10])
        // [704 KiB, 832 KiB): a chunk in the sixth region, then one in the seventh.
        h.send(.request(id: 1, .writeZeroes(offsetBytes: 704 << 10, lengthBytes: 128 << 10, fua: false)))
        var log = h.localWrites.map { "chunk \($0.offset >> 10)" }
        var chunks = h.localWrites
        func note(_ h: DigestCompareDriver) {
            log += h.asked.map { "asked \($0 >> 10)" } + h.localWrites.map { "chunk \($0.offset >> 10)" }
            chunks += h.localWrites
        }
        h.nowNs += 1_000_000_000  // the resync throttle's next step
        for offset in stride(from: UInt64(0), to: 512 << 10, by: 128 << 10) {
            h.answer(offset, same: true)
            note(h)
        }
        var index = 0
        while index < chunks.count {
            let chunk = chunks[index]
            index += 1
            h.send(.localWriteDone(sequence: chunk.sequence, errno: 0))
            note(h)
            h.send(.peer(.dataAck(sequence: chunk.sequence)))
            note(h)
            log.append("durable \(chunk.offset >> 10)")
            h.send(.peer(.durableThroughEpoch(h.node.primary.openEpoch)))
            note(h)
        }
        #expect(log == ["chunk 704", "asked 512", "asked 896", "durable 704", "asked 640", "chunk 768", "durable 768",
                        "asked 768"],
                "the seventh region is asked only once its chunk is issued and durable on the peer")
        h.nowNs += 1_000_000_000
        for offset: UInt64 in [512 << 10, 640 << 10, 768 << 10, 896 << 10] { h.answer(offset, same: true) }
        #expect(h.node.checksumResyncProgress == ChecksumResyncProgress(
            totalBytes: 1 << 20, checkedBytes: 1 << 20, differingBytes: 0, running: false, abandonedBecause: nil))
    }

    @Test func regionsInFlightAreAskedAgainAfterALinkLoss() {
        var h = CrashHarness.make(extentBytes: 256 << 10, pageBlocks: [])
        h.connect()
        #expect(h.asked == [0, 128 << 10])
        h.send(.linkDown(reason: "cut", refusal: nil))
        // The local reads still end; their digests are dropped.
        h.send(.verifyRegionRead(offsetBytes: 0, digest: RegionDigest(high: 1, low: 1), errno: 0))
        h.send(.verifyRegionRead(offsetBytes: 128 << 10, digest: RegionDigest(high: 1, low: 1), errno: 0))
        #expect(h.node.checksumResyncProgress?.checkedBytes == 0)
        h.send(.tick)
        h.nowNs += 10_000_000_000
        h.send(.tick)
        h.send(.linkUp)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        #expect(h.asked == [0, 128 << 10], "asked again on the new link")
        h.answer(0, same: true)
        h.answer(128 << 10, same: false)
        #expect(h.node.checksumResyncProgress == ChecksumResyncProgress(
            totalBytes: 256 << 10, checkedBytes: 256 << 10, differingBytes: 128 << 10, running: false, abandonedBecause: nil))
    }

    @Test func withoutAResyncSlotNothingNewIsAskedButWhatWasAskedCounts() {
        var h = CrashHarness.make(pageBlocks: [])
        h.connect()
        #expect(h.asked == [0, 128 << 10, 256 << 10, 384 << 10])
        h.send(.resyncPermitted(false))
        h.answer(0, same: true)
        #expect(h.asked.isEmpty, "paused: no new region is asked")
        #expect(h.node.checksumResyncProgress?.checkedBytes == 128 << 10,
                "the answer on this link counts: re-asking a region the peer may still read is a violation there")
        h.send(.resyncPermitted(true))
        #expect(h.asked == [512 << 10])
    }

    @Test func aPeerThatCannotDigestGetsTheRegionsCopiedWhole() {
        var h = CrashHarness.make(extentBytes: 256 << 10, pageBlocks: [])
        h.send(.enable)
        h.send(.peerVersion(3))
        h.send(.linkUp)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        #expect(h.asked.isEmpty)
        #expect(h.node.checksumResyncProgress?.abandonedBecause?.contains("protocol 3") == true)
        #expect(h.copyReads.map(\.1) == [256 << 10], "what a crash restart copied before")
    }

    @Test func regionsOutsideTheVolumeOrNotMarkedAreNotCompared() {
        var tracked = DirtyBitmap(volumeSizeBytes: 4 << 20, blockBytes: 4096)
        _ = tracked.setRange(offsetBytes: 0, lengthBytes: 128 << 10)
        let node = PrimaryNode(
            config: PrimaryNodeConfig(primary: ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 8 << 20),
                                      volumeSizeBytes: 4 << 20),
            session: 77, basis: .catchUp([CatchUpBase(session: 9, durableThroughEpoch: 3)]), trackedBitmap: tracked,
            checksumRegions: [ChecksumRegion(offsetBytes: 0, lengthBytes: 128 << 10),
                              ChecksumRegion(offsetBytes: 128 << 10, lengthBytes: 128 << 10),
                              ChecksumRegion(offsetBytes: 4 << 20, lengthBytes: 128 << 10)])
        #expect(node.checksumResyncProgress?.totalBytes == 128 << 10,
                "a region the bitmap does not mark, or past the volume (a forced shrink since), is left alone")
    }

    @Test func aStopBeforeTheCompareEndsLeavesItsRegionsDirtyForTheSeal() {
        var h = CrashHarness.make(extentBytes: 256 << 10, pageBlocks: [])
        h.connect()
        h.answer(0, same: true)
        h.send(.stop)
        #expect(h.node.checksumResyncProgress?.abandonedBecause == "replication stopped")
        #expect(h.node.outOfSyncBytes == 128 << 10, "the region not compared stays set: the stop's bitmap covers it")
    }

    /// A stop that ends the compare early (disable, a daemon stop) seals the node's bitmap: the
    /// start after it compares what the record names and that bitmap still marks whole —
    /// regions never answered and one that differed — and leaves alone one found the same and
    /// one written since (marked in part: those blocks are copied).
    @Test func theStartAfterAStopComparesWhatTheStoppedCompareStillOwed() {
        var h = CrashHarness.make(extentBytes: 1 << 20, pageBlocks: [])
        let extent = ActivityLog.dirtyRegions(afterCrash: [0], extentBytes: 1 << 20, volumeSizeBytes: CrashHarness.volumeBytes)
        let geometry = DirtyBitmap(volumeSizeBytes: CrashHarness.volumeBytes, blockBytes: 4096)
        let record = ChecksumResync.record(ChecksumResync.plan(extents: extent, dirty: geometry, regionBytes: 128 << 10),
                                           geometry: geometry)
        h.connect()
        h.answer(0, same: true)
        h.answer(128 << 10, same: false)
        h.answer(256 << 10, same: true)
        h.send(.stop)
        var sealed = h.node.bitmap
        _ = sealed.clearRange(offsetBytes: 512 << 10, lengthBytes: 128 << 10)
        _ = sealed.setBlocks(BlockRun(first: (512 << 10) / 4096, count: 1))  // written while disabled, in part
        let plan = ChecksumResync.plan(afterStop: sealed, regionBytes: 128 << 10, resuming: record)
        let expected: [UInt64] = [128 << 10, 384 << 10, 640 << 10, 768 << 10, 896 << 10]
        #expect(plan.map(\.offsetBytes) == expected, "\(plan)")
        #expect(ChecksumResync.plan(afterStop: sealed, regionBytes: 128 << 10, resuming: nil).isEmpty,
                "without a record, what the stop left is copied")
    }

    /// A local digest read still out when the compare ends (a stop) comes back later: it is
    /// the ended compare's and changes nothing (it used to reach online verify's read, whose
    /// precondition stopped the process: found by the node simulator).
    @Test func aDigestReadOfACompareThatEndedMeanwhileIsDropped() {
        var h = CrashHarness.make(extentBytes: 256 << 10, pageBlocks: [])
        h.connect()
        let reads = h.digestReads
        #expect(!reads.isEmpty, "the compare read a region: \(h.actions)")
        h.send(.stop)
        #expect(h.node.checksumResyncProgress?.abandonedBecause == "replication stopped")
        let outOfSync = h.node.outOfSyncBytes
        for offset in reads {
            h.send(.verifyRegionRead(offsetBytes: offset, digest: RegionDigest(high: offset, low: 1), errno: 0))
            #expect(h.actions.isEmpty, "a late read of an ended compare acts: \(h.actions)")
        }
        #expect(h.node.outOfSyncBytes == outOfSync)
    }
}
