// PrimaryReplicator's account of the writes its peer will not get (docs/replication.md,
// *Split brain and promotion numbers*): the first of them moves B (`onWriteWithoutPeer`, once
// until the peer catches up), and their bytes are the `changed bytes` since parting
// (`onBytesWithoutPeer`) that the Hello carries and `discard-least-changes` weighs. Writes
// submitted while the link is not Connected count at submission (`submit`); this file counts
// those the link's loss leaves behind. Loop thread only.
import TandemCore

extension PrimaryReplicator {
    func noteWriteWithoutPeer() {
        wroteWithoutPeer = true
        onWriteWithoutPeer?()
    }

    /// The connection state changed. The loss of a Connected link leaves the peer without the
    /// lag (acknowledged writes it has not confirmed) and without the writes not yet
    /// acknowledged (`PrimaryNode.unacknowledgedBytes`: in flight or queued at the cut). With
    /// a lag, B moves now and both count. Without, nothing was acknowledged the peer lacks
    /// yet: B moves, and the writes count, when the first of them is acknowledged alone
    /// (`.acknowledgedWithoutPeer`); if none is, they changed nothing the peer must be told of.
    /// A starting set's lag (before any link was Connected) is no such write.
    func accountConnectionState(_ state: ConnectionState) {
        guard state != .connected else {
            linkWasConnected = true
            linkConnected = true
            unacknowledgedAtLossBytes = 0
            return
        }
        guard linkConnected else { return }
        linkConnected = false
        let unacknowledged = node.unacknowledgedBytes
        guard node.lagBytes > 0 else {
            unacknowledgedAtLossBytes = unacknowledged
            return
        }
        if !wroteWithoutPeer { noteWriteWithoutPeer() }
        onBytesWithoutPeer?(node.lagBytes + unacknowledged)
    }

    /// The node is about to acknowledge a write its peer will not get on the lost link (the
    /// first since it was lost): B moves before the answer goes out, and the writes the loss
    /// left unacknowledged count as changed from here (B's move starts the count at 0).
    func acknowledgedWithoutPeer() {
        if !wroteWithoutPeer { noteWriteWithoutPeer() }
        onBytesWithoutPeer?(unacknowledgedAtLossBytes)
        unacknowledgedAtLossBytes = 0
    }
}
