// Snapshots of the replication state machines for `status`, metrics and the benchmark.

public struct ReplicationPrimaryStatus: Sendable, Hashable {
    public var openEpoch: Epoch
    public var localDurableEpoch: Epoch
    public var peerDurableEpoch: Epoch
    public var isPeerReady: Bool
    /// Acknowledged to the application, not yet confirmed durable by the secondary.
    public var lagBytes: UInt64
    /// Age of the oldest such write; 0 when there is none.
    public var rpoAgeNs: UInt64
    public var rpoMs: UInt64 { rpoAgeNs / 1_000_000 }
    /// Replication buffer occupancy: admitted payload the secondary has not confirmed.
    public var unconfirmedBytes: UInt64
    public var writesInFlight: Int
    public var isBlocked: Bool
}

public struct ReplicationSecondaryStatus: Sendable, Hashable {
    public var completedThroughEpoch: Epoch
    public var flushedThroughEpoch: Epoch
    public var durableThroughEpoch: Epoch
    public var isConsistent: Bool
    public var queuedWrites: Int
}

extension ReplicationPrimary {
    public func status(nowNs: UInt64) -> ReplicationPrimaryStatus {
        ReplicationPrimaryStatus(
            openEpoch: openEpoch, localDurableEpoch: localDurableEpoch,
            peerDurableEpoch: peerDurableEpoch, isPeerReady: isPeerReady, lagBytes: lagBytes,
            rpoAgeNs: rpoAgeNs(nowNs: nowNs), unconfirmedBytes: unconfirmedBytes,
            writesInFlight: writesInFlight, isBlocked: isBlocked)
    }
}

extension ReplicationSecondary {
    public var status: ReplicationSecondaryStatus {
        ReplicationSecondaryStatus(
            completedThroughEpoch: completedThroughEpoch, flushedThroughEpoch: flushedThroughEpoch,
            durableThroughEpoch: durableThroughEpoch, isConsistent: isConsistent,
            queuedWrites: queuedWrites)
    }
}
