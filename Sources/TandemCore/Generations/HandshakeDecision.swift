// HandshakeDecision: what two nodes do when they meet, decided from both Hellos by the same
// pure function on both sides (docs/design-v3.md section 2, rows 1-11, first match wins).
// It is symmetric: decide(own: a, peer: b) is the mirror of decide(own: b, peer: a), so the
// two nodes reach the same answer and the Decision frame (type 15) can check it. Rows the
// table states one way (2, 8) are applied both ways; where two mirrored rows would both
// match (9 and 10), neither history contains the other cleanly and the answer is split
// brain, so that no order of arguments can pick a direction. Issue 14 adds the split-brain
// policies and the `wrong-direction` refusal; this type only names the outcome.

/// One node's facts as its Hello carries them.
public struct HandshakeSide: Equatable, Sendable {
    public var generations: Generations
    /// Flag `crashed-primary`: primary with writes in flight when it stopped.
    public var crashedPrimary: Bool
    /// The role it takes now.
    public var isPrimary: Bool
    public var diskState: DiskState
    /// Only a primary's setting counts (row 1).
    public var initialSync: InitialSync

    public init(
        generations: Generations, crashedPrimary: Bool = false, isPrimary: Bool,
        diskState: DiskState = .consistent, initialSync: InitialSync = .full
    ) {
        self.generations = generations
        self.crashedPrimary = crashedPrimary
        self.isPrimary = isPrimary
        self.diskState = diskState
        self.initialSync = initialSync
    }
}

/// Which way data moves, seen from the node that decides.
public enum SyncDirection: String, Equatable, Sendable {
    case ownToPeer, peerToOwn
    public var mirrored: SyncDirection { self == .ownToPeer ? .peerToOwn : .ownToPeer }
}

public enum HandshakeDecision: Equatable, Sendable {
    /// Row 1, `initial_sync: full`: full copy from the primary.
    case initialFullCopy(SyncDirection)
    /// Row 1, `initial_sync: none`: both take the primary's new C, in sync.
    case initialInSync(SyncDirection)
    /// Rows 1 and 4 when neither (or both) is primary: no side can be the source yet.
    case awaitingPrimary
    /// Rows 2, 9, 10.
    case fullCopy(SyncDirection)
    /// Row 3: the stream continues from the durable epoch.
    case inSync
    /// Row 4: checksum resync of the activity-log extents (both logs).
    case activityLogResync(SyncDirection)
    /// Rows 5, 6, 7: the source's bitmap ∪ the target's bitmap ∪ both activity logs.
    case bitmapResync(SyncDirection)
    /// Rows 6 and 7 between two primaries (row 4's second half): the target is an old
    /// primary that returned after the source was promoted from its generation (its B = 0,
    /// the source's B is its C, the source's promotion number is higher). It wrote nothing
    /// since it parted but what it had not confirmed when it stopped (a crash's activity
    /// log, a stop's sealed bitmap): it yields (demoted, its generation none) and the
    /// source resyncs its bitmap ∪ the target's set. Not a split brain.
    case returnedPrimaryResync(SyncDirection)
    /// Row 8 (and 9 with 10): both moved since a common generation.
    case splitBrain
    /// Row 11: refuse (`unrelated-data`), both StandAlone.
    case unrelated
    /// The table's source is `Outdated` or `Inconsistent` while the target is `UpToDate` or
    /// `Consistent`: never copy worse data over better (design-v3 section 2).
    case refusedSourceNotUsable(SyncDirection)

    public var mirrored: HandshakeDecision {
        switch self {
        case .initialFullCopy(let d): return .initialFullCopy(d.mirrored)
        case .initialInSync(let d): return .initialInSync(d.mirrored)
        case .fullCopy(let d): return .fullCopy(d.mirrored)
        case .activityLogResync(let d): return .activityLogResync(d.mirrored)
        case .bitmapResync(let d): return .bitmapResync(d.mirrored)
        case .returnedPrimaryResync(let d): return .returnedPrimaryResync(d.mirrored)
        case .refusedSourceNotUsable(let d): return .refusedSourceNotUsable(d.mirrored)
        case .awaitingPrimary, .inSync, .splitBrain, .unrelated: return self
        }
    }

    public var direction: SyncDirection? {
        switch self {
        case .initialFullCopy(let d), .initialInSync(let d), .fullCopy(let d),
            .activityLogResync(let d), .bitmapResync(let d), .returnedPrimaryResync(let d), .refusedSourceNotUsable(let d):
            return d
        case .awaitingPrimary, .inSync, .splitBrain, .unrelated: return nil
        }
    }

    public static func decide(own: HandshakeSide, peer: HandshakeSide) -> HandshakeDecision {
        decideWithRow(own: own, peer: peer).decision
    }

    /// The decision and the table row that produced it (for logs and events).
    public static func decideWithRow(own: HandshakeSide, peer: HandshakeSide) -> (row: Int, decision: HandshakeDecision) {
        let (row, decision) = tableRow(own: own, peer: peer)
        guard let direction = decision.direction, !isInitialInSync(decision) else { return (row, decision) }
        let (source, target) = direction == .ownToPeer ? (own, peer) : (peer, own)
        let sourceLacksData = source.diskState == .outdated || source.diskState == .inconsistent
        let targetHoldsData = target.diskState == .upToDate || target.diskState == .consistent
        if sourceLacksData && targetHoldsData { return (row, .refusedSourceNotUsable(direction)) }
        return (row, decision)
    }

    private static func isInitialInSync(_ decision: HandshakeDecision) -> Bool {
        if case .initialInSync = decision { return true }
        return false
    }

    /// The primary's direction, if exactly one side is primary.
    private static func fromPrimary(_ own: HandshakeSide, _ peer: HandshakeSide) -> SyncDirection? {
        switch (own.isPrimary, peer.isPrimary) {
        case (true, false): return .ownToPeer
        case (false, true): return .peerToOwn
        default: return nil
        }
    }

    private static func tableRow(own: HandshakeSide, peer: HandshakeSide) -> (Int, HandshakeDecision) {
        let a = own.generations
        let b = peer.generations
        if a.current == 0 && b.current == 0 {
            guard let direction = fromPrimary(own, peer) else { return (1, .awaitingPrimary) }
            let primary = direction == .ownToPeer ? own : peer
            return (1, primary.initialSync == .full ? .initialFullCopy(direction) : .initialInSync(direction))
        }
        if a.current == 0 { return (2, .fullCopy(.peerToOwn)) }
        if b.current == 0 { return (2, .fullCopy(.ownToPeer)) }
        if a.current == b.current {
            if let decision = sameCurrent(own: own, peer: peer) { return decision }
        }
        if let returned = returnedPrimary(own: own, peer: peer) { return returned }
        if a.bitmap != 0 && a.bitmap == b.current && b.bitmap == 0 { return (6, .bitmapResync(.ownToPeer)) }
        if b.bitmap != 0 && b.bitmap == a.current && a.bitmap == 0 { return (7, .bitmapResync(.peerToOwn)) }
        if (a.bitmap != 0 && a.bitmap == b.bitmap)
            || (a.bitmap != 0 && a.bitmap == b.current && b.bitmap != 0)
            || (b.bitmap != 0 && b.bitmap == a.current && a.bitmap != 0)
        {
            return (8, .splitBrain)
        }
        let peerBehind = a.historyContains(b.current)
        let ownBehind = b.historyContains(a.current)
        if peerBehind && ownBehind { return (9, .splitBrain) }
        if peerBehind { return (9, .fullCopy(.ownToPeer)) }
        if ownBehind { return (10, .fullCopy(.peerToOwn)) }
        return (11, .unrelated)
    }

    /// Rows 6 and 7 when both sides are primary and the one that went on was promoted after
    /// the other (higher P): the other returned after a failover (docs/design-v3.md section
    /// 2, row 4's second half). Both facts are in both Hellos, so both nodes find it.
    private static func returnedPrimary(own: HandshakeSide, peer: HandshakeSide) -> (Int, HandshakeDecision)? {
        guard own.isPrimary && peer.isPrimary else { return nil }
        let a = own.generations
        let b = peer.generations
        if a.bitmap != 0 && a.bitmap == b.current && b.bitmap == 0 && a.promotion > b.promotion {
            return (6, .returnedPrimaryResync(.ownToPeer))
        }
        if b.bitmap != 0 && b.bitmap == a.current && a.bitmap == 0 && b.promotion > a.promotion {
            return (7, .returnedPrimaryResync(.peerToOwn))
        }
        return nil
    }

    /// Rows 3-5 (C equal); nil when both B ≠ 0, which the later rows decide.
    private static func sameCurrent(own: HandshakeSide, peer: HandshakeSide) -> (Int, HandshakeDecision)? {
        if own.crashedPrimary || peer.crashedPrimary {
            // "The crashed primary if it is primary again, else the primary": the primary.
            guard let direction = fromPrimary(own, peer) else { return (4, .awaitingPrimary) }
            return (4, .activityLogResync(direction))
        }
        switch (own.generations.bitmap != 0, peer.generations.bitmap != 0) {
        case (false, false): return (3, .inSync)
        case (true, false): return (5, .bitmapResync(.ownToPeer))
        case (false, true): return (5, .bitmapResync(.peerToOwn))
        case (true, true): return nil
        }
    }
}
