// PrimaryNode's account of what a failover to its peer would lose: `out_of_sync_bytes`,
// `lag_bytes`, `rpo_ms` (docs/replication.md, *RPO accounting*; `tandem-bench rpo`'s truth
// check holds these against what a kill and a forced failover really lose), and the writes
// not yet acknowledged that a link's loss leaves behind.

extension PrimaryNode {
    /// Set bits × block size: what the peer lacks and the copy has not read yet.
    public var outOfSyncBytes: UInt64 { bitmap.outOfSyncBytes }

    /// `lag_bytes`: acknowledged bytes the peer's volume lacks, an upper bound of what a
    /// failover to it would lose. Streaming: acknowledged bytes the peer has not confirmed
    /// durable. Ahead or catching up: every dirty region plus the stream's unconfirmed writes
    /// (a sum: a region both dirty and rewritten counts twice, never zero times). While the
    /// peer stages the catch-up (PrimaryNode+StagedPeer) its volume keeps the base's image
    /// until the journal commits, so everything the session moved is lag: the regions not yet
    /// read, and every copy chunk and write the stream carried, confirmed or not (the writes
    /// admitted but not yet acknowledged count too: a bound, not an exact figure). A periodic
    /// cycle's truth check found the loss above a figure that left the confirmed ones out.
    public var lagBytes: UInt64 {
        guard isAhead || basis.isCatchUp else { return primary.lagBytes }
        guard stagedPeerDiskState == nil, !(awaitingCaughtUp && peerStagesCatchUp) else {
            return outOfSyncBytes &+ primary.unconfirmedBytes &+ primary.peerDurableBytesTotal
        }
        return outOfSyncBytes &+ primary.lagBytes
    }

    /// Bytes of the writes admitted or queued and not yet acknowledged that the peer has not
    /// confirmed durable: at a link's loss, what `lagBytes` leaves out of the writes the
    /// application submitted while the link was up (a local write still running, a sync write
    /// waiting for the peer, a request waiting for admission). This node may still answer
    /// them alone, so the daemon's `changed bytes` since parting (what
    /// `discard-least-changes` weighs) count them with the loss. Ahead, the bitmap holds the
    /// admitted ones and `lagBytes` counts them already. A bound: one that fails is counted.
    public var unacknowledgedBytes: UInt64 {
        var bytes = primary.isTracking ? 0 : primary.unconfirmedBytes - primary.lagBytes
        if let zeroing { bytes += zeroing.end - zeroing.cursor }
        for position in 0..<queue.count {
            switch queue[position].kind {
            case let .write(_, length, _): bytes += UInt64(length)
            case let .writeZeroes(_, length, _): bytes += length
            case .flush, .trim: break
            }
        }
        return bytes
    }

    /// The RPO age: of the oldest acknowledged write the peer lacks (Ahead, and until the
    /// catch-up after it is done: since the oldest write unconfirmed when it began). A session
    /// that starts as a catch-up from a stop's bitmap does not know when those writes were
    /// made: it counts only its own.
    public func rpoAgeNs(nowNs: UInt64) -> UInt64 {
        // Ahead, and through the catch-up that follows until its copy is done, the peer lacks
        // writes acknowledged since `aheadSinceNs`.
        // Periodic mode between cycles: since the first write tracked (none: the peer lacks nothing).
        // A periodic cycle waiting for the peer's CaughtUp: the peer's volume may still lack it.
        let tracked = (isAhead && (periodNs == nil || aheadSinceNs != 0))
            || ((copyWanted || awaitingCaughtUp) && aheadSinceNs != 0)
        return max(primary.rpoAgeNs(nowNs: nowNs), tracked ? nowNs - min(aheadSinceNs, nowNs) : 0)
    }

    /// A restarted primary's record says since when (`sinceNs`, on this run's monotonic
    /// clock) its peer lacks acknowledged writes: while the bitmap it started with is not
    /// caught up, the RPO age counts from then, not from this run's first write.
    public mutating func restorePeerLacksSince(_ sinceNs: UInt64) {
        guard sinceNs != 0, bitmap.outOfSyncBytes > 0 else { return }
        aheadSinceNs = aheadSinceNs == 0 ? sinceNs : min(aheadSinceNs, sinceNs)
    }
}
