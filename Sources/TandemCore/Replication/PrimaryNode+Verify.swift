// PrimaryNode's online verify (issue 13 §7, DRBD's `verify`): the volume is compared with the
// peer's region by region (`verifyRegionBytes`, 1 MiB), each side digesting its own copy (RegionDigest, 128 bits);
// a region whose digests differ is marked dirty, counted and reported, and once the walk ends
// the marked regions are copied to the peer like a catch-up within the same session.
//
// A region is compared only when both copies hold the same writes: it is asked only once no
// write the stream still holds overlaps it (every earlier write to it is durable on the peer)
// and no chunk of an admitted WRITE_ZEROES is still to be issued into it; then it is read here
// and asked of the peer in the same turn, and only from then is it locked (an application write
// overlapping it waits, as for a copy read) until both digests are in. While it waits to be
// asked it is not locked: a write to it is admitted at once and the region simply waits for that
// write too. Locking it while waiting would tie the application's write to the peer's
// confirmation of the stream's earlier writes, which a consistency group's secondary holds
// for as long as another member is away (its group barrier, docs/groups.md): the application
// would hang on a member whose own peer is fine. Asked, the region is answered at once (the
// peer reads its volume as it is; the barrier does not hold a digest read). The cost: a region
// written without pause waits until a moment when none of its writes is unconfirmed (status
// `verify.checked_bytes` shows where the walk stands).
//
// The walk is throttled like a resync (`resync_rate`); it runs while the link is up, the peer
// is in sync and no copy is due, and ends (aborted, reported) when any of that stops holding —
// what it marked by then is copied.

/// The region being compared and the walk's position.
struct VerifyRun: Sendable {
    var cursor: UInt64 = 0
    /// The region next compared: waiting (unlocked) for the writes to it to settle, then read
    /// here and asked of the peer, and locked while `asked`.
    var region: (offset: UInt64, length: UInt64)?
    var asked = false
    var localDigest: RegionDigest?
    var peerDigest: RegionDigest?
    var checkedBytes: UInt64 = 0
    var mismatchedBytes: UInt64 = 0
}

/// A verify's figures (status `verify`): while it runs, and as it ended.
public struct VerifyProgress: Sendable, Equatable {
    public var totalBytes: UInt64
    public var checkedBytes: UInt64
    public var mismatchedBytes: UInt64
    public var running: Bool
    /// Why it ended early (nil: it ran to the end, or runs).
    public var abortedBecause: String?

    public init(totalBytes: UInt64, checkedBytes: UInt64, mismatchedBytes: UInt64, running: Bool, abortedBecause: String?) {
        self.totalBytes = totalBytes
        self.checkedBytes = checkedBytes
        self.mismatchedBytes = mismatchedBytes
        self.running = running
        self.abortedBecause = abortedBecause
    }
}

extension PrimaryNode {
    /// Why `verify` cannot start now (nil: it can).
    public var verifyRefusal: String? {
        if verify != nil { return "a verify is already running" }
        if !enabled || stopping || link != .up || !isPeerReady { return "the peer is not connected" }
        if peerVersion < WireFormat.verifyVersion {
            return "the peer speaks protocol \(peerVersion), which cannot verify: upgrade it (docs/operations.md, rolling upgrade)"
        }
        if diskFailed { return "this node's disk failed" }
        if localLacksWrites { return "this node's disk lacks writes its peer holds: it is being resynced from the peer" }
        if isAhead || restartPending || copyWanted { return "the peer is not in sync: a copy is due or running" }
        return nil
    }

    /// `.startVerify`, refused (ignored) unless `verifyRefusal` is nil.
    mutating func startVerify(into actions: inout [PrimaryNodeAction]) {
        guard verifyRefusal == nil else { return }
        verify = VerifyRun()
        actions.append(.notice(.verifyStarted(bytes: config.volumeSizeBytes)))
    }

    /// The figures of the verify running, or of the last one.
    public var verifyProgress: VerifyProgress? {
        guard let run = verify else { return lastVerify }
        return VerifyProgress(totalBytes: config.volumeSizeBytes, checkedBytes: run.checkedBytes,
                              mismatchedBytes: run.mismatchedBytes, running: true, abortedBecause: nil)
    }

    /// Takes the next region, asks for it (and locks it) once it is settled on the peer, or
    /// ends the walk.
    mutating func continueVerify(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard var run = verify else { return }
        if let reason = verifyAbortReason { return endVerify(abortedBecause: reason, into: &actions) }
        if run.region == nil {
            guard run.cursor < config.volumeSizeBytes else { return endVerify(abortedBecause: nil, into: &actions) }
            run.region = (run.cursor, min(config.verifyRegionBytes, config.volumeSizeBytes - run.cursor))
        }
        let (offset, length) = run.region!
        verify = run
        guard !run.asked, !primary.holdsWrite(overlapping: offset, offset + length),
            !zeroChunksPending(overlapping: offset, offset + length), !verifyReadInFlight,
            resyncAdmits(UInt32(length), nowNs: nowNs)
        else { return }
        run.asked = true
        verify = run
        verifyReadInFlight = true
        actions.append(.readVerifyRegion(offsetBytes: offset, lengthBytes: length))
        actions.append(.sendDigestRequest(offsetBytes: offset, lengthBytes: length))
    }

    /// What stops a running verify.
    private var verifyAbortReason: String? {
        if stopping || !enabled { return "replication stopped" }
        if link != .up { return "the link to the peer was lost" }
        if diskFailed { return "this node's disk failed" }
        if isAhead || restartPending || copyWanted { return "a copy to the peer started" }
        return nil
    }

    /// This node's digest of the locked region (`errno` non-zero: the read failed).
    mutating func verifyRegionRead(_ offset: UInt64, _ digest: RegionDigest?, errno: Int32,
                                   into actions: inout [PrimaryNodeAction]) {
        precondition(verifyReadInFlight, "a verify read nobody asked for")
        verifyReadInFlight = false
        guard errno == 0, let digest else { return failDisk("read", errno == 0 ? PrimaryErrno.eio : errno, into: &actions) }
        guard var run = verify, let region = run.region, region.offset == offset, run.asked else { return }
        run.localDigest = digest
        verify = run
        compareVerifyRegion(into: &actions)
    }

    /// The peer's digest of a region; one not asked for (an aborted walk's) is ignored.
    mutating func peerDigest(_ offset: UInt64, _ length: UInt64, _ digest: RegionDigest,
                             into actions: inout [PrimaryNodeAction]) {
        guard var run = verify, let region = run.region, region == (offset, length), run.asked, run.peerDigest == nil
        else { return }
        run.peerDigest = digest
        verify = run
        compareVerifyRegion(into: &actions)
    }

    private mutating func compareVerifyRegion(into actions: inout [PrimaryNodeAction]) {
        guard var run = verify, let (offset, length) = run.region, let local = run.localDigest, let peer = run.peerDigest
        else { return }
        if !local.agrees(withPeer: peer) {
            _ = bitmap.setRange(offsetBytes: offset, lengthBytes: length)
            activityLogBitsWithoutWrite()
            run.mismatchedBytes += length
            actions.append(.notice(.verifyMismatch(offsetBytes: offset, lengthBytes: length)))
        }
        run.checkedBytes += length
        run.cursor = offset + length
        run.region = nil
        run.asked = false
        run.localDigest = nil
        run.peerDigest = nil
        verify = run
    }

    /// Ends the walk; what it marked is copied to the peer (now, or when the link is back).
    private mutating func endVerify(abortedBecause reason: String?, into actions: inout [PrimaryNodeAction]) {
        guard let run = verify else { return }
        verify = nil
        lastVerify = VerifyProgress(totalBytes: config.volumeSizeBytes, checkedBytes: run.checkedBytes,
                                    mismatchedBytes: run.mismatchedBytes, running: false, abortedBecause: reason)
        actions.append(.notice(.verifyEnded(checkedBytes: run.checkedBytes, mismatchedBytes: run.mismatchedBytes,
                                            abortedBecause: reason)))
        announceVerifyEnd(into: &actions)
        if run.mismatchedBytes > 0, !copyWanted, !isAhead, bitmap.outOfSyncBytes > 0 {
            startCopy()
            actions.append(.notice(.verifyRepairStarted(bytes: bitmap.outOfSyncBytes)))
        }
    }

    /// A verify or digest compare ended: a peer that reads VerifyEnd is told on the link it
    /// asked on, so that it leaves `VerifyT` now (an older peer infers the end two seconds
    /// after the last DigestRequest). A lost link ended it there already.
    mutating func announceVerifyEnd(into actions: inout [PrimaryNodeAction]) {
        guard link == .up, peerVersion >= WireFormat.verifyEndVersion else { return }
        actions.append(.sendVerifyEnd)
    }

    /// The verify's region is asked (locked) and overlaps [start, end): a mutation of it waits.
    /// A region not asked yet locks nothing (see the top of this file).
    func overlapsVerify(start: UInt64, end: UInt64) -> Bool {
        guard let run = verify, run.asked, let region = run.region else { return false }
        return start < region.offset + region.length && region.offset < end
    }

    /// An admitted WRITE_ZEROES has chunks still to issue into [start, end) (they wait for
    /// room in the buffer): the stream does not hold them yet, but they will land in the
    /// region after a read of it now. The crash restart's digest compare asks the same
    /// (PrimaryNode+Checksum).
    func zeroChunksPending(overlapping start: UInt64, _ end: UInt64) -> Bool {
        guard let zeroes = zeroing else { return false }
        return zeroes.cursor < end && start < zeroes.end
    }
}
