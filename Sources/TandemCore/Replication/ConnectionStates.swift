// ConnectionStates: the words `status` uses for a resource's link and stream, as enums (the
// raw values are DRBD's, and what the control protocol carries).

/// The replication link as a node sees it.
public enum ConnectionState: String, Sendable, Equatable, CaseIterable {
    /// Replication is off on this node (disabled, or standalone).
    case standAlone = "StandAlone"
    /// The primary is dialling (or redialling after a failure, with backoff).
    case connecting = "Connecting"
    /// The secondary is waiting for its primary to dial (only the primary dials).
    case wfConnection = "WFConnection"
    /// TLS is up and both Hellos were accepted.
    case connected = "Connected"
}

/// What the primary's replication stream is doing (status `replication_state`).
public enum ReplicationStreamState: String, Sendable, Equatable, CaseIterable {
    /// No live link.
    case off = "Off"
    /// Writes flow to the peer.
    case established = "Established"
    /// A full copy is running: the peer is Inconsistent until it ends.
    case syncSource = "SyncSource"
    /// The replication buffer is full: writes wait for the peer's durable acks.
    case blocked = "Blocked"
    /// Writes are acknowledged on the primary's copy alone and tracked in its dirty bitmap
    /// (the peer is away, or the async buffer overflowed): the next link catches up.
    case ahead = "Ahead"
    /// A copy is due and the peer is ready, but the daemon's `resync_concurrency_max` copies
    /// run elsewhere: this one copies nothing until a slot frees.
    case pausedSync = "PausedSync"
    /// An online verify runs: this node compares its regions with the peer's (the source).
    case verifyS = "VerifyS"
    /// The peer verifies against this copy: it digests the regions asked for (the target).
    case verifyT = "VerifyT"
}
