// ReadBalancing: `read_balancing` (DRBD's names) and the read router's state: where each
// application read goes (this node's disk or the UpToDate peer), how many are in flight on each
// side, and what the peer served. The decision itself is PrimaryNode's (PrimaryNode+Reads),
// which knows whether the peer holds every acknowledged write and which regions have writes in
// flight. No I/O, no clock.

/// Where a primary sends application reads while its peer is UpToDate in sync mode.
public enum ReadBalancing: String, Sendable, CaseIterable {
    /// Every read from this node's disk (the peer serves reads only for a failed disk).
    case preferLocal = "prefer-local"
    /// Every read the peer may serve goes to it.
    case preferRemote = "prefer-remote"
    /// Alternately to the peer and to this disk.
    case roundRobin = "round-robin"
    /// To the side with fewer reads in flight (this disk on a tie).
    case leastPending = "least-pending"
}

/// Where one read goes.
public enum ReadRoute: Sendable, Equatable {
    case local
    case peer
    /// Neither: this disk lacks writes the peer holds (diskless) and the peer cannot serve
    /// the read (away, not UpToDate, a read it cannot take): answered EIO.
    case refused
}

/// The router's counters and bounds. A read routed is counted in flight until the driver says
/// it finished (`PrimaryNode.readFinished`).
public struct ReadRouter: Sendable, Equatable {
    /// The default bound on reads in flight to the peer: beyond it reads are served here.
    public static let remoteReadsMaxDefault = 64

    public internal(set) var policy: ReadBalancing
    /// Reads in flight to the peer at most (the peer's own bound, SecondaryNode.peerReadsMax,
    /// may refuse earlier: the read is then served here).
    public let remoteReadsMax: Int
    public internal(set) var remoteInFlight = 0
    public internal(set) var localInFlight = 0
    /// Round-robin: the next eligible read goes to the peer.
    var nextToPeer = true
    /// Reads the peer answered with their bytes.
    public internal(set) var servedRemotely: UInt64 = 0
    public internal(set) var servedRemotelyBytes: UInt64 = 0
    /// Reads sent to the peer that came back here (the peer refused, or the link went down).
    public internal(set) var fellBackLocally: UInt64 = 0

    public init(policy: ReadBalancing, remoteReadsMax: Int = ReadRouter.remoteReadsMaxDefault) {
        precondition(remoteReadsMax > 0, "remote reads max")
        self.policy = policy
        self.remoteReadsMax = remoteReadsMax
    }
}
