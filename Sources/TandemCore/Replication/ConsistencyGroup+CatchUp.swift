// ConsistencyGroup+CatchUp: a consistency group's staged catch-ups commit together
// (docs/groups.md, *Catch-up: one commit for the group*). Every member of a group that went
// Ahead catches up in a session of its own and stages it in its journal (SecondaryNode+Staging),
// so its volume keeps the image from before. Applied one by one, the members' journals would
// expose a volume that holds the catch-up beside one that does not: a gap in the group's
// history. So a member whose catch-up is whole (its SyncComplete came) keeps staging the
// stream and waits; once every staging member is whole, the coordinator has them all drain
// (phase one: each journal whole and quiet) and then makes one durable decision naming every
// member's journal (phase two) before any of them commits. A crash before the decision is
// durable leaves every journal uncommitted (each volume keeps its image from before); after
// it, every named journal is rolled forward, at start or at a promotion (StagingSettlement).
//
// The decision is GroupCommitDecision; whether the group's volumes are one image meanwhile,
// GroupImageCheck. Pure: the daemon's ConsistencyGroups feeds it the members' facts.

/// One secondary member's staged catch-up as the group's coordinator sees it.
public struct GroupMemberCatchUp: Sendable, Equatable {
    public enum Step: Sendable, Equatable {
        /// No journal: writes go to the volume.
        case inPlace
        /// Staging a catch-up that is not whole yet.
        case staging
        /// Staging, the catch-up whole (its SyncComplete came): waits for the group.
        case whole
        /// Draining for the group's commit.
        case draining
        /// Drained: the journal's `journalBytes` wait for the group's decision.
        case drained
        /// Committing, applying or forgetting its journal (the group's decision taken, or a
        /// commit of its own: a catch-up that outgrew its journal).
        case committing
    }

    public var step: Step
    /// The journal's staging session (0: none).
    public var stagingSession: UInt64
    /// The journal's length (what a decision names once drained).
    public var journalBytes: UInt64
    /// The member's own copy is a consistent image (not Inconsistent, not Failed).
    public var consistent: Bool
    /// The volume holds the image from before the member's catch-up (a journal neither
    /// committed nor decided).
    public var holdsImageBeforeCatchUp: Bool
    /// Writes this member submitted to its volume so far (a count that only grows).
    public var volumeWrites: UInt64
    /// Not staging, connected to its primary and applying its stream in place, synced and
    /// consistent: its volume follows the group's barrier, so a commit of the others' journals
    /// meets it. A member away (Ahead on the primary, its link down) is not: its catch-up is
    /// still to come, and the others' commit would leave its image behind theirs.
    public var streaming: Bool
    /// Its disk failed: its image is lost whatever the others do, so it holds no commit.
    public var failed: Bool

    public init(step: Step, stagingSession: UInt64 = 0, journalBytes: UInt64 = 0, consistent: Bool = true,
                holdsImageBeforeCatchUp: Bool = false, volumeWrites: UInt64 = 0, streaming: Bool = false,
                failed: Bool = false) {
        self.streaming = streaming
        self.failed = failed
        self.step = step
        self.stagingSession = stagingSession
        self.journalBytes = journalBytes
        self.consistent = consistent
        self.holdsImageBeforeCatchUp = holdsImageBeforeCatchUp
        self.volumeWrites = volumeWrites
    }
}

/// The two-phase step of a group's staged catch-ups (one per group, on the secondary node).
public struct GroupStagedCommit: Sendable, Equatable {
    public enum Step: Sendable, Equatable {
        case wait
        /// Phase one: these members drain their journals (`.groupCommitBegin`).
        case drain([String])
        /// Phase two: store this decision durably (every journal synced first), then tell each
        /// member it names (`.groupCommitDecided`).
        case decide(GroupCommitDecision)
    }

    /// The members draining for the commit under way (empty: none under way).
    public private(set) var cohort: [String] = []

    public init() {}

    /// What to do now, from every member's facts (`members`: name and facts; a member that
    /// stopped in this process — disabled, promoted — is given as `inPlace`, neither
    /// streaming nor failed: it holds the commit, as it holds the barrier).
    public mutating func next(group: String, members: [(name: String, catchUp: GroupMemberCatchUp)]) -> Step {
        let committable: [GroupMemberCatchUp.Step] = [.whole, .draining, .drained]
        if !cohort.isEmpty {
            // A member that left the cohort other than by a disk failure (it stopped: a
            // promotion drops its undecided journal) abandons it: the others must not commit
            // beside its image from before. They stay drained until it is back, or stop too.
            let left = cohort.filter { name in
                guard let member = members.first(where: { $0.name == name }) else { return true }
                return !committable.contains(member.catchUp.step) && !member.catchUp.failed
            }
            if !left.isEmpty {
                cohort = []
                return .wait
            }
            let remaining = members.filter { cohort.contains($0.name) && committable.contains($0.catchUp.step) }
            cohort = remaining.map(\.name)
            guard !remaining.isEmpty, remaining.allSatisfy({ $0.catchUp.step == .drained }) else { return .wait }
            cohort = []
            return .decide(GroupCommitDecision(group: group, members: remaining.map {
                GroupCommitDecision.Member(resource: $0.name, stagingSession: $0.catchUp.stagingSession,
                                           journalBytes: $0.catchUp.journalBytes)
            }))
        }
        // Phase one begins once every member holds a whole catch-up (or one drained for a
        // commit that was abandoned), streams in place, or has failed: a member still catching
        // up, or away (its catch-up to come, or stopped), would otherwise be left with its
        // image from before while the others' volumes move on.
        let staging = members.filter { [.staging, .whole, .draining, .drained].contains($0.catchUp.step) }
        guard !staging.isEmpty, staging.allSatisfy({ committable.contains($0.catchUp.step) }),
            members.allSatisfy({ committable.contains($0.catchUp.step) || $0.catchUp.streaming || $0.catchUp.failed })
        else { return .wait }
        cohort = staging.map(\.name)
        return .drain(cohort.filter { name in staging.contains { $0.name == name && $0.catchUp.step == .whole } })
    }
}
