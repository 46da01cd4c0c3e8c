// CatchUp: what a catch-up session promises and how its Hello says it. A primary that went on
// without its peer (Ahead) tracks the regions it wrote in a dirty bitmap; the next session
// copies only those. That is correct only if the peer's copy differs from the primary's in
// nothing but those regions, which holds when the peer holds one of the *bases* the bitmap
// was built against: a session and the epoch through which the peer had confirmed it durable
// when tracking began (every later write of that session is in the bitmap).
//
// The Hello carries the bases in the history field (a version-2 Hello leaves it zero): the
// `bitmap` field is 0, which a version-2 secondary reads as a full copy, and history holds
// up to two (session, epoch) pairs, newest first. A primary that learns its peer speaks
// version 2 copies the whole volume instead (PrimaryNode), which is what that peer expects.

/// A point the peer may hold, which the primary's bitmap covers.
public struct CatchUpBase: Sendable, Hashable {
    /// The session (0 with `epochAll`: whatever synced copy the peer holds, as at the start
    /// of an `assumeInSync` session).
    public var session: UInt64
    /// The peer confirmed every epoch through this durable (`epochAll`: all of `session`, as
    /// a clean stop promises).
    public var durableThroughEpoch: Epoch

    public static let epochAll = Epoch.max

    public init(session: UInt64, durableThroughEpoch: Epoch) {
        self.session = session
        self.durableThroughEpoch = durableThroughEpoch
    }

    /// The peer holds every write of `session` (a clean stop, `SessionBasis.continues`).
    public static func all(of session: UInt64) -> CatchUpBase {
        CatchUpBase(session: session, durableThroughEpoch: epochAll)
    }

    /// The peer's copy was identical at the session's start (`SessionBasis.assumeInSync`).
    public static let assumed = CatchUpBase(session: 0, durableThroughEpoch: epochAll)

    /// Bases a Hello can carry (two pairs of history entries).
    public static let countMax = 2

    /// Whether a secondary with this record holds the base, by the same rules as the basis it
    /// stands for: `assumed` as `assumeInSync`, `all(of:)` as `continues(from:)`, and a
    /// session-and-epoch when the record is that session, durable at least through the epoch
    /// (synced or not: a catch-up or full copy interrupted in that session left every region
    /// it had not finished in the primary's bitmap).
    public func isHeld(recordSession: UInt64, recordContinuedFrom: UInt64, recordSynced: Bool,
                       recordDurableEpoch: Epoch, fresh: Bool) -> Bool {
        if self == .assumed { return recordSynced || fresh }
        if durableThroughEpoch == CatchUpBase.epochAll {
            return recordSynced && !fresh && (session == recordSession || session == recordContinuedFrom)
        }
        return !fresh && session == recordSession && recordDurableEpoch >= durableThroughEpoch
    }
}

extension SessionBasis {
    /// The Hello's generation fields for `session` with this basis.
    public func wireGenerations(session: UInt64) -> WireGenerations {
        var history: [UInt64] = [0, 0, 0, 0]
        if case .catchUp(let bases) = self {
            for (index, base) in bases.prefix(CatchUpBase.countMax).enumerated() {
                history[2 * index] = base.session
                history[2 * index + 1] = base.durableThroughEpoch
            }
        }
        return WireGenerations(current: session, bitmap: wireValue(session: session), history: history)
    }

    /// The basis a primary's Hello states.
    public init(generations: WireGenerations) {
        let session = generations.current
        let wire = generations.bitmap
        if wire == session && wire != 0 {
            self = .assumeInSync
        } else if wire != 0 {
            self = .continues(from: wire)
        } else {
            var bases: [CatchUpBase] = []
            for index in 0..<CatchUpBase.countMax {
                let base = CatchUpBase(session: generations.history[2 * index],
                                       durableThroughEpoch: generations.history[2 * index + 1])
                if base.session != 0 || base.durableThroughEpoch != 0 { bases.append(base) }
            }
            self = bases.isEmpty ? .fullCopy : .catchUp(bases)
        }
    }

    /// The bases of the next catch-up after this session (`session`) loses its peer with the
    /// peer's durable epoch `peerDurableEpoch`. With nothing confirmed in this session the
    /// peer may still hold what this session started from, so those bases stay too.
    public static func basesAfterLosingPeer(session: UInt64, peerDurableEpoch: Epoch,
                                            previous: [CatchUpBase]) -> [CatchUpBase] {
        let own = CatchUpBase(session: session, durableThroughEpoch: peerDurableEpoch)
        guard peerDurableEpoch == 0 else { return [own] }
        return Array(([own] + previous.filter { $0 != own }).prefix(CatchUpBase.countMax))
    }

    public var isCatchUp: Bool {
        if case .catchUp = self { return true }
        return false
    }

    /// What a clean stop's value (`ReplicationRecord.cleanStop`) says the peer holds: writes
    /// made after it can be caught up from these bases.
    public static func basesAfterCleanStop(_ cleanStop: UInt64) -> [CatchUpBase] {
        if cleanStop == 0 { return [] }
        return cleanStop == assumeMarker ? [.assumed] : [.all(of: cleanStop)]
    }

    /// The bases this basis starts a session with: what the peer holds at its start.
    public var startingBases: [CatchUpBase] {
        switch self {
        case .fullCopy: return []
        case .assumeInSync: return [.assumed]
        case .continues(let from): return [.all(of: from)]
        case .catchUp(let bases): return bases
        }
    }
}
