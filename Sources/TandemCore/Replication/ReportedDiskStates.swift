// ReportedDiskStates: the final words a resource says about both copies (status `disk_state`,
// `peer_disk_state`, `redundant`), after every override: a running replicator's node, the
// state of a stopped copy at rest, this node's failed disk, the peer's failed disk. The
// daemon's status and the simulator's checks both ask this function, so what the simulator
// checks is what an operator reads. Pure: no I/O, no clock.

/// What a primary's running replicator says (its node's words).
public struct PrimaryPeerView: Equatable, Sendable {
    /// `PrimaryNode.peerDiskState`.
    public var peerDiskState: DiskState
    /// The stream is live now (`PrimaryNode.isPeerReady`).
    public var peerReady: Bool
    /// No full copy is due or running (`PrimaryNode.peerSynced`).
    public var peerSynced: Bool

    public init(peerDiskState: DiskState, peerReady: Bool, peerSynced: Bool) {
        self.peerDiskState = peerDiskState
        self.peerReady = peerReady
        self.peerSynced = peerSynced
    }
}

/// What a secondary's running replicator says (its node's words).
public struct SecondaryCopyView: Equatable, Sendable {
    /// `SecondaryNode.diskState`.
    public var diskState: DiskState
    /// `SecondaryNode.peerDiskState`.
    public var peerDiskState: DiskState
    /// `SecondaryNode.isRedundant`.
    public var redundant: Bool

    public init(diskState: DiskState, peerDiskState: DiskState, redundant: Bool) {
        self.diskState = diskState
        self.peerDiskState = peerDiskState
        self.redundant = redundant
    }
}

/// The facts of a resource's role that its disk states rest on. A replicator runs only in the
/// role it was started for, so a primary's facts cannot carry a secondary's replicator.
public enum ResourceCopyFacts: Equatable, Sendable {
    /// No peer: the volume is the only copy.
    case standalone
    /// `promotedInconsistent`: promoted from an Inconsistent copy (`allow_inconsistent`).
    /// `replicator`: nil while replication is stopped (disabled, or after the peer's disk
    /// failed).
    case primary(promotedInconsistent: Bool, replicator: PrimaryPeerView?)
    /// `atRest`: what the record says while no replicator runs (`DiskState.ofSecondaryAtRest`).
    case secondary(atRest: DiskState, replicator: SecondaryCopyView?)
}

/// The three status fields about the copies.
public struct ReportedDiskStates: Equatable, Sendable {
    public var diskState: DiskState
    /// nil: the field is absent (a standalone resource has no peer).
    public var peerDiskState: DiskState?
    /// nil: the field is absent (no replicator runs and no disk failed: nothing is claimed).
    public var redundant: Bool?

    public init(diskState: DiskState, peerDiskState: DiskState?, redundant: Bool?) {
        self.diskState = diskState
        self.peerDiskState = peerDiskState
        self.redundant = redundant
    }

    /// - `ownDiskFailed`: this node's disk failed (`DiskHealth`): it is `Failed` whatever the
    ///   replicator said, and nothing is redundant.
    /// - `peerDiskFailed`: the peer said its disk failed and this primary detached it: the
    ///   peer is `Failed` until the operator re-enables the resource.
    /// `ownOutdated`: the persisted flag `outdated` (this copy knows it lacks writes the peer
    /// acknowledged): a secondary's Consistent copy is Outdated instead, and so is a
    /// primary's UpToDate one (a primary demoted by a later promotion).
    public static func decide(_ facts: ResourceCopyFacts, ownDiskFailed: Bool, peerDiskFailed: Bool,
                              ownOutdated: Bool = false) -> ReportedDiskStates {
        var states = running(facts)
        if ownOutdated {
            switch facts {
            case .secondary where states.diskState == .consistent: states.diskState = .outdated
            case .primary where states.diskState == .upToDate: states.diskState = .outdated
            default: break
            }
        }
        if peerDiskFailed {
            states.peerDiskState = .failed
            states.redundant = false
        }
        if ownDiskFailed {
            states.diskState = .failed
            states.redundant = false
        }
        return states
    }

    /// A resource whose volume or metadata could not be opened at start: its disk failed and
    /// it never replicated, so it says nothing of a peer.
    public static let unopened = ReportedDiskStates(diskState: .failed, peerDiskState: nil, redundant: false)

    /// What the replicator (or, stopped, the record) says before any failure overrides it.
    private static func running(_ facts: ResourceCopyFacts) -> ReportedDiskStates {
        switch facts {
        case .standalone:
            return ReportedDiskStates(diskState: .upToDate, peerDiskState: nil, redundant: nil)
        case let .primary(promotedInconsistent, replicator):
            let own = DiskState.ofPrimary(promotedInconsistent: promotedInconsistent)
            guard let replicator else { return ReportedDiskStates(diskState: own, peerDiskState: .unknown, redundant: nil) }
            // Redundant only while the stream is live and no copy is due: both hold the same writes.
            return ReportedDiskStates(diskState: own, peerDiskState: replicator.peerDiskState,
                                      redundant: replicator.peerReady && replicator.peerSynced)
        case let .secondary(atRest, replicator):
            guard let replicator else { return ReportedDiskStates(diskState: atRest, peerDiskState: .unknown, redundant: nil) }
            return ReportedDiskStates(diskState: replicator.diskState, peerDiskState: replicator.peerDiskState,
                                      redundant: replicator.redundant)
        }
    }
}
