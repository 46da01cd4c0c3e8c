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
// `GroupImageCheck` says whether the group's volumes together are one crash-consistent
// image, for status and events: not when a member's own copy is Inconsistent (a catch-up
// that outgrew its journal and went on in place, a full copy, a restart before its re-send),
// nor when a member wrote to its volume while another's volume held its image from before
// its catch-up. Pure: the daemon's ConsistencyGroups feeds it the members' facts.

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

/// The group's durable decision: these members' journals commit (every one of them, or, were
/// the decision not stored, none). Stored by the daemon in a file of the group's own.
public struct GroupCommitDecision: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public var resource: String
        public var stagingSession: UInt64
        public var journalBytes: UInt64

        public init(resource: String, stagingSession: UInt64, journalBytes: UInt64) {
            self.resource = resource
            self.stagingSession = stagingSession
            self.journalBytes = journalBytes
        }
    }

    public var group: String
    public var members: [Member]

    public init(group: String, members: [Member]) {
        self.group = group
        self.members = members
    }

    /// The journal bytes this decision commits for `resource`'s journal of `stagingSession`
    /// (nil: the decision is about another journal, or none of this member's).
    public func committedBytes(resource: String, stagingSession: UInt64) -> UInt64? {
        members.first { $0.resource == resource && $0.stagingSession == stagingSession }?.journalBytes
    }

    static let magic = "tandem-group-commit 1"
    /// Members per decision: a group is a handful of volumes; this bounds a decoded file.
    public static let membersMax = 256

    /// Text, one member a line, then the CRC32C of everything before the last line.
    public func encode() -> [UInt8] {
        var text = "\(Self.magic)\ngroup \(group)\n"
        for member in members { text += "member \(member.resource) \(member.stagingSession) \(member.journalBytes)\n" }
        let body = Array(text.utf8)
        return body + Array("crc \(CRC32C.checksum(body))\n".utf8)
    }

    /// Nil for anything but a whole decision this code wrote (a torn or foreign file is no
    /// decision: the rename that stores it is atomic, so a crash leaves the old one or none).
    public static func decode(_ bytes: [UInt8]) -> GroupCommitDecision? {
        guard bytes.count <= 64 << 10, let text = String(validating: bytes, as: UTF8.self) else { return nil }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.last == "" else { return nil }
        lines.removeLast()
        guard lines.count >= 3, lines.count - 3 <= membersMax, lines[0] == magic, lines[1].hasPrefix("group "),
            let crcLine = lines.last, crcLine.hasPrefix("crc "), let crc = UInt32(crcLine.dropFirst(4))
        else { return nil }
        let bodyBytes = Array((lines.dropLast().joined(separator: "\n") + "\n").utf8)
        guard CRC32C.checksum(bodyBytes) == crc else { return nil }
        var decision = GroupCommitDecision(group: String(lines[1].dropFirst(6)), members: [])
        for line in lines[2..<(lines.count - 1)] {
            let fields = line.split(separator: " ")
            guard fields.count == 4, fields[0] == "member", let session = UInt64(fields[2]),
                let journalBytes = UInt64(fields[3])
            else { return nil }
            decision.members.append(Member(resource: String(fields[1]), stagingSession: session, journalBytes: journalBytes))
        }
        return decision
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

/// Whether the group's volumes together are one crash-consistent image.
public struct GroupImageCheck: Sendable, Equatable {
    /// Each member's volume writes when a member's volume last began to hold an image from
    /// before its catch-up (nil: none does).
    private var baseline: [String: UInt64]?
    /// Why the image broke while some volume holds its image from before a catch-up (sticky
    /// until none does: the images then belong to different points of the group's history).
    private var broken: String?

    public init() {}

    /// The verdict after the members' facts changed: nil when consistent, otherwise why not.
    public mutating func update(members: [(name: String, catchUp: GroupMemberCatchUp)]) -> String? {
        let before = members.filter(\.catchUp.holdsImageBeforeCatchUp)
        if before.isEmpty {
            baseline = nil
            broken = nil
        } else {
            var known = baseline ?? [:]
            for member in members where known[member.name] == nil { known[member.name] = member.catchUp.volumeWrites }
            baseline = known
            if broken == nil, let writer = members.first(where: {
                !$0.catchUp.holdsImageBeforeCatchUp && $0.catchUp.volumeWrites != known[$0.name]
            }) {
                broken = "member '\(writer.name)' wrote to its volume while member '\(before[0].name)' holds its image from before its catch-up"
            }
        }
        if let member = members.first(where: { !$0.catchUp.consistent }) {
            return "member '\(member.name)' is Inconsistent"
        }
        return broken
    }
}
