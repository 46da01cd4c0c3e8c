// ResourceRoles: what a resource's role transitions decide — how a primary session starts
// from the persisted record (PrimaryStart.swift), when enable, disable, failover and demote are allowed (and the
// exact refusal the control protocol returns), what a promotion or a demotion writes into
// the record, and the disk state a node reports while no replicator runs. Pure functions
// over `ReplicationRecord` and facts the daemon gathers: no I/O, no clock. The daemon
// (`Resource`, `ResourceReplication`) sequences the I/O around them: it stops replicators,
// changes roles, persists records and publishes events.

/// Why a role command is refused: the error code and message the control socket returns.
public struct RoleRefusal: Error, Equatable, Sendable {
    public enum Code: Equatable, Sendable {
        /// `wrong-state`: the command does not apply to the resource as it is.
        case wrongState
        /// `busy`: another transition of the resource is under way.
        case busy
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// What the role rules need to know about a resource.
public struct ResourceRoleFacts: Equatable, Sendable {
    public var name: String
    public var role: ResourceRole
    /// `enable` was issued and not undone.
    public var enabled: Bool
    /// A failover, demote, enable or disable is under way.
    public var transitioning: Bool
    /// A primary whose own disk failed: bytes of writes it acknowledged through its peer that
    /// the peer has not confirmed durable (`PrimaryNode.acknowledgedOnlyInMemoryBytes`). They
    /// are in no durable copy: only this process's memory can send them again.
    public var acknowledgedOnlyInMemoryBytes: UInt64

    public init(name: String, role: ResourceRole, enabled: Bool, transitioning: Bool,
                acknowledgedOnlyInMemoryBytes: UInt64 = 0) {
        self.name = name
        self.role = role
        self.enabled = enabled
        self.transitioning = transitioning
        self.acknowledgedOnlyInMemoryBytes = acknowledgedOnlyInMemoryBytes
    }

    var busy: RoleRefusal { RoleRefusal(.busy, "resource '\(name)' is changing state") }
}

// MARK: records

extension ReplicationRecord {
    /// The record of a node just promoted: no clean stop (the old primary's sessions are
    /// not this node's), `primaryStarted` (initial_sync described the volumes at creation:
    /// the next session copies unless a planned failover's enable says otherwise), and
    /// `promotedInconsistent` if the copy promoted was Inconsistent.
    public func promoted(inconsistent: Bool) -> ReplicationRecord {
        var record = self
        record.cleanStop = 0
        record.primaryStarted = true
        if inconsistent { record.promotedInconsistent = true }
        return record
    }

    /// The record of a primary just demoted. Its volume is the newest there is: synced,
    /// unless it was promoted Inconsistent. It belongs to no session, so that only a planned
    /// failover's hand-over or a full copy can start the next one.
    public func demoted() -> ReplicationRecord {
        var record = self
        record.synced = !promotedInconsistent
        record.session = 0
        record.continuedFrom = 0
        record.durableThroughEpoch = 0
        record.cleanStop = 0
        return record
    }

    /// The record to write when a resource opens, or nil to leave it: a primary that opens
    /// with replication disabled may take local writes the peer never sees, and its writes
    /// cannot be counted across a crash, so its clean stop no longer holds.
    public func atOpen(role: ResourceRole, enabled: Bool) -> ReplicationRecord? {
        guard role == .primary, !enabled, cleanStop != 0 else { return nil }
        var record = self
        record.cleanStop = 0
        return record
    }

    /// The record after the session's first write (WRITE or WRITE_ZEROES): no clean stop.
    public func afterFirstWrite() -> ReplicationRecord {
        var record = self
        record.cleanStop = 0
        return record
    }

    /// The record when a primary's replication stops: `cleanStop` is the basis of the next
    /// session, or 0 if anything was unconfirmed.
    public func stopped(cleanStop: UInt64) -> ReplicationRecord {
        var record = self
        record.cleanStop = cleanStop
        return record
    }
}

// MARK: disk states at rest

extension DiskState {
    /// A primary's own copy: the reference, unless it was promoted while Inconsistent.
    public static func ofPrimary(promotedInconsistent: Bool) -> DiskState {
        promotedInconsistent ? .inconsistent : .upToDate
    }

    /// A secondary whose replicator does not run, from its record: never UpToDate (it is not
    /// connected, so its primary may be writing). A resource that never wrote a record was
    /// created with `initial_sync: none` in sync, else it awaits its initial copy. A copy
    /// that belongs to a session (it applied a primary's writes) is consistent only if its
    /// replicator's last stop was clean (`stoppedCleanly`: flag `secondary-clean-stop`,
    /// written after the stop's flush, cleared when a replicator starts): one killed while
    /// applying may hold part of an epoch, or lose unflushed writes at a power cut, so it
    /// is `Inconsistent` until its primary re-sends. A demoted primary's copy belongs to no
    /// session and is the newest there is.
    public static func ofSecondaryAtRest(record: ReplicationRecord, initialSync: InitialSync,
                                         stoppedCleanly: Bool) -> DiskState {
        ofSecondary(synced: SecondaryNode.isSynced(record: record, initialSync: initialSync),
                    consistent: record.session == 0 || stoppedCleanly, connected: false, confirmed: false)
    }
}

// MARK: transitions

/// How a secondary becomes primary.
public enum PromotionKind: Equatable, Sendable {
    /// The connected primary drained and demoted itself first.
    case planned
    /// The operator says the primary is gone. `allowInconsistent`: promote even an
    /// Inconsistent copy (data that is no state the primary ever had).
    case forced(allowInconsistent: Bool)

    /// The `reason` of the `promoted` event.
    public var reason: String {
        switch self {
        case .planned: return "planned failover"
        case .forced: return "forced failover"
        }
    }
}

/// A promotion that may go ahead.
public struct Promotion: Equatable, Sendable {
    public var kind: PromotionKind
    /// The copy promoted is not a state the primary had (allowed only when forced with
    /// `allowInconsistent`): recorded, reported and published.
    public var inconsistent: Bool

    public init(kind: PromotionKind, inconsistent: Bool) {
        self.kind = kind
        self.inconsistent = inconsistent
    }

    /// Replication is enabled again right after the role change only after a planned
    /// failover of an enabled resource: the old primary, now secondary, holds the same data,
    /// so the new session starts in sync (`PrimaryStartFacts.handedOver`).
    public func enablesAfter(wasEnabled: Bool) -> Bool { wasEnabled && kind == .planned }
}

/// What `failover` does first.
public enum FailoverStep: Equatable, Sendable {
    /// Promote this node now (forced).
    case promote(PromotionKind)
    /// Ask the connected primary to drain and demote, then promote (`.planned`).
    case askPeerToDemote
}

/// What `disable` does.
public enum DisableStep: Equatable, Sendable {
    /// Stop replication now.
    case stopNow
    /// Diskless: the peer makes the writes acknowledged through it durable first
    /// (`.drainPeerBeforeStop`); a drain that fails refuses the disable (`disklessDrainRefusal`).
    case drainPeerThenStop
}

/// What `demote` does.
public enum DemoteStep: Equatable, Sendable {
    /// Not replicating: become secondary at once.
    case becomeSecondaryNow
    /// Drain every admitted write to the peer, tell it Demoted, then become secondary.
    case drainThenHandOver
}

public enum ResourceRoles {
    public static func checkEnable(_ facts: ResourceRoleFacts) -> RoleRefusal? {
        guard facts.role != .standalone else {
            return RoleRefusal(.wrongState, "resource '\(facts.name)' is standalone: it has no peer to replicate to")
        }
        guard !facts.enabled else { return RoleRefusal(.wrongState, "resource '\(facts.name)' is already enabled") }
        guard !facts.transitioning else { return facts.busy }
        return nil
    }

    public static func checkDisable(_ facts: ResourceRoleFacts) -> RoleRefusal? {
        guard facts.enabled else { return RoleRefusal(.wrongState, "resource '\(facts.name)' is not enabled") }
        guard !facts.transitioning else { return facts.busy }
        return nil
    }

    /// `disable`: refused as `checkDisable` says; a diskless primary with writes acknowledged
    /// through the peer and not yet durable there (they exist only in the peer's cache and this
    /// process's memory: a stop drops them, and the next start takes the peer as in sync) has
    /// the peer make them durable first (`.drainPeerBeforeStop`), and is refused when it
    /// cannot: the peer not connected (`peerConnected`: the link is up and the peer's Hello
    /// accepted). The node re-sends them once the peer is back.
    public static func disable(_ facts: ResourceRoleFacts, peerConnected: Bool) -> Result<DisableStep, RoleRefusal> {
        if let refusal = checkDisable(facts) { return .failure(refusal) }
        guard facts.acknowledgedOnlyInMemoryBytes > 0 else { return .success(.stopNow) }
        guard peerConnected else { return .failure(disklessDrainRefusal(facts, "the peer is not connected")) }
        return .success(.drainPeerThenStop)
    }

    /// A diskless primary's `disable` that the peer's drain could not make safe (`reason`).
    public static func disklessDrainRefusal(_ facts: ResourceRoleFacts, _ reason: String) -> RoleRefusal {
        RoleRefusal(.wrongState, "resource '\(facts.name)': this node's disk failed and "
            + "\(facts.acknowledgedOnlyInMemoryBytes) bytes of acknowledged writes are not yet durable on the peer, "
            + "held only in its cache and this process's memory: disabling would lose them, and \(reason). "
            + "Retry once the peer is connected")
    }

    /// - `diskFailure`: this node's disk failed ("operation: message"): its copy lacks writes,
    ///   so it is never promoted, not even when forced.
    /// - `peerConnected`: a planned failover needs the primary connected, since a primary it
    ///   cannot reach may hold newer data.
    /// `ownDiskState`: this node's copy now. A planned failover that this copy could not
    /// complete (it is Inconsistent) is refused before the primary is asked to demote: the
    /// primary would hand over and leave no node primary.
    /// - `behindPeer`: why the generations say this copy may be older than the connected
    ///   primary's (`PeerHelloCheck.copyBehindPrimary`), nil if they do not.
    public static func failover(_ facts: ResourceRoleFacts, force: Bool, allowInconsistent: Bool,
                                diskFailure: String?, peerConnected: Bool,
                                ownDiskState: DiskState, behindPeer: String? = nil) -> Result<FailoverStep, RoleRefusal> {
        guard facts.role == .secondary else {
            return .failure(RoleRefusal(.wrongState,
                "resource '\(facts.name)' is \(facts.role.rawValue): failover is run on the secondary"))
        }
        guard !facts.transitioning else { return .failure(facts.busy) }
        if let diskFailure {
            return .failure(RoleRefusal(.wrongState,
                "this node's disk failed (\(diskFailure)); it cannot become primary"))
        }
        if force { return .success(.promote(.forced(allowInconsistent: allowInconsistent))) }
        if ownDiskState == .outdated {
            return .failure(RoleRefusal(.wrongState,
                "this node's copy is Outdated: it lacks writes the peer acknowledged while they were apart "
                    + "(it learnt so at reconnect, or from outdate); promoting it would lose them. "
                    + "Let it catch up, or use force: true if the peer is really gone"))
        }
        if let behindPeer {
            // The wrong direction: the copy that would become the reference is the older one.
            return .failure(RoleRefusal(.wrongState,
                "wrong direction: \(behindPeer); promoting this copy would lose those writes. "
                    + "Let it catch up first, or use force: true if the peer is really gone"))
        }
        guard peerConnected else {
            return .failure(RoleRefusal(.wrongState,
                "the peer is not connected, so it may hold newer data; use force: true if it is really gone"))
        }
        if case .failure(let refusal) = promotion(.planned, ownDiskState: ownDiskState) { return .failure(refusal) }
        return .success(.askPeerToDemote)
    }

    /// A planned failover whose primary went away before it demoted.
    public static let peerLeftBeforeDemoting = RoleRefusal(.wrongState,
        "the peer went away before it demoted; use force: true if it is gone")

    /// Whether this node's copy (`ownDiskState`) may become primary. An Inconsistent or
    /// Failed copy is refused unless forced with `allowInconsistent`: promoting it would
    /// expose data the primary never had. The daemon also keeps the refusal as
    /// `last_error`, prefixed "failover refused: ".
    public static func promotion(_ kind: PromotionKind, ownDiskState: DiskState) -> Result<Promotion, RoleRefusal> {
        let inconsistent = ownDiskState == .inconsistent || ownDiskState == .failed
        if inconsistent && kind != .forced(allowInconsistent: true) {
            let hint = kind == .planned
                ? ""
                : "; add allow_inconsistent: true (tandemctl failover --force --allow-inconsistent) to promote it anyway"
            return .failure(RoleRefusal(.wrongState,
                "this node's copy is \(ownDiskState.rawValue) (a full copy or a re-send has not finished): "
                    + "promoting it would expose data the primary never had\(hint)"))
        }
        return .success(Promotion(kind: kind, inconsistent: inconsistent))
    }

    /// - `replicating`: a primary replicator runs.
    /// - `drained`: every admitted write is answered and durable on the peer.
    /// - `peerConnected`: the link to the peer is up, so a drain can finish.
    public static func demote(_ facts: ResourceRoleFacts, replicating: Bool, drained: Bool,
                              peerConnected: Bool) -> Result<DemoteStep, RoleRefusal> {
        guard facts.role == .primary else {
            return .failure(RoleRefusal(.wrongState, "resource '\(facts.name)' is \(facts.role.rawValue), not primary"))
        }
        guard !facts.transitioning else { return .failure(facts.busy) }
        guard replicating else { return .success(.becomeSecondaryNow) }
        guard drained || peerConnected else {
            return .failure(RoleRefusal(.wrongState, "writes are waiting for the peer, which is not connected"))
        }
        return .success(.drainThenHandOver)
    }

    // MARK: incoming connections

    /// A peer's Hello that this node's role refuses before any replicator sees it, or nil
    /// when the secondary replicator is to judge it (only an enabled secondary takes
    /// sessions).
    /// - `secondaryRunning`: a secondary replicator runs.
    public static func incoming(_ facts: ResourceRoleFacts, peerRole: ResourceRole, peerNode: String,
                                secondaryRunning: Bool) -> IncomingRefusal? {
        guard facts.role == .secondary else {
            let reason = "resource '\(facts.name)' is \(facts.role.rawValue) on this node"
            let seen = peerRole == .secondary && facts.role == .primary
                ? "'\(peerNode)' (secondary) probed this node: no connection from this primary reached it for a "
                    + "while; check that it is enabled and that this node reaches its address"
                : "refused a connection from '\(peerNode)' (\(peerRole.rawValue)): \(reason)"
            return IncomingRefusal(code: .roleConflict, reason: reason, seen: seen)
        }
        guard secondaryRunning, facts.enabled else {
            return IncomingRefusal(
                code: .busy, reason: "resource '\(facts.name)' is not enabled here",
                seen: "refused a connection from '\(peerNode)': resource '\(facts.name)' is not enabled here")
        }
        return nil
    }

    /// What a secondary keeps as `last_error` when its replicator refused a peer's Hello.
    /// A secondary peer refused for its role means neither node is primary.
    public static func secondaryRefusalSeen(_ facts: ResourceRoleFacts, code: WireRefusal, reason: String,
                                            peerRole: ResourceRole, peerNode: String) -> String {
        peerRole == .secondary && code == .roleConflict
            ? "the peer '\(peerNode)' is secondary for '\(facts.name)' too: neither node is primary "
                + "(promote one with failover, or fix the configuration)"
            : "refused a connection: \(code): \(reason)"
    }
}

/// A connection refused for this node's role.
public struct IncomingRefusal: Equatable, Sendable {
    /// The refusal code sent to the peer.
    public var code: WireRefusal
    /// The reason sent to the peer.
    public var reason: String
    /// What this node keeps as `last_error`.
    public var seen: String

    public init(code: WireRefusal, reason: String, seen: String) {
        self.code = code
        self.reason = reason
        self.seen = seen
    }
}
