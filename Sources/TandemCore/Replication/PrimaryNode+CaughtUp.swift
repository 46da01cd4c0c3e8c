// PrimaryNode's wait for the peer's CaughtUp (wire type 37, protocol 7; docs/replication.md,
// *Staged catch-up*, *The primary's view*). A SyncComplete tells the peer it holds every
// acknowledged write; what that changes on the peer becomes durable only later: a staged
// catch-up's journal is committed and applied (until then the volume keeps the base's image),
// an in-place copy's `synced` record is stored, a copy restarted after its crash has read the
// ResendComplete before it. The peer answers with CaughtUp once it is durable
// (SecondaryNode+CaughtUp). Until that answer the node claims no more than the peer holds:
//
// - after a copy's SyncComplete (`awaitingCaughtUp`): a staging peer is `Consistent` (its
//   volume is the base's image; `Outdated` while away), an in-place one `Inconsistent`; not
//   redundant (`peerSynced` false); `lag_bytes` and `rpo_ms` still count the catch-up;
// - after a peer's ReplicaHello said `inconsistent` with nothing to re-send
//   (`peerInconsistentUntilCaughtUp`): `Inconsistent`, as the peer says of itself until it
//   has processed the ResendComplete. A DurableAck of a later epoch proves that too (its
//   Data followed the ResendComplete on the wire).
//
// The wait outlives the link: a link lost between the SyncComplete and the CaughtUp leaves
// the peer's word owed, and the next link's SyncComplete (sent again once the peer is ready:
// `confirmedOnLink` starts over) asks for it again. A peer's ReplicaHello cannot settle it:
// a committed and an uncommitted journal both say `consistent` there, so only CaughtUp says
// the commit is durable. A peer older than protocol 7 sends no CaughtUp: the node does not
// wait (today's behaviour: UpToDate at SyncComplete).

extension PrimaryNode {
    /// The peer's CaughtUp: its SyncComplete on this session is durable there. A word about
    /// another session is stale.
    mutating func peerCaughtUp(session caughtUpSession: UInt64) {
        guard caughtUpSession == session else { return }
        if awaitingCaughtUp {
            awaitingCaughtUp = false
            aheadSinceNs = 0
        }
        if peerInconsistentUntilCaughtUp {
            peerInconsistentUntilCaughtUp = false
            peerInconsistentThroughEpoch = nil
        }
    }

    /// A peer of protocol 7 whose ReplicaHello said `inconsistent` (it restarted) with nothing
    /// left to re-send: Inconsistent until its CaughtUp, or a DurableAck past the epoch it
    /// named (settle clears `peerInconsistentThroughEpoch` then).
    mutating func notePeerInconsistentWithNothingToResend() {
        guard peerVersion >= WireFormat.caughtUpVersion, !copyWanted, peerInconsistentThroughEpoch == nil else { return }
        peerInconsistentThroughEpoch = primary.peerDurableEpoch + 1
        peerInconsistentUntilCaughtUp = true
    }
}
