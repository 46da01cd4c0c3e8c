// UnionResume: what a split brain's survivor, restarted (or re-enabled) in the middle of its
// union resync, resumes from (docs/replication.md *Split brain*, *Across a crash of the
// survivor*). The survivor keeps what is left of the union in `<name>.union-resync`: a stop's
// seal, or a running session's checkpoint (`PrimaryNode.copyLeftWithHeld`: the copy's blocks
// not yet admitted and every write and chunk the peer has not confirmed durable). A checkpoint
// is taken from the session's start, before the loser's set came (the file then says
// `peerSetPending`: it holds this node's side only, and the loser still keeps its own set),
// and again once the union is known. Whatever the peer lacks beyond a crash's checkpoint was
// written after it, and the activity log's newest transaction names the extents of every such
// write: so after a crash the file ∪ those extents covers the divergence, and a file still
// waiting for the loser's set asks for it again at the next Hello. Anything that breaks that
// proof copies the whole volume, for a reason the event and status carry. Pure: the driver
// reads the file and the ring and carries out the plan; the simulator runs the same function.

/// What a restarted survivor knows at open.
public struct UnionResumeFacts: Sendable {
    /// The `.union-resync` file as proven; nil when it could not be (`fileProblem`).
    public var file: PartedBitmap?
    public var fileProblem: String
    public var isPrimary: Bool
    /// The record's `peer-lacks-writes` (the loser still lacks the union).
    public var peerLacksWrites: Bool
    /// A write since the stop (the record's `written-while-disabled`).
    public var writtenWhileDisabled: Bool
    /// This node's B now.
    public var partingGeneration: UInt64
    /// The record's `crashed-primary`: the file is a running session's checkpoint, not a seal.
    public var crashed: Bool
    /// After a crash: the regions of the activity log's newest transaction; nil when the ring
    /// proves none (or is not read: no crash).
    public var activityLogRegions: [ActivityLog.Region]?
    /// Why the ring proves nothing, when `activityLogRegions` is nil after a crash.
    public var activityLogProblem: String

    public init(file: PartedBitmap?, fileProblem: String = "", isPrimary: Bool, peerLacksWrites: Bool,
                writtenWhileDisabled: Bool, partingGeneration: UInt64, crashed: Bool,
                activityLogRegions: [ActivityLog.Region]?, activityLogProblem: String = "") {
        self.file = file
        self.fileProblem = fileProblem
        self.isPrimary = isPrimary
        self.peerLacksWrites = peerLacksWrites
        self.writtenWhileDisabled = writtenWhileDisabled
        self.partingGeneration = partingGeneration
        self.crashed = crashed
        self.activityLogRegions = activityLogRegions
        self.activityLogProblem = activityLogProblem
    }
}

/// What the restart does with the union's file.
public enum UnionResumePlan: Sendable {
    /// The next session (a full copy for the loser) copies only `left`. `asksPeerSet`: the
    /// loser's set never came, so the Hello asks for it again (flag `split-brain-resync`) and
    /// the copy covers `left` ∪ that set once it comes; `returnedPrimary`: the resync is a
    /// returned primary's (named so, its set compared by digest).
    case resume(left: DirtyBitmap, afterCrash: Bool, asksPeerSet: Bool, returnedPrimary: Bool)
    /// The file does not speak for the divergence any more: the whole volume is copied.
    case fullCopy(reason: String)
}

public enum UnionResume {
    public static func decide(_ facts: UnionResumeFacts) -> UnionResumePlan {
        guard let file = facts.file else {
            return .fullCopy(reason: "what is left of the split-brain resync cannot be proven (\(facts.fileProblem)): "
                + "the whole volume is copied")
        }
        if let reason = noLongerApplies(facts, file) {
            return .fullCopy(reason: "what is left of the split-brain resync no longer applies (\(reason)): "
                + "the whole volume is copied")
        }
        var left = file.bitmap
        if facts.crashed {
            guard let regions = facts.activityLogRegions else {
                return .fullCopy(reason: "the union resync's activity log proves nothing after a crash"
                    + (facts.activityLogProblem.isEmpty ? "" : " (\(facts.activityLogProblem))") + ": the whole volume is copied")
            }
            for region in regions { _ = left.setRange(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes) }
        }
        return .resume(left: left, afterCrash: facts.crashed, asksPeerSet: file.peerSetPending,
                       returnedPrimary: file.peerSetPending && file.returnedPrimary)
    }

    private static func noLongerApplies(_ facts: UnionResumeFacts, _ file: PartedBitmap) -> String? {
        if !facts.isPrimary { return "this node is no primary" }
        if !facts.peerLacksWrites { return "the peer no longer lacks writes" }
        if facts.writtenWhileDisabled { return "this node wrote while replication was off" }
        if facts.partingGeneration == 0 || file.partingGeneration != facts.partingGeneration {
            return "it was kept for another parting generation"
        }
        return nil
    }

    /// The event's and status's reason for a resumed union.
    public static func reason(afterCrash: Bool, askedPeerSet: Bool) -> String {
        switch (afterCrash, askedPeerSet) {
        case (true, true):
            return "the union resync resumes after a crash before the peer's set came: what this node's last checkpoint "
                + "held and the activity log's extents, united with the peer's set asked again"
        case (false, true):
            return "the union resync resumes after a stop before the peer's set came: what was left of this node's side, "
                + "united with the peer's set asked again"
        case (true, false):
            return "the union resync resumes after a crash: only what its last checkpoint left and the activity log's "
                + "extents are copied"
        case (false, false):
            return "the union resync resumes after a stop: only what was left of it is copied"
        }
    }
}
