// ReplicationRecord: the small per-resource record a node persists (ReplicationMetadata in the
// daemon writes it, checksummed, in two alternating slots). The same record serves both
// roles, one at a time. A value: the state machines decide what it says, the daemon stores it.

public struct ReplicationRecord: Equatable, Sendable {
    /// Bumped by every write of the record; 0: never written (a new resource).
    public var generation: UInt64 = 0
    /// Secondary: the primary session its epochs belong to (the primary's Hello `current`).
    public var session: UInt64 = 0
    /// Secondary: every write of every epoch ≤ this of `session` is on stable storage.
    public var durableThroughEpoch: Epoch = 0
    /// Secondary: no full copy is pending or interrupted.
    public var synced = false
    /// Secondary: the session its current one continued from without a copy (0: none).
    public var continuedFrom: UInt64 = 0
    /// Primary: the session basis that still holds after a stop (`SessionBasis.cleanStopValue`
    /// or the session that ended with everything confirmed); 0 after a crash or a write.
    public var cleanStop: UInt64 = 0
    /// This node has started a session as primary (so `initial_sync` no longer applies).
    public var primaryStarted = false
    /// This node was promoted while its copy was Inconsistent (`allow_inconsistent`).
    public var promotedInconsistent = false
    /// Secondary: a consistent catch-up is being staged (nil: none; StagedCatchUp).
    public var staging: StagedCatchUp? = nil
    /// Secondary: the primary's wall-clock time (ns since the Unix epoch) of the newest epoch
    /// of `session` through `durableThroughEpoch` it stamped (protocol 9); 0: none known.
    public var consistentAsOfNs: UInt64 = 0

    public init(
        generation: UInt64 = 0, session: UInt64 = 0, durableThroughEpoch: Epoch = 0, synced: Bool = false,
        continuedFrom: UInt64 = 0, cleanStop: UInt64 = 0, primaryStarted: Bool = false,
        promotedInconsistent: Bool = false, staging: StagedCatchUp? = nil
    ) {
        self.generation = generation
        self.session = session
        self.durableThroughEpoch = durableThroughEpoch
        self.synced = synced
        self.continuedFrom = continuedFrom
        self.cleanStop = cleanStop
        self.primaryStarted = primaryStarted
        self.promotedInconsistent = promotedInconsistent
        self.staging = staging
    }
}
