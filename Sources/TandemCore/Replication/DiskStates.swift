// DiskStates: what a node may say about its copy and its peer's, and how a primary session
// starts (full copy, or continuing from a state the peer is known to hold). Pure decisions
// over facts the daemon gathers; no I/O, no clock. Each word is a promise (DESIGN.md,
// "States"): a node never reports more than it knows.

/// DRBD's disk state words.
public enum DiskState: String, Sendable, Equatable, CaseIterable {
    /// Holds every acknowledged write.
    case upToDate = "UpToDate"
    /// A crash-consistent prefix of the primary's history that may lack recent writes.
    case consistent = "Consistent"
    /// Consistent and known to lack writes.
    case outdated = "Outdated"
    /// Neither: a full copy in progress or interrupted, or a re-send not yet applied.
    case inconsistent = "Inconsistent"
    /// Its disk returned errors.
    case failed = "Failed"
    /// The peer's state as seen by a node that cannot know it.
    case unknown = "DUnknown"
}

/// How a primary session relates to what the secondary already holds. Carried in the
/// primary's Hello as the `bitmap` generation field (docs/protocol.md, *Session*).
public enum SessionBasis: Equatable, Sendable {
    /// The secondary is overwritten in volume order: Inconsistent until SyncComplete.
    case fullCopy
    /// The operator said the volumes are identical (`initial_sync: none` at creation, or a
    /// planned failover whose old primary handed over everything).
    case assumeInSync
    /// The primary stopped cleanly at the end of session `from`, with everything confirmed
    /// durable by the peer, and has written nothing since.
    case continues(from: UInt64)
    /// The primary went on without the peer (Ahead) and its dirty bitmap holds every region
    /// the peer lacks relative to any of these points: only those regions are copied. The
    /// secondary is Inconsistent until SyncComplete, as in a full copy (CatchUp.swift).
    case catchUp([CatchUpBase])

    /// The Hello's `bitmap` field: 0 for a full copy (and for a catch-up, which a version-2
    /// peer therefore takes for one), the session itself for "in sync".
    public func wireValue(session: UInt64) -> UInt64 {
        switch self {
        case .fullCopy, .catchUp: return 0
        case .assumeInSync: return session
        case .continues(let from): return from
        }
    }

    /// A version-2 Hello's basis (its history is all zero).
    public init(wireValue: UInt64, session: UInt64) {
        self.init(generations: WireGenerations(current: session, bitmap: wireValue))
    }

    /// What a primary records while nothing has been written in the session: the basis
    /// that still holds after a crash (0: none, a full copy follows).
    public var cleanStopValue: UInt64 {
        switch self {
        case .fullCopy, .catchUp: return 0
        case .assumeInSync: return SessionBasis.assumeMarker
        case .continues(let from): return from
        }
    }

    static let assumeMarker = UInt64.max

    /// The basis of a primary's next session, from its persisted record.
    /// - `cleanStop`: 0 after a crash, a write, or a stop with anything unconfirmed; else
    ///   what `cleanStopValue` (or the session that ended cleanly) said.
    /// - `firstRun`: this node has never started a session as primary.
    /// `initialSync` describes the volumes at creation, so it counts only for the first run.
    public static func forPrimaryStart(initialSync: InitialSync, firstRun: Bool, cleanStop: UInt64) -> SessionBasis {
        if cleanStop == assumeMarker { return .assumeInSync }
        if cleanStop != 0 { return .continues(from: cleanStop) }
        return firstRun && initialSync == .none ? .assumeInSync : .fullCopy
    }
}

/// What a secondary does with a primary's Hello for `session` with `basis`.
public enum SecondarySessionVerdict: Equatable, Sendable {
    /// A reconnect within the session it has: carry on.
    case sameSession
    /// A new session: start the state machine afresh; `synced` is what the record says
    /// from now on (false while a full copy is coming).
    case newSession(synced: Bool, continuedFrom: UInt64)
    /// The basis does not match what this copy holds: the primary must copy everything.
    case refuse(String)

    /// - `recordSession`, `recordContinuedFrom`, `recordSynced`: this copy's record.
    /// - `fresh`: no record was ever written (a new resource).
    /// - `recordDurableEpoch`: the record's durable epoch (a catch-up needs at least its base's).
    public static func decide(recordSession: UInt64, recordContinuedFrom: UInt64, recordSynced: Bool, fresh: Bool,
                              recordDurableEpoch: Epoch = 0,
                              session: UInt64, basis: SessionBasis) -> SecondarySessionVerdict {
        if session == recordSession && !fresh { return .sameSession }
        switch basis {
        case .fullCopy:
            return .newSession(synced: false, continuedFrom: 0)
        case .catchUp(let bases):
            let held = bases.contains {
                $0.isHeld(recordSession: recordSession, recordContinuedFrom: recordContinuedFrom,
                          recordSynced: recordSynced, recordDurableEpoch: recordDurableEpoch, fresh: fresh)
            }
            guard held else {
                return .refuse("this copy holds session \(recordSession) through epoch \(recordDurableEpoch)"
                    + "\(recordSynced ? "" : ", Inconsistent"), which the primary's bitmap does not cover: it needs a full copy")
            }
            return .newSession(synced: false, continuedFrom: 0)
        case .assumeInSync:
            guard recordSynced || fresh else {
                return .refuse("this copy is Inconsistent (a full copy did not finish): it needs a full copy")
            }
            return .newSession(synced: true, continuedFrom: 0)
        case .continues(let from):
            guard recordSynced else {
                return .refuse("this copy is Inconsistent (a full copy did not finish): it needs a full copy")
            }
            guard from == recordSession || from == recordContinuedFrom else {
                return .refuse("the primary continues session \(from), this copy holds session \(recordSession): it needs a full copy")
            }
            return .newSession(synced: true, continuedFrom: from)
        }
    }
}

extension DiskState {
    /// A change between `UpToDate` and `Consistent` only: an async stream under load does
    /// this with every acknowledgement, so events coalesce such changes (at most one per
    /// interval, the state at that moment) while any other change is published at once.
    public func isLagOnlyChange(from previous: DiskState) -> Bool {
        switch (self, previous) {
        case (.upToDate, .consistent), (.consistent, .upToDate): return true
        default: return false
        }
    }

    /// Whether a change to this state is published now (`sinceLastNs`: since the last
    /// published change), or left for a later tick.
    public func publishesNow(from previous: DiskState?, sinceLastNs: UInt64) -> Bool {
        guard let previous else { return true }
        guard previous != self else { return false }
        return !isLagOnlyChange(from: previous) || sinceLastNs >= DiskState.lagChangeIntervalNs
    }

    public static let lagChangeIntervalNs: UInt64 = 1_000_000_000

    /// A secondary's own copy.
    /// - `synced`: no full copy is pending or interrupted (persisted).
    /// - `consistent`: the state machine holds an epoch prefix (false after a restart until
    ///   the primary's re-send has been applied).
    /// - `connected`: a live session with the primary.
    /// - `confirmed`: the primary said this connection that the copy holds every write it
    ///   acknowledged (SyncComplete), and nothing it may have acknowledged since has
    ///   arrived out of the stream's reach (in sync mode a write is acknowledged only after
    ///   this node applied it, so arrivals do not undo the confirmation).
    public static func ofSecondary(synced: Bool, consistent: Bool, connected: Bool, confirmed: Bool) -> DiskState {
        guard synced, consistent else { return .inconsistent }
        return connected && confirmed ? .upToDate : .consistent
    }

    /// The primary's view of its peer's copy.
    /// - `heard`: the peer answered in this run (before that the primary knows nothing).
    /// - `peerReady`: connected and the stream is live now.
    /// - `copying`: a full copy is due or in progress.
    /// - `sync`: sync mode (a write is acknowledged only once the peer completed it).
    /// - `lagBytes`: acknowledged writes the peer has not confirmed durable.
    /// - `acknowledgedWithoutPeer`: since the link was last up, this node acknowledged a write
    ///   the peer cannot have received on it (`PrimaryNotice.acknowledgedWithoutPeer`).
    ///
    /// Away, the peer is `Outdated` only when it is known to lack a write: one acknowledged
    /// without it. Writes acknowledged while it was connected and not yet confirmed durable
    /// (the lag) it may hold or not — in sync mode it applied each before the answer, and
    /// only its cache may have lost them — so they make it `DUnknown`, as DRBD's disconnected
    /// peer is until its fencing says otherwise (the control plane's `outdate-peer` is
    /// `PrimaryNode`'s override).
    public static func ofPeer(
        heard: Bool, peerReady: Bool, copying: Bool, sync: Bool, lagBytes: UInt64, acknowledgedWithoutPeer: Bool
    ) -> DiskState {
        guard heard else { return .unknown }
        if copying { return .inconsistent }
        if peerReady { return sync || lagBytes == 0 ? .upToDate : .consistent }
        return acknowledgedWithoutPeer ? .outdated : .unknown
    }
}

extension DiskState {
    /// The byte that carries this word in a ReplicaHello.
    public var wire: WireDiskState {
        switch self {
        case .unknown: return .unknown
        case .inconsistent: return .inconsistent
        case .outdated: return .outdated
        case .consistent: return .consistent
        case .upToDate: return .upToDate
        case .failed: return .failed
        }
    }

    /// nil for a code this version does not know.
    public init?(wire: WireDiskState) {
        switch wire {
        case .unknown: self = .unknown
        case .inconsistent: self = .inconsistent
        case .outdated: self = .outdated
        case .consistent: self = .consistent
        case .upToDate: self = .upToDate
        case .failed: self = .failed
        default: return nil
        }
    }
}
