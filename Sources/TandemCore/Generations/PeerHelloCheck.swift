// PeerHelloCheck: what a primary makes of a peer's Hello, whichever side dialled — the checks
// of resource, size and role that PrimaryNode used to make alone, and, when the peer is a
// primary too, the comparison of both nodes' generations (HandshakeDecision) that finds a
// split brain or a primary superseded by a later promotion (docs/design-v3.md section 2,
// docs/replication.md *Split brain*). The secondary's checks of a primary's Hello are
// SecondaryNode's; the two together are every Hello check. Pure: the same facts give the
// same answer on both nodes, so two primaries that meet reach mirrored verdicts.

/// This node's side of the comparison.
public struct OwnHelloFacts: Equatable, Sendable {
    public var resourceName: String
    public var volumeSizeBytes: UInt64
    public var role: ResourceRole
    public var generations: Generations
    /// Bytes written here since parting from the peer (the split-brain report).
    public var changedBytes: UInt64
    public var afterSplitBrain: AfterSplitBrain
    /// The consistency group this resource is a member of (nil: none).
    public var group: String?

    public init(resourceName: String, volumeSizeBytes: UInt64, role: ResourceRole, generations: Generations,
                changedBytes: UInt64 = 0, afterSplitBrain: AfterSplitBrain = .disconnect, group: String? = nil) {
        self.group = group
        self.resourceName = resourceName
        self.volumeSizeBytes = volumeSizeBytes
        self.role = role
        self.generations = generations
        self.changedBytes = changedBytes
        self.afterSplitBrain = afterSplitBrain
    }
}

/// Two primaries that both wrote since they parted, as each reports it.
public struct SplitBrainReport: Equatable, Sendable {
    /// The HandshakeDecision row that found it (8, or 9 with 10).
    public var row: Int
    public var localChangedBytes: UInt64
    public var peerChangedBytes: UInt64
    public var localPromotion: UInt64
    public var peerPromotion: UInt64
    /// What `after_split_brain` decided (the same on both nodes, mirrored).
    public var verdict: SplitBrainVerdict

    public init(row: Int, localChangedBytes: UInt64, peerChangedBytes: UInt64, localPromotion: UInt64,
                peerPromotion: UInt64, verdict: SplitBrainVerdict) {
        self.row = row
        self.localChangedBytes = localChangedBytes
        self.peerChangedBytes = peerChangedBytes
        self.localPromotion = localPromotion
        self.peerPromotion = peerPromotion
        self.verdict = verdict
    }

    /// A split brain found before this node restarted (flag `split-brain`): only this node's
    /// facts survive the restart, so the peer's are unknown (row 0) and nothing is decided
    /// but to wait for `resolve` (a policy's verdict, if any, was carried out before the
    /// flag could be cleared, or was lost with the crash: the operator decides).
    public static func restored(localChangedBytes: UInt64, localPromotion: UInt64) -> SplitBrainReport {
        SplitBrainReport(row: 0, localChangedBytes: localChangedBytes, peerChangedBytes: 0, localPromotion: localPromotion,
                         peerPromotion: 0, verdict: .disconnect(reason:
                             "the split brain was found before this node restarted: run resolve on both nodes"))
    }

    /// Found before a restart: the peer's changed bytes and promotion number are unknown.
    public var isRestored: Bool { row == 0 }

    /// The `split-brain` event's reason.
    public var reason: String {
        if isRestored {
            return "a split brain found before this node restarted is not resolved (flag split-brain): "
                + "\(localChangedBytes) bytes changed here since the nodes parted"
        }
        return "both nodes are primary and wrote since they parted (generations, table row \(row)): "
            + "\(localChangedBytes) bytes changed here, \(peerChangedBytes) on the peer"
    }
}

/// Two primaries, one of which returned after the other was promoted from its generation
/// (HandshakeDecision `.returnedPrimaryResync`), as each reports it.
public struct ReturnedPrimaryReport: Equatable, Sendable {
    /// The HandshakeDecision row (7 seen by the returning node, 6 by the promoted one).
    public var row: Int
    /// The generation both parted from: the returning node's C, the promoted node's B.
    public var partingGeneration: UInt64
    public var localPromotion: UInt64
    public var peerPromotion: UInt64

    public init(row: Int, partingGeneration: UInt64, localPromotion: UInt64, peerPromotion: UInt64) {
        self.row = row
        self.partingGeneration = partingGeneration
        self.localPromotion = localPromotion
        self.peerPromotion = peerPromotion
    }
}

public enum PeerHelloOutcome: Equatable, Sendable {
    case accept
    case refuse(WireRefusal, String)
    /// Both primaries wrote since they parted: neither's data changes unless the verdict
    /// names a loser.
    case splitBrain(SplitBrainReport)
    /// The peer is a primary promoted after this one, and this one wrote nothing the peer
    /// lacks: this node stops accepting writes (`demoted-by-promotion`), its data left as is.
    case demotedByPromotion(peerPromotion: UInt64, reason: String)
    /// This node is an old primary that returned after the peer was promoted from its
    /// generation, and wrote nothing since (B = 0): it stops accepting writes at once, becomes
    /// the peer's secondary (C := 0, B := the parting generation) and keeps what it had not
    /// confirmed when it stopped for the peer's resync. Both Hellos name protocol 8 or more.
    case yieldToPromoted(ReturnedPrimaryReport)
    /// The mirror: the peer is such an old primary; this promoted node resyncs it (its own
    /// bitmap since the promotion ∪ the peer's set) once it is secondary.
    case resyncReturnedPrimary(ReturnedPrimaryReport)
}

public enum PeerHelloCheck {
    /// A size-mismatch refusal, with the way out when the secondary is the larger one: a
    /// resize grows the secondary first, so a link lost before its answer leaves it larger.
    public static func sizeMismatchReason(own: UInt64, peer: UInt64, ownIsPrimary: Bool) -> String {
        let base = "local volume has \(own) bytes, peer \(peer)"
        let (primaryBytes, secondaryBytes) = ownIsPrimary ? (own, peer) : (peer, own)
        guard secondaryBytes > primaryBytes else { return base }
        return base + ": the secondary is larger, as a resize to \(secondaryBytes) bytes that the primary did not "
            + "finish leaves it; run `resize --size \(secondaryBytes)` on the primary"
    }

    /// A primary judges a peer's Hello (the peer dialled it, or answered its dial).
    public static func judge(own: OwnHelloFacts, hello: WireHello) -> PeerHelloOutcome {
        guard hello.resourceName == own.resourceName else {
            return .refuse(.unknownResource, "expected resource '\(own.resourceName)', peer names '\(hello.resourceName)'")
        }
        guard hello.volumeSizeBytes == own.volumeSizeBytes else {
            return .refuse(.sizeMismatch, sizeMismatchReason(own: own.volumeSizeBytes, peer: hello.volumeSizeBytes,
                                                             ownIsPrimary: true))
        }
        if let group = own.group, hello.protocolVersion < WireFormat.groupVersion {
            return .refuse(.unsupportedVersion, Self.olderGroupPeerReason(group: group, peerVersion: hello.protocolVersion))
        }
        if hello.role == .secondary { return .accept }
        guard hello.role == .primary else { return .refuse(.roleConflict, "this node is primary and so is the peer") }
        guard let peer = hello.node else {
            // A primary whose Hello carries no generations cannot be told from a split brain:
            // refused with the way out rather than a bare role conflict.
            return .refuse(.unsupportedVersion, Self.olderPrimaryReason(hello.protocolVersion))
        }
        let ownSide = HandshakeSide(generations: own.generations, isPrimary: true)
        let peerGenerations = Generations(current: peer.current, bitmap: peer.bitmap, history: [],
                                          promotion: hello.promotionNumber)
        let peerSide = HandshakeSide(generations: peerGenerations, isPrimary: true)
        let (row, decision) = HandshakeDecision.decideWithRow(own: ownSide, peer: peerSide)
        let ownPromotion = own.generations.promotion
        let peerPromotion = hello.promotionNumber
        if case .returnedPrimaryResync(let direction) = decision, hello.protocolVersion >= WireFormat.returnedPrimaryVersion {
            // Row 4's second half: not a split brain (the returning node wrote nothing since it
            // parted), and not a demotion that waits for an operator: the pair resyncs.
            let parting = direction == .peerToOwn ? own.generations.current : peer.current
            let report = ReturnedPrimaryReport(row: row, partingGeneration: parting, localPromotion: ownPromotion,
                                               peerPromotion: peerPromotion)
            return direction == .peerToOwn ? .yieldToPromoted(report) : .resyncReturnedPrimary(report)
        }
        // One side descends from the other and wrote nothing since (B = 0, and the other's
        // tracking began at its C): no split brain, the promotion numbers say who goes on.
        // Only B = C relations count, which both nodes see alike (neither knows the other's
        // history), so the two verdicts always mirror each other.
        let ownBehind = own.generations.bitmap == 0 && peer.bitmap != 0 && peer.bitmap == own.generations.current
        let peerBehind = peer.bitmap == 0 && own.generations.bitmap != 0 && own.generations.bitmap == peer.current
        // Both moved since a common generation (table row 8, or 9 with 10), or one wrote
        // without its peer and no descent explains the other (rows 9-11: a promoted copy that
        // never held the old primary's generation): a split brain.
        let moved = own.generations.bitmap != 0 || peer.bitmap != 0
        if decision == .splitBrain || (!ownBehind && !peerBehind && moved) {
            let policy = own.afterSplitBrain == peer.afterSplitBrain ? own.afterSplitBrain : .disconnect
            let verdict = SplitBrainVerdict.decide(
                policy, localChangedBytes: own.changedBytes, peerChangedBytes: peer.changedBytes,
                localPromotion: ownPromotion, peerPromotion: hello.promotionNumber)
            return .splitBrain(SplitBrainReport(
                row: row, localChangedBytes: own.changedBytes, peerChangedBytes: peer.changedBytes,
                localPromotion: ownPromotion, peerPromotion: hello.promotionNumber, verdict: verdict))
        }
        if peerPromotion > ownPromotion && !peerBehind {
            return .demotedByPromotion(peerPromotion: hello.promotionNumber, reason:
                "the peer is primary with promotion number \(hello.promotionNumber), this node has \(ownPromotion): "
                    + "it was promoted after this node lost it; this node stops accepting writes (data left as it is)")
        }
        if peerPromotion < ownPromotion && !ownBehind {
            return .refuse(.stalePromotion,
                           "the peer's promotion number \(hello.promotionNumber) is below this node's \(ownPromotion): "
                               + "a later promotion superseded it")
        }
        return .refuse(.roleConflict, "this node is primary and so is the peer")
    }

    /// Why a consistency group's member refuses a peer too old for GroupBarrier.
    public static func olderGroupPeerReason(group: String, peerVersion: UInt16) -> String {
        "this resource is in consistency group '\(group)', whose barriers need protocol \(WireFormat.groupVersion) "
            + "on both nodes; the peer speaks \(peerVersion): upgrade the peer (docs/operations.md, rolling upgrade)"
    }

    /// Two primaries, one of protocol 3 or older: no split brain can be detected between them.
    public static func olderPrimaryReason(_ version: UInt16) -> String {
        "both nodes are primary and the peer's Hello speaks protocol \(version), which carries no generations: "
            + "a split brain cannot be detected, so the link is refused. Upgrade the peer before promoting "
            + "(docs/operations.md, rolling upgrade: the secondary first, a planned failover, then the old primary)"
    }

    /// A secondary accepts a primary's Hello: the primary went on without this copy (its
    /// tracking began at this copy's generation), so the copy is Outdated until caught up.
    public static func primaryWentOnWithout(own: Generations, hello: WireHello) -> Bool {
        guard hello.role == .primary, let primary = hello.node else { return false }
        return primary.bitmap != 0 && primary.bitmap == own.current
    }

    /// A secondary asked to fail over while connected: whether its copy may be older than
    /// the connected primary's, from the generations (docs/replication.md, *Roles and
    /// transitions*): the primary tracked writes since this copy's generation (its B is this
    /// copy's C: it went on without it), or this copy does not hold the primary's generation
    /// yet (a copy or catch-up from it has not finished; a copy adopts the primary's C once
    /// UpToDate). nil: the copy holds the primary's generation. The reason says which.
    public static func copyBehindPrimary(own: Generations, hello: WireHello) -> String? {
        guard hello.role == .primary, let primary = hello.node, primary.current != 0 else { return nil }
        if primary.bitmap != 0 && primary.bitmap == own.current {
            return "the primary '\(hello.nodeName)' went on without this node: it tracked writes since this copy's "
                + "generation (its bitmap generation is this copy's current one), and they have not all arrived"
        }
        guard primary.current != own.current else { return nil }
        return "this copy does not hold the primary's generation yet (a copy from '\(hello.nodeName)' has not "
            + "finished): it may lack writes the primary holds"
    }

    /// What a primary makes of the peer's refusal of its own Hello: `stale-promotion` means
    /// the peer is a primary promoted after this one.
    public static func refusedByPeer(_ refusal: WireRefusal, reason: String) -> PeerHelloOutcome? {
        guard refusal == .stalePromotion else { return nil }
        return .demotedByPromotion(peerPromotion: 0, reason: "the peer refused this node: \(reason)")
    }
}
