// Limits and policies of the replication state machines. Every queue and in-flight count is
// bounded here; the daemon derives these from the ResourceSpec.

public enum ReplicationAckMode: String, Sendable, Hashable, CaseIterable {
    /// Acknowledge a write after the local completion and the peer's completion; FLUSH/FUA
    /// once durable on both nodes.
    case sync
    /// Acknowledge a write after the local completion; the peer catches up from a bounded queue.
    case async
}

public struct ReplicationPrimaryConfig: Sendable, Hashable {
    public var mode: ReplicationAckMode
    /// Payload bytes of the writes held: admitted and not yet both acknowledged and
    /// confirmed durable by the secondary (the retransmission buffer; in async mode the
    /// replication queue). When a new write would exceed it, writes wait (the primary is
    /// "blocked"). The daemon's payload store is exactly this big.
    public var bufferBytesMax: UInt64
    /// Admitted writes not yet both acknowledged and confirmed durable by the peer.
    public var writesInFlightMax: Int
    /// Application requests waiting for admission while blocked.
    public var requestsWaitingMax: Int
    /// Admitted FLUSH requests not yet acknowledged.
    public var flushesPendingMax: Int
    /// Only for the simulator's seeded-fault tests (nil in production).
    public var testingFault: PrimaryStreamTestingFault?
    /// Consistency group (docs/groups.md): the group's id, 0 when the resource is in none.
    /// A member's epochs are the group's epochs, so its stream may skip epoch numbers.
    public var groupID: UInt64 = 0

    public init(
        mode: ReplicationAckMode, bufferBytesMax: UInt64 = 256 << 20, writesInFlightMax: Int = 4096,
        requestsWaitingMax: Int = 1024, flushesPendingMax: Int = 256, testingFault: PrimaryStreamTestingFault? = nil
    ) {
        precondition(bufferBytesMax > 0 && writesInFlightMax > 0 && requestsWaitingMax > 0)
        precondition(flushesPendingMax > 0)
        self.mode = mode
        self.bufferBytesMax = bufferBytesMax
        self.writesInFlightMax = writesInFlightMax
        self.requestsWaitingMax = requestsWaitingMax
        self.flushesPendingMax = flushesPendingMax
        self.testingFault = testingFault
    }
}

/// A deliberately wrong primary stream, only for proving that the simulator's checker fails.
public enum PrimaryStreamTestingFault: Sendable, Hashable {
    /// Adaptive mode's switch to async also turns the sync writes still waiting for the peer
    /// into async ones: they are acknowledged at their local completion, without the peer.
    case switchToAsyncReleasesSyncWrites
    /// A stop answers a sync FLUSH still waiting for the peer's durable confirmation from its
    /// local flush alone (0), as the daemon did before PrimaryNode+Stop answered it as a held
    /// write: a both-copies promise the peer never confirmed.
    case stopAnswersFlushFromLocalFlush
    /// The RPO age counts from the newest acknowledged write the peer has not confirmed
    /// durable instead of the oldest: `rpo_ms` says less than the peer lacks.
    case rpoAgeFromNewestWrite
    /// A diskless primary's stop hangs up at once, without asking its peer to make durable
    /// the writes acknowledged through it (PrimaryNode+PeerDrain) and without saying it drops
    /// them: the daemon's rule before the drain; a power loss of the peer then loses them.
    case disklessStopSkipsPeerDrain
}

/// Deliberately wrong behaviours, only for proving that the simulator's checker can fail.
public enum SecondaryTestingFault: Sendable, Hashable {
    /// Submit every received write at once, ignoring epoch order.
    case appliesEpochsOutOfOrder
    /// Apply sync writes ahead of their epoch even over an outstanding overlapping write.
    case appliesAheadOverOutstandingWrites
    /// SecondaryNode reports UpToDate while connected even without the primary's
    /// SyncComplete (a copy that may lack acknowledged writes claims it has them all).
    case claimsUpToDateBeforeConfirmed
}

/// The secondary acknowledges every completed write (DataAck) whatever the primary's mode: a
/// sync primary needs the acks, an async one ignores them, and the two nodes' `mode` may
/// differ (or change with a failover). So the secondary has no mode of its own, and the
/// simulator cannot configure one that production never runs.
public struct ReplicationSecondaryConfig: Sendable, Hashable {
    public var diskDrain: DiskDrain
    /// Received writes not yet completed on the secondary's disk. Must be at least the
    /// primary's `bufferBytesMax` / `writesInFlightMax`, or a busy primary is refused.
    public var queuedBytesMax: UInt64
    public var queuedWritesMax: Int
    /// Writes of the current epoch submitted to the disk at once.
    public var writesInFlightMax: Int
    /// Group commit: flush at the latest this long after the oldest unflushed epoch
    /// completed (a flush in flight meanwhile does not restart the wait)…
    public var groupCommitIntervalNs: UInt64
    /// …or once this many bytes completed since the last flush.
    public var groupCommitBytesMax: UInt64
    public var testingFault: SecondaryTestingFault?
    /// Consistency group (docs/groups.md): the group's id, 0 when the resource is in none.
    /// The primary's epochs are then the group's: they may skip numbers.
    public var groupID: UInt64 = 0

    public init(
        diskDrain: DiskDrain = .drain, queuedBytesMax: UInt64 = 256 << 20,
        queuedWritesMax: Int = 4096, writesInFlightMax: Int = 64,
        groupCommitIntervalNs: UInt64 = 2_000_000, groupCommitBytesMax: UInt64 = 64 << 20,
        testingFault: SecondaryTestingFault? = nil
    ) {
        precondition(queuedBytesMax > 0 && queuedWritesMax > 0 && writesInFlightMax > 0)
        self.diskDrain = diskDrain
        self.queuedBytesMax = queuedBytesMax
        self.queuedWritesMax = queuedWritesMax
        self.writesInFlightMax = writesInFlightMax
        self.groupCommitIntervalNs = groupCommitIntervalNs
        self.groupCommitBytesMax = groupCommitBytesMax
        self.testingFault = testingFault
    }
}
