// PrimaryStart: how a primary session starts from the persisted record and what the daemon
// tracked (a stop's sealed bitmap, a crash's activity log): its basis, the reason status and
// the `session-start` event give, and the record written before it starts. Pure (part of
// ResourceRoles' decisions); the daemon's `Resource.startPrimary` gathers the facts.

/// Testing-only faults in the primary-start rule, so that the simulator can prove its
/// checker catches what they break. Production passes none.
public enum PrimaryStartFault: Equatable, Sendable {
    /// Treats an unclean stop (a crash, or writes the peer had not confirmed) as clean: the
    /// restarted primary says the volumes are in sync, so the writes the peer lacks are
    /// never sent again.
    case restartForgetsUnconfirmedWrites
}

/// The facts a primary session's start is decided from.
public struct PrimaryStartFacts: Equatable, Sendable {
    /// The record as on disk (a fresh record if none was ever written).
    public var record: ReplicationRecord
    /// The spec's `initial_sync`: it describes the volumes at creation.
    public var initialSync: InitialSync
    /// A planned failover's enable: the old primary handed over every write.
    public var handedOver: Bool
    /// The peer's disk failed while it was this primary's secondary (the peer-failed marker):
    /// it lacks writes.
    public var peerLacksWrites: Bool
    /// The export may have taken writes the peer never saw while replication was off: since
    /// the last clean stop or since creation (counted), or before this daemon started (writes
    /// of an earlier run cannot be counted, so a primary opened disabled says so).
    public var writtenWhileDisabled: Bool
    /// A bitmap (persisted at the last stop, or tracked since) covers every region the peer
    /// may lack relative to these bases, writes while disabled included: nil when none does.
    public var tracked: [CatchUpBase]?
    /// `tracked` comes from the activity log of a primary that did not stop (a crash).
    public var trackedAfterCrash: Bool
    /// The bitmap behind `tracked` sets no bit: the peer lacks nothing relative to its bases
    /// (after a crash: the newest transaction names no extent and its pages, if they count,
    /// mark nothing — the pair was in sync and idle when it was written).
    public var trackedIsEmpty = false
    /// Diskless (issue 16 §4): this disk lacks writes the peer holds (the record's flag). The
    /// peer holds every acknowledged write; this disk is resynced from it, never copied to it.
    public var localLacksWrites = false

    public init(record: ReplicationRecord, initialSync: InitialSync, handedOver: Bool = false,
                peerLacksWrites: Bool = false, writtenWhileDisabled: Bool = false, tracked: [CatchUpBase]? = nil,
                trackedAfterCrash: Bool = false) {
        self.trackedAfterCrash = trackedAfterCrash
        self.record = record
        self.initialSync = initialSync
        self.handedOver = handedOver
        self.peerLacksWrites = peerLacksWrites
        self.writtenWhileDisabled = writtenWhileDisabled
        self.tracked = tracked
    }
}

/// Why a primary session starts as it does (status `session_start_reason`, the
/// `session-start` event, the log).
public enum PrimaryStartReason: Equatable, Sendable, CustomStringConvertible {
    case peerLacksWrites
    case handedOver
    case cleanStop
    case cleanStopBeforeAnyWrite
    case identicalAtCreation
    case initialCopy
    case writtenBeforeFirstStart
    case uncleanStop
    /// The last stop persisted its bitmap (or writes since were tracked): only its regions go.
    case trackedSinceStop
    /// The primary did not stop (kill -9, power loss): its activity log names the regions its
    /// last moments touched, and only those are copied.
    case crashRecovery
    /// The primary did not stop, and its activity log proves the peer held everything: bases,
    /// no extent, no page marked. A catch-up of nothing (never a full copy).
    case crashRecoveryNothingDirty
    /// `PrimaryStartFault.restartForgetsUnconfirmedWrites` (testing only).
    case uncleanStopTreatedAsClean
    /// Diskless: this disk lacks writes the peer holds; the peer is taken as it is.
    case localLacksWrites

    public var description: String {
        switch self {
        case .peerLacksWrites:
            return "the peer lacks writes (its disk failed, it lost its record, or it lost a split brain): the whole volume is copied"
        case .handedOver:
            return "planned failover: the old primary handed over every write"
        case .cleanStop:
            return "clean stop: every write was confirmed durable by the peer, none since; no resync"
        case .cleanStopBeforeAnyWrite:
            return "clean stop before any write; the volumes were in sync (initial_sync none)"
        case .identicalAtCreation:
            return "initial_sync none: the volumes are identical at creation"
        case .initialCopy:
            return "initial copy (initial_sync full)"
        case .writtenBeforeFirstStart:
            return "initial_sync none, but the volume may have been written before replication first started: "
                + "the whole volume is copied"
        case .uncleanStop:
            return "unclean stop (crash, kill -9, power loss) or writes the peer had not confirmed: "
                + "the peer may lack writes, so the whole volume is copied"
        case .trackedSinceStop:
            return "the last stop left writes the peer had not confirmed (or writes came while disabled): "
                + "its bitmap says which, and only those regions are copied (those a compare the stop ended early "
                + "still owed are compared by digest first)"
        case .crashRecovery:
            return "crash-recovery: the primary did not stop cleanly; its activity log names the extents its last "
                + "writes touched, and only those are copied"
        case .crashRecoveryNothingDirty:
            return "crash-recovery: the primary did not stop cleanly; its activity log names no extent and marks no "
                + "region, and its bases prove what the peer holds: nothing differs (a catch-up of one block, so that "
                + "the session ends as every catch-up does)"
        case .uncleanStopTreatedAsClean:
            return "testing fault: an unclean stop treated as clean"
        case .localLacksWrites:
            return "this node's disk lacks writes its peer holds (written through the peer while the disk had failed): "
                + "nothing is copied to the peer; this disk is resynced from it: the regions the record names, or the whole "
                + "volume when it names none (event local-resync-started)"
        }
    }
}

/// How a primary session starts: its basis, why, and the record written before it starts.
public struct PrimaryStart: Equatable, Sendable {
    public var basis: SessionBasis
    public var reason: PrimaryStartReason
    /// Persisted before the session starts: `primaryStarted` (so `initial_sync` no longer
    /// applies) and the session's own basis as the clean-stop value, which stays true until
    /// the session's first write invalidates it.
    public var record: ReplicationRecord

    /// Precedence: a peer that lacks writes is copied whatever else holds; a planned
    /// failover's hand-over is in sync; a tracked bitmap that sets bits is caught up;
    /// otherwise the record decides (`SessionBasis.forPrimaryStart`), after writes made while
    /// replication was off have cancelled its clean stop, and `initial_sync: none`
    /// ("identical at creation") with them on the first run — and where the record would copy
    /// the volume, an empty tracked bitmap with bases is a catch-up of nothing instead.
    public init(_ facts: PrimaryStartFacts, fault: PrimaryStartFault? = nil) {
        var record = facts.record
        if facts.writtenWhileDisabled { record.cleanStop = 0 }
        (basis, reason) = Self.basis(facts, record: record, fault: fault)
        record.primaryStarted = true
        record.cleanStop = basis.cleanStopValue
        self.record = record
    }

    private static func basis(_ facts: PrimaryStartFacts, record: ReplicationRecord,
                              fault: PrimaryStartFault?) -> (SessionBasis, PrimaryStartReason) {
        if facts.localLacksWrites { return (.assumeInSync, .localLacksWrites) }
        if facts.peerLacksWrites { return (.fullCopy, .peerLacksWrites) }
        if facts.handedOver { return (.assumeInSync, .handedOver) }
        let tracked = facts.tracked.flatMap { $0.isEmpty ? nil : $0 }
        if let bases = tracked, !facts.trackedIsEmpty {
            return (.catchUp(bases), facts.trackedAfterCrash ? .crashRecovery : .trackedSinceStop)
        }
        let firstRun = !record.primaryStarted
        if firstRun && facts.initialSync == .none && facts.writtenWhileDisabled {
            return (.fullCopy, .writtenBeforeFirstStart)
        }
        let basis = SessionBasis.forPrimaryStart(initialSync: facts.initialSync, firstRun: firstRun,
                                                 cleanStop: record.cleanStop)
        switch basis {
        case .continues:
            return (basis, .cleanStop)
        case .assumeInSync:
            return (basis, record.cleanStop != 0 ? .cleanStopBeforeAnyWrite : .identicalAtCreation)
        case .fullCopy, .catchUp:  // forPrimaryStart never answers a catch-up
            if firstRun { return (basis, .initialCopy) }
            // An empty tracked bitmap with bases proves the peer lacks nothing relative to them.
            // A clean stop (above) says as much and keeps the peer UpToDate, so it goes first;
            // without one — a crash right after a catch-up ended, a request while disabled that
            // wrote nothing — a catch-up of nothing from those bases, never a whole copy.
            if let bases = tracked {
                return (.catchUp(bases), facts.trackedAfterCrash ? .crashRecoveryNothingDirty : .trackedSinceStop)
            }
            if fault == .restartForgetsUnconfirmedWrites { return (.assumeInSync, .uncleanStopTreatedAsClean) }
            return (basis, .uncleanStop)
        }
    }
}

extension SessionBasis {
    /// The word status and the `session-start` event report.
    public var word: String {
        switch self {
        case .fullCopy: return "full-copy"
        case .assumeInSync: return "assumed-in-sync"
        case .continues: return "clean-restart"
        case .catchUp: return "catch-up"
        }
    }
}
