import TandemCore

/// A node's primary side: its PrimaryNode and what the driver keeps beside it (Simulation+Primary).
final class PrimarySide {
    var node: PrimaryNode
    var session: UInt64 { node.session }
    var machine: ReplicationPrimary { node.primary }
    /// The peer's disk failed: replication is stopped, writes go to the local disk only.
    var standalone = false
    /// The peer said its disk failed (the daemon's `peerDiskFailure`): from that notice on the
    /// peer is `Failed` in status.
    var peerDiskFailed = false
    /// The link's Hello was accepted by the secondary (the node has been told `.linkUp`).
    var peerAccepted = false
    /// Demoted for a planned failover: stopping; the link is the new primary's to close.
    var handingOver = false
    /// `.recordDemotion` was carried out: `.demotionRecorded` follows after the batch, as
    /// the daemon's driver feeds it (deferred, in the same loop turn).
    var demotionRecorded = false
    /// Chunks read for the copy, by first block, until the node admits or discards them.
    var copyChunks: [Int: [UInt64]] = [:]
    /// The batch being carried out was decided while the node was (or went) Ahead: its
    /// acknowledgements were made without the peer.
    var batchAhead = false
    /// The batch was decided while a periodic cycle ran (it may have completed in it).
    var batchInCycle = false
    /// A clean restart (SIGTERM) is under way: once stopped, the daemon exits and starts again.
    var restartWhenStopped = false
    /// A batch of the node's actions is being carried out; events that arrive meanwhile wait.
    var performing = false
    var deferred: [PrimaryNodeEvent] = []
    /// Writes kept until the activity log names their extents (`.holdLocalWrite`).
    var heldWrites: [WriteSequence: (extent: FakeDisk.Extent, fua: Bool)] = [:]
    /// Simulation+WithoutPeer: the link was Connected, and what its loss left unacknowledged.
    var linkConnected = false
    var unacknowledgedAtLossBytes: UInt64 = 0
    /// A split brain's union resync keeps checkpoints on this session (Simulation+UnionCheckpoint).
    var unionCheckpoints: UnionCheckpoints?
    /// The survivor's session waits for the victim's set (its BitmapDone, at the victim's
    /// accept): this side's changes to unite it with (Simulation+UnionCheckpoint).
    var awaitsVictimSet: DirtyBitmap?

    /// Application reads sent to the peer, by tag (Simulation+Reads), and the diskless pulls
    /// awaiting their ReadReply, by tag (Simulation+Diskless).
    var remoteReads: [UInt64: Int] = [:]
    var pulls: [UInt64: PulledRegion] = [:]
    var pullsSent: UInt64 = 0
    /// The seeded fault `disklessAnswersBeforePeerApplied`: requests the driver answered at
    /// their admission through the peer; the node's own answer is dropped.
    var answeredEarly: Set<RequestID> = []
    /// Started with its record saying this disk lacks writes: the session's base is the peer's
    /// copy once the peer accepts it (its last session's writes landed by then).
    var rebaseAtAccept = false
    var startedLacking = false

    init(node: PrimaryNode) { self.node = node }
}
