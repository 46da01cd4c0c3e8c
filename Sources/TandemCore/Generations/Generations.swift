// Generations: a node's generation identifiers (docs/design-v3.md section 2): `current` (C),
// `bitmap` (B: the generation at which tracking against the peer began), a history of four
// older generations, and the highest promotion number seen (P). The transitions below are
// the only ways they change. New identifiers come in as arguments: TandemCore draws no
// randomness; the daemon draws a random non-zero 64-bit value and persists the result
// before it acts on it (docs/metadata.md, superblock offsets 136...191).

public struct Generations: Equatable, Sendable {
    public static let historyCount = 4

    public private(set) var current: UInt64
    public private(set) var bitmap: UInt64
    /// Older generations, newest first; 0 = none. Always `historyCount` entries.
    public private(set) var history: [UInt64]
    public private(set) var promotion: UInt64

    /// A node that has never been synced: every field 0.
    public static let none = Generations(current: 0, bitmap: 0, history: [], promotion: 0)

    public init(current: UInt64, bitmap: UInt64, history: [UInt64], promotion: UInt64) {
        precondition(history.count <= Self.historyCount, "at most \(Self.historyCount) history entries")
        self.current = current
        self.bitmap = bitmap
        self.history = history + Array(repeating: 0, count: Self.historyCount - history.count)
        self.promotion = promotion
    }

    public func historyContains(_ generation: UInt64) -> Bool {
        generation != 0 && history.contains(generation)
    }

    /// A primary loses its peer, or goes `Ahead`: at its first write the peer will not get,
    /// tracking starts against the generation both shared (B := C), and a new C begins.
    /// Already tracking (B ≠ 0): nothing changes, the bitmap keeps covering since B.
    public mutating func startTracking(newGeneration: UInt64) {
        guard bitmap == 0 else { return }
        precondition(current != 0, "tracking against no generation: a never-synced copy has no peer state")
        bitmap = current
        replaceCurrent(with: newGeneration)
    }

    /// Promotion (planned or forced): as `startTracking`, but C is new even when B ≠ 0 (this
    /// node now writes a history of its own), and P := max(P, peer's P) + 1.
    public mutating func promote(newGeneration: UInt64, peerPromotion: UInt64) {
        if bitmap == 0 && current != 0 { bitmap = current }
        replaceCurrent(with: newGeneration)
        promotion = max(promotion, peerPromotion) + 1
    }

    /// Resync done, on the target: it holds everything the source has, so it takes the
    /// source's C and stops tracking.
    public mutating func resyncDoneAsTarget(sourceCurrent: UInt64) {
        precondition(sourceCurrent != 0, "a resync source without a generation")
        if current != sourceCurrent { pushHistory(current) }
        current = sourceCurrent
        bitmap = 0
    }

    /// Resync done, on the source: the peer now holds its C; tracking stops (the source
    /// clears the bits it shipped, DirtyBitmap.completeCycle).
    public mutating func resyncDoneAsSource() {
        pushHistory(bitmap)
        bitmap = 0
    }

    /// A full copy starts with this node as target: it has no consistent generation until
    /// the copy ends (then `resyncDoneAsTarget`). An interrupted copy therefore starts over
    /// as a full copy (table row 2), never as a bitmap resync.
    public mutating func fullCopyStartedAsTarget() {
        pushHistory(current)
        current = 0
        bitmap = 0
    }

    /// A split brain's loser whose changes since parting are known (its bitmap is kept for
    /// the survivor): it has no consistent generation until the resync ends (C := 0), and B
    /// keeps the generation both parted from, which the survivor's B must equal for the union
    /// of both bitmaps to cover their divergence (SplitBrainResync).
    public mutating func discardedForUnion() {
        pushHistory(current)
        current = 0
    }

    /// A primary that returns after its peer was promoted from its generation (it wrote
    /// nothing since: B = 0, and the promoted peer's B is this C) yields to it
    /// (HandshakeDecision `.returnedPrimaryResync`): like a split brain's loser it has no
    /// consistent generation until the promoted node's resync ends (C := 0), and B names the
    /// generation both parted from (this C), which the promoted node's B equals, so that the
    /// union of both bitmaps covers their divergence.
    public mutating func yieldedToPromoted() {
        precondition(bitmap == 0 && current != 0, "only a primary that wrote nothing since parting yields")
        bitmap = current
        pushHistory(current)
        current = 0
    }

    /// Both nodes begin in sync without a copy (`initial_sync: none`, table row 1): both
    /// take the primary's new C.
    public mutating func beginInSync(generation: UInt64) {
        precondition(generation != 0, "generation 0 means none")
        current = generation
        bitmap = 0
    }

    /// The peer's P arrived in a frame header: remember the highest seen.
    public mutating func sawPromotion(_ peerPromotion: UInt64) {
        promotion = max(promotion, peerPromotion)
    }

    private mutating func replaceCurrent(with generation: UInt64) {
        precondition(generation != 0, "generation 0 means none")
        precondition(generation != current && generation != bitmap && !historyContains(generation),
                     "a new generation must be new")
        pushHistory(current)
        current = generation
    }

    /// Shifts `generation` in as the newest history entry (0 and repeats are skipped).
    private mutating func pushHistory(_ generation: UInt64) {
        guard generation != 0 && history[0] != generation else { return }
        for index in stride(from: Self.historyCount - 1, to: 0, by: -1) { history[index] = history[index - 1] }
        history[0] = generation
    }
}
