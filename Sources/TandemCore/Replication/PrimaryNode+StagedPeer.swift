// PrimaryNode's view of a peer that stages its catch-up (docs/replication.md, *Staged
// catch-up*, *The primary's view*). A secondary that stages a catch-up writes it to its
// journal and leaves its volume's image alone, so it says `consistent` in the ReplicaHello of
// the catch-up's link; one that writes the catch-up in place says `inconsistent`. The node
// believes that word for the copy it is running: the peer is `Consistent` while connected
// (`Outdated` while away: a consistent image that lacks writes), not the `Inconsistent` of
// a copy in place. Only when the peer says its catch-up outgrew the journal
// (CatchUpInPlace) is it `Inconsistent` until the copy's SyncComplete. A copy that starts
// later in the session (a verify's repair) writes in place: it forgets the word.

extension PrimaryNode {
    /// The peer's disk state while a copy runs to a peer that stages it, and after its
    /// SyncComplete until the peer's CaughtUp says the journal is committed and applied
    /// (nil: it does not stage).
    var stagedPeerDiskState: DiskState? {
        guard peerStagesCatchUp, copyWanted || awaitingCaughtUp, peerHeard, peerInconsistentThroughEpoch == nil
        else { return nil }
        return isPeerReady ? .consistent : .outdated
    }

    /// The peer's ReplicaHello said `copy` for this link (also on a link after the copy's
    /// SyncComplete whose CaughtUp has not come: a peer that kept its journal says `consistent`).
    mutating func notePeerCopyAtHello(_ copy: DiskState) {
        peerStagesCatchUp = (copyWanted || awaitingCaughtUp) && basis.isCatchUp && copy == .consistent
    }

    /// The peer's catch-up of `session` outgrew its journal and goes on in place: its copy is
    /// Inconsistent until the copy's SyncComplete. A word about another session is stale.
    public mutating func peerCatchUpWentInPlace(session: UInt64) {
        guard session == self.session else { return }
        peerStagesCatchUp = false
    }
}

extension PrimaryNode {
    /// What the peer's volume holds as far as this node knows (at least this point: the peer
    /// may have made more durable than it confirmed). A peer that stages the running catch-up
    /// holds the catch-up's base; an in-place copy or a peer re-applying after its crash has
    /// none; otherwise the session and the epoch it confirmed durable (or, Ahead, the point
    /// the bitmap was started from).
    public var peerConsistentAsOf: ConsistentPoint? {
        guard peerHeard, peerInconsistentThroughEpoch == nil else { return nil }
        if copyWanted || awaitingCaughtUp {
            guard peerStagesCatchUp, case .catchUp(let bases) = basis, let base = bases.first, base != .assumed else {
                return nil
            }
            return ConsistentPoint(session: base.session, epoch: base.durableThroughEpoch)
        }
        if isAhead || restartPending {
            guard !peerInconsistentWhenAhead, let base = catchUpBases.first, base != .assumed else { return nil }
            return ConsistentPoint(session: base.session, epoch: base.durableThroughEpoch)
        }
        return ConsistentPoint(session: session, epoch: primary.peerDurableEpoch)
    }
}
