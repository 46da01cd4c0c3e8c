// PrimaryNode's checksum-based resync of the activity log's extents after a crash (issue 13
// §4; ChecksumResync holds the plan and explains it). A crash-recovery catch-up starts with
// the extents' regions set in the bitmap like any dirty region; the regions the plan names
// are compared before the copy may read them:
//
// - The copy skips a region not compared yet (`copyRunOutsideChecksum`), and the catch-up
//   cannot end while one is left. A region whose digests differ is left set (the copy reads
//   it as it is now); one whose digests agree is cleared: the peer holds those bytes.
// - A region is compared as online verify compares one (PrimaryNode+Verify): locked when
//   taken (`overlapsCopy`), asked only once no write the stream holds overlaps it (every
//   earlier write to it is durable on the peer) and no chunk of an admitted WRITE_ZEROES is
//   still to be issued into it (chunks pass no lock: one would land during the reads),
//   throttled by `resync_rate` (its length counts as resync traffic), then read here and
//   asked of the peer (`.readVerifyRegion`, `.sendDigestRequest`; up to
//   `regionsInFlightMax` at once).
// - An application write never waits for a region that is not asked yet: it gives the
//   region up to the copy (`yieldChecksumRegions`; counted `givenUpBytes`, its bits stay set,
//   so it is copied whole) and goes on. Waiting would tie the write to the peer's
//   confirmation of the stream's earlier writes, which a consistency group's secondary holds
//   while another member is away (its group barrier, docs/groups.md). A region asked is
//   answered at once (the peer reads its volume as it is) and stays locked until then.
// - It asks while the link is up, the peer is ready, this node is not Ahead and holds a
//   resync slot; what was asked is answered on the same link. A lost link puts the regions
//   in flight back (asked again on the next one). A full copy, a stop,
//   a failed disk or a peer too old to digest gives it up: the regions left stay set and are
//   copied whole, which is what a crash restart did before.
// - A second crash resumes it: the regions found the same are written clear to the bitmap
//   pages as it goes (`checkpointChecksumPages`), and the next crash restart compares again
//   what the pages still mark of the regions the driver recorded (ChecksumResync.plan(…resuming:)).

extension PrimaryNode {
    /// The compare of the activity log's extents running, or nil.
    public var checksumResyncProgress: ChecksumResyncProgress? {
        checksumResync?.progress ?? lastChecksumResync
    }

    /// A crash-recovery catch-up's plan. Only regions inside the volume whose blocks the
    /// bitmap marks are compared (the marks are the copy's and the stop's fallback); any other
    /// (a forced shrink since the crash) is left to the bitmap.
    /// `returnedPrimary`: the regions are a returned primary's set, compared inside the
    /// promoted node's union copy (PrimaryNode+SplitBrain).
    mutating func startChecksumResync(_ regions: [ChecksumRegion], returnedPrimary: Bool = false) {
        let bitmap = self.bitmap
        let kept = regions.filter { region in
            guard region.lengthBytes > 0, region.endBytes <= config.volumeSizeBytes else { return false }
            let blocks = bitmap.blocksTouched(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes)
            return bitmap.setCount(in: blocks) == blocks.count
        }
        guard !kept.isEmpty else { return }
        checksumResync = ChecksumResync(regions: kept)
        checksumResync!.returnedPrimary = returnedPrimary
    }

    /// Why the compare must be given up now (its regions then copy whole), or nil.
    private var checksumAbandonReason: String? {
        if stopping { return "replication stopped" }
        if diskFailed { return "this node's disk failed" }
        if gate.wholeVolumeMarked && !checksumResync!.returnedPrimary { return "the volume is copied whole" }
        if isPeerReady, peerVersion != 0, peerVersion < WireFormat.verifyVersion {
            return "the peer speaks protocol \(peerVersion), which cannot digest regions"
        }
        return nil
    }

    /// Takes, locks and asks regions while the compare may run.
    mutating func continueChecksumResync(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        checkpointChecksumPages(into: &actions)
        guard checksumResync != nil else { return }
        if let reason = checksumAbandonReason { return endChecksumResync(abandonedBecause: reason, into: &actions) }
        guard isPeerReady else { return checksumResync!.abandonInFlight() }
        // Ahead, a stream restarting or no resync slot: nothing new is asked, but what was
        // asked is answered on this link and stays valid (its region is locked: no write to
        // it was admitted since it was asked, so none is marked Ahead). Abandoning it would
        // ask the peer for a region it may still be reading: a violation there.
        guard !isAhead, !restartPending, resyncPermitted else { return }
        while checksumResync!.take() != nil {}
        for index in checksumResync!.inFlight.indices {
            let compare = checksumResync!.inFlight[index]
            guard !compare.asked, !compare.abandoned else { continue }
            let region = compare.region
            guard !primary.holdsWrite(overlapping: region.offsetBytes, region.endBytes),
                !zeroChunksPending(overlapping: region.offsetBytes, region.endBytes),
                resyncAdmits(UInt32(region.lengthBytes), nowNs: nowNs)
            else { continue }
            checksumResync!.markAsked(index)
            actions.append(.readVerifyRegion(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes))
            actions.append(.sendDigestRequest(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes))
        }
    }

    /// A region read for the compare (false: not the compare's, a verify's). A read of a
    /// compare that ended while it was out (a stop, a full copy, a failed disk) is the
    /// compare's too, and changes nothing.
    mutating func checksumRegionRead(_ offset: UInt64, _ digest: RegionDigest?, errno: Int32,
                                     into actions: inout [PrimaryNodeAction]) -> Bool {
        if checksumResync != nil {
            if errno == 0, digest != nil {
                let (owned, outcome) = checksumResync!.localDigest(offsetBytes: offset, digest)
                if let outcome { applyChecksumOutcome(outcome, into: &actions) }
                if owned { return true }
            } else if checksumResync!.localReadFailed(offsetBytes: offset) != nil {
                failDisk("read", errno == 0 ? PrimaryErrno.eio : errno, into: &actions)
                return true
            }
        }
        guard let index = checksumReadsDraining.firstIndex(of: offset) else { return false }
        checksumReadsDraining.remove(at: index)
        return true
    }

    /// The peer's digest of a region (false: not the compare's).
    mutating func checksumPeerDigest(_ offset: UInt64, _ length: UInt64, _ digest: RegionDigest,
                                     into actions: inout [PrimaryNodeAction]) -> Bool {
        guard checksumResync != nil else { return false }
        let (owned, outcome) = checksumResync!.peerDigest(ChecksumRegion(offsetBytes: offset, lengthBytes: length), digest)
        if let outcome { applyChecksumOutcome(outcome, into: &actions) }
        return owned
    }

    /// A mutation of [start, end) is next to be admitted: the regions it overlaps that the
    /// compare locked but has not asked are given up to the copy, so that it does not wait
    /// for them (see the top of this file). Asked regions keep their lock.
    mutating func yieldChecksumRegions(start: UInt64, end: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard checksumResync != nil else { return }
        let given = checksumResync!.giveUp(overlapping: start, end)
        guard !given.isEmpty else { return }
        // All of them are marked before the compare may end: giving up the last regions ends it.
        for region in given { markChecksumOutcome(.givenUp(region)) }
        endChecksumResyncIfDone(into: &actions)
    }

    private mutating func applyChecksumOutcome(_ outcome: ChecksumResync.Outcome, into actions: inout [PrimaryNodeAction]) {
        markChecksumOutcome(outcome)
        endChecksumResyncIfDone(into: &actions)
    }

    private mutating func markChecksumOutcome(_ outcome: ChecksumResync.Outcome) {
        switch outcome {
        case .same(let region):
            // Both copies hold these bytes (nothing wrote the region since it was locked).
            _ = bitmap.clearRange(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes)
            for page in bitmap.pages(coveringOffset: region.offsetBytes, lengthBytes: region.lengthBytes)
            where !checksumCheckpoint.pages.contains(page) {
                checksumCheckpoint.pages.append(page)
            }
            checksumCheckpoint.bytes += region.lengthBytes
        case .differs(let region), .givenUp(let region):
            if bitmap.setRange(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes) > 0 {
                activityLogBitsWithoutWrite()
            }
        }
    }

    private mutating func endChecksumResyncIfDone(into actions: inout [PrimaryNodeAction]) {
        guard checksumResync!.isDone else { return }
        endChecksumResync(abandonedBecause: nil, into: &actions)
        if copiedBytes == 0, bitmap.outOfSyncBytes == 0, copyReads.isEmpty, let first = checksumFirstRegion {
            // Every region agreed and nothing else was dirty: the session still copies one
            // block, so that it ends as every catch-up does (Data, then SyncComplete naming
            // it); a SyncComplete before any Data of a session is a violation to the peer.
            _ = bitmap.setBlocks(BlockRun(first: first.offsetBytes / bitmap.blockBytes, count: 1))
            activityLogBitsWithoutWrite()
        }
    }

    /// The compare ends: done, or given up (what it did not compare stays set and is copied).
    private mutating func endChecksumResync(abandonedBecause reason: String?, into actions: inout [PrimaryNodeAction]) {
        guard let resync = checksumResync else { return }
        checksumResync = nil
        checksumReadsDraining += resync.inFlight.filter(\.localReadPending).map(\.region.offsetBytes)
        checksumFirstRegion = resync.regions.first
        var progress = resync.progress
        progress.running = false
        progress.abandonedBecause = reason
        lastChecksumResync = progress
        actions.append(.notice(.checksumResyncEnded(progress)))
        announceVerifyEnd(into: &actions)
    }

    /// Writes the bitmap pages of regions found the same, their bits clear, once
    /// `checksumCheckpointBytes` were found since the last such write or the compare ended;
    /// one write at a time. A second crash then compares only what they still mark
    /// (ChecksumResync.plan(…resuming:)). Any page may be written with the node's bitmap at
    /// any time (the activity log's evictions do): it marks every region the peer may lack
    /// outside the log's extents, and the runs of unconfirmed copy chunks go with it.
    private mutating func checkpointChecksumPages(into actions: inout [PrimaryNodeAction]) {
        guard !checksumCheckpoint.pages.isEmpty, activityLog != nil else { return }
        guard !gate.failed, !stopping, !stopped, !diskFailed else { return checksumCheckpoint = ChecksumCheckpoint() }
        guard !pageWriteInFlight(checksumCheckpoint.ticket) else { return }
        guard checksumResync == nil || checksumCheckpoint.bytes >= config.checksumCheckpointBytes else { return }
        let pages = checksumCheckpoint.pages.sorted()
        checksumCheckpoint.pages.removeAll(keepingCapacity: true)
        checksumCheckpoint.bytes = 0
        checksumCheckpoint.ticket = requestPageWrite(pages, alsoSet: activityLogHeldRuns(pages), into: &actions)
    }

    /// A region being compared overlaps [start, end): a mutation of it waits.
    func overlapsChecksumResync(start: UInt64, end: UInt64) -> Bool {
        checksumResync?.locks(start, end) ?? false
    }

    /// Bytes of set bits that may lie in regions not compared yet (the copy leaves them).
    var checksumPendingBytes: UInt64 { checksumResync?.pendingBytes ?? 0 }

    /// `run` (a dirty run at or after the copy's cursor), cut so that it holds no region not
    /// compared yet; nil with `skipTo` when it starts in one (the copy goes on from there).
    func copyRunOutsideChecksum(_ run: BlockRun) -> (run: BlockRun?, skipToBytes: UInt64) {
        let blockBytes = bitmap.blockBytes
        let start = run.first * blockBytes
        guard let span = checksumResync?.pendingSpan(overlapping: start, run.end * blockBytes) else { return (run, 0) }
        if span.offsetBytes <= start {
            // Resume at the first block that starts at or after the span's end.
            return (nil, (span.endBytes + blockBytes - 1) / blockBytes * blockBytes)
        }
        let firstPending = span.offsetBytes / blockBytes
        return (BlockRun(first: run.first, count: firstPending - run.first), 0)
    }
}
