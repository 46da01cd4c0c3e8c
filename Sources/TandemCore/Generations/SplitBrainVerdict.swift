// SplitBrainVerdict: what `after_split_brain` decides when two primaries find they both
// wrote since they parted (docs/replication.md *Split brain*). Both nodes run it with their
// own facts and the peer's (from its Hello), so the verdicts mirror each other: one node
// discards its data and the other survives, or both disconnect and wait for `resolve`.

/// The resource setting `after_split_brain`.
public enum AfterSplitBrain: String, Sendable, CaseIterable {
    /// Both stay primary, StandAlone, until the operator runs `resolve` (the default).
    case disconnect
    /// The side that wrote nothing since parting loses; with changes on both, disconnect.
    case discardZeroChanges = "discard-zero-changes"
    /// The primary promoted last (the higher promotion number) loses.
    case discardYoungerPrimary = "discard-younger-primary"
    /// The side that changed fewer bytes loses; a tie falls back to the younger primary.
    case discardLeastChanges = "discard-least-changes"

    /// Its code in the Hello's generation tail (the peer's setting is compared: nodes that
    /// disagree disconnect, so that both never pick themselves).
    public var wireCode: UInt8 {
        switch self {
        case .disconnect: return 0
        case .discardZeroChanges: return 1
        case .discardYoungerPrimary: return 2
        case .discardLeastChanges: return 3
        }
    }

    public init?(wireCode: UInt8) {
        guard let match = Self.allCases.first(where: { $0.wireCode == wireCode }) else { return nil }
        self = match
    }
}

public enum SplitBrainVerdict: Equatable, Sendable {
    /// Neither side changes; both StandAlone until `resolve`.
    case disconnect(reason: String)
    /// This node's changes since parting are discarded: it becomes secondary and is
    /// resynced from the peer.
    case discardLocal(reason: String)
    /// The peer's changes are discarded: this node stays primary and resyncs the peer.
    case discardPeer(reason: String)

    public var reason: String {
        switch self {
        case .disconnect(let reason), .discardLocal(let reason), .discardPeer(let reason): return reason
        }
    }

    /// The status word.
    public var word: String {
        switch self {
        case .disconnect: return "disconnect"
        case .discardLocal: return "discard-local"
        case .discardPeer: return "discard-peer"
        }
    }

    public static func decide(_ policy: AfterSplitBrain, localChangedBytes: UInt64, peerChangedBytes: UInt64,
                              localPromotion: UInt64, peerPromotion: UInt64) -> SplitBrainVerdict {
        switch policy {
        case .disconnect:
            return .disconnect(reason: "after_split_brain is disconnect: run resolve on both nodes")
        case .discardZeroChanges:
            switch (localChangedBytes == 0, peerChangedBytes == 0) {
            case (true, false): return .discardLocal(reason: "discard-zero-changes: this node changed nothing")
            case (false, true): return .discardPeer(reason: "discard-zero-changes: the peer changed nothing")
            case (true, true): return younger(localPromotion, peerPromotion, "discard-zero-changes: neither changed anything")
            case (false, false):
                return .disconnect(reason: "discard-zero-changes: both nodes changed data; run resolve")
            }
        case .discardYoungerPrimary:
            return younger(localPromotion, peerPromotion, "discard-younger-primary")
        case .discardLeastChanges:
            if localChangedBytes < peerChangedBytes {
                return .discardLocal(reason: "discard-least-changes: \(localChangedBytes) bytes here, \(peerChangedBytes) on the peer")
            }
            if peerChangedBytes < localChangedBytes {
                return .discardPeer(reason: "discard-least-changes: \(localChangedBytes) bytes here, \(peerChangedBytes) on the peer")
            }
            return younger(localPromotion, peerPromotion, "discard-least-changes: equal changes")
        }
    }

    /// The younger primary (higher promotion number) loses; equal numbers decide nothing.
    private static func younger(_ local: UInt64, _ peer: UInt64, _ why: String) -> SplitBrainVerdict {
        if local > peer { return .discardLocal(reason: "\(why): this node is the younger primary (promotion \(local) > \(peer))") }
        if peer > local { return .discardPeer(reason: "\(why): the peer is the younger primary (promotion \(peer) > \(local))") }
        return .disconnect(reason: "\(why), and both have promotion number \(local): run resolve")
    }
}
