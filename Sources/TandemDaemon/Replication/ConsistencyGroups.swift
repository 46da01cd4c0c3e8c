// ConsistencyGroups: the members of each consistency group on this node, and the in-process
// coordination between them (docs/groups.md). Every resource runs on the one event loop, so
// this needs no lock: a primary member's epoch close is carried to the group's other
// primaries at once (they close the same epoch), and a secondary member's progress
// recomputes how far every secondary member of the group may issue writes. The decisions
// are TandemCore's (`GroupEpochClock`, `ConsistencyGroup.issueLimit`). Loop thread only.
import Glibc
import Logging
import TandemControl
import TandemCore

final class ConsistencyGroups {
    final class Group {
        let name: String
        var clock = GroupEpochClock()
        /// The floor stored for the next primary run (GroupEpochFile); nil until this process
        /// first starts a primary member of the group. `runBase`: where this run's numbers began.
        var reservedThroughEpoch: Epoch?
        var runBase: Epoch = 0
        var renewalFailed = false
        var primaries: [PrimaryReplicator] = []
        /// Every member that ran as primary here in this process and was not deleted: one
        /// that stopped (disabled, its peer's disk failed) leaves the primary unable to vouch
        /// for its peer's group image (GroupPeerView).
        var primaryNames: Set<String> = []
        var secondaries: [SecondaryReplicator] = []
        /// Secondary members that stopped (disabled, promoted): the epoch they had completed.
        /// The others stay held at it, or a promotion of one member would let the rest run
        /// ahead of the image it exposes. A member that starts again replaces its entry.
        var departed: [String: Epoch] = [:]
        /// The secondary members' limit is being recomputed (a member's progress, reported
        /// while the limit is handed out, is picked up by the same pass).
        var settling = false
        var settleAgain = false
        /// The staged catch-ups' two-phase commit and the group's image verdict
        /// (ConsistencyGroups+CatchUp).
        var stagedCommit = GroupStagedCommit()
        var imageCheck = GroupImageCheck()
        var imageBroken: String?

        init(name: String) { self.name = name }
    }

    private var groups: [String: Group] = [:]
    let stateDir: String
    let events: EventHub
    let logger: Logger

    init(stateDir: String, events: EventHub, logger: Logger) {
        self.stateDir = stateDir
        self.events = events
        self.logger = logger
    }

    func group(ifKnown name: String) -> Group? { groups[name] }

    private func group(_ name: String) -> Group {
        if let group = groups[name] { return group }
        let group = Group(name: name)
        groups[name] = group
        return group
    }

    // MARK: Primary

    /// A primary member starts: its stream continues the group's epoch numbers.
    func addPrimary(_ replicator: PrimaryReplicator) {
        guard let name = replicator.spec.group else { return }
        let group = group(name)
        group.primaries.removeAll { $0 === replicator }
        group.primaries.append(replicator)
        group.primaryNames.insert(replicator.resource)
        if group.clock.closedThroughEpoch > 0 {
            replicator.feed(.groupEpochClosed(through: group.clock.closedThroughEpoch))
        }
    }

    func removePrimary(_ replicator: PrimaryReplicator) {
        guard let name = replicator.spec.group, let group = groups[name] else { return }
        group.primaries.removeAll { $0 === replicator }
    }

    /// Before a primary member's first start in this process: the group's numbers begin
    /// above every number of the primary's run before (GroupEpochReservation), so the
    /// secondary node's barrier, which still holds a member at that run's epoch until its
    /// stream starts again, holds the members that are back (docs/groups.md, *Across a
    /// primary restart*). A floor that cannot be read or stored refuses the start.
    func reserveEpochs(for spec: ResourceSpec) throws(ControlError) {
        guard let name = spec.group, !Self.epochsFromOne else { return }
        let group = group(name)
        guard group.reservedThroughEpoch == nil else { return }
        let path = GroupEpochFile.path(stateDir: stateDir, group: name)
        let stored: Epoch
        switch GroupEpochFile.load(stateDir: stateDir, group: name) {
        case .absent: stored = 0
        case .floor(let floor): stored = floor
        case .damaged(let why):
            throw ControlError(.ioError, "group '\(name)': its epoch floor cannot be read (\(why)); the group's "
                + "secondaries would not stay one image across this restart. Remove \(path) only once every "
                + "member's secondary was restarted")
        }
        guard let start = GroupEpochReservation.start(stored: stored) else {
            throw ControlError(.ioError, "group '\(name)': its epoch numbers are spent (\(path) holds \(stored))")
        }
        if let error = GroupEpochFile.store(start.reserveThrough, stateDir: stateDir, group: name) {
            throw ControlError(.ioError, "group '\(name)': storing \(path): \(error.message)")
        }
        group.clock = GroupEpochClock(closedThrough: max(group.clock.closedThroughEpoch, start.clockStart))
        group.runBase = group.clock.closedThroughEpoch
        group.reservedThroughEpoch = start.reserveThrough
        logger.notice("group epochs reserved", metadata: [
            "group": "\(name)", "from": "\(group.runBase)", "through": "\(start.reserveThrough)",
        ])
    }

    /// Set to "1" for a test's control: every primary run numbers the group's epochs from 1
    /// again (no floor: what `reserveEpochs` prevents; ConsistencyGroupRestartTests).
    static let epochsFromOneVariable = "TANDEM_TEST_GROUP_EPOCHS_FROM_ONE"
    static let epochsFromOne = getenv(epochsFromOneVariable).map { String(cString: $0) == "1" } ?? false

    /// `member` closed its epoch `epoch`: every other member closes the group's epoch too.
    func primaryClosed(_ epoch: Epoch, by member: PrimaryReplicator) {
        guard let name = member.spec.group, let group = groups[name],
            let through = group.clock.memberClosed(epoch)
        else { return }
        renewReservationIfDue(group)
        for other in group.primaries where other !== member { other.feed(.groupEpochClosed(through: through)) }
    }

    /// The run nears the end of its block: the next floor is stored before its numbers are
    /// used (once per 2^40 epochs; a failure is logged once and retried at the next close).
    private func renewReservationIfDue(_ group: Group) {
        guard let reserved = group.reservedThroughEpoch,
            let next = GroupEpochReservation.renewal(closed: group.clock.closedThroughEpoch, reserved: reserved)
        else { return }
        if let error = GroupEpochFile.store(next, stateDir: stateDir, group: group.name) {
            if !group.renewalFailed { logger.error("group epoch floor not stored", metadata: ["error": "\(error.message)"]) }
            group.renewalFailed = true
            return
        }
        group.renewalFailed = false
        group.reservedThroughEpoch = next
    }

    /// `member` went Ahead: every other member goes Ahead too (docs/groups.md), or the
    /// barrier would hold their secondaries at the absent member's epoch while they wait
    /// for acknowledgements that cannot come.
    func primaryWentAhead(_ member: PrimaryReplicator, reason: String) {
        guard let name = member.spec.group, let group = groups[name] else { return }
        for other in group.primaries where other !== member {
            other.feed(.groupMemberAhead(reason: "group '\(name)': member '\(member.resource)' went Ahead (\(reason))"))
        }
    }

    /// Status `group_epochs` of a primary member: the group's newest closed epoch, and the
    /// newest through which every member's secondary confirmed the group durable.
    func primaryStatus(of name: String?) -> JSONValue? {
        guard let name, let group = groups[name] else { return nil }
        let durable = group.primaries.map(\.node.primary.peerDurableEpoch).min() ?? 0
        var fields: [String: JSONValue] = [
            "closed": .int(Int64(clamping: group.clock.closedThroughEpoch)),
            "durable": .int(Int64(clamping: durable)),
            "members": .int(Int64(group.primaries.count)),
            "run_base": .int(Int64(clamping: group.runBase)),
        ]
        let reason = peerGroupNotConsistent(group)
        fields["peer_consistent"] = .bool(reason == nil)
        if let reason { fields["peer_inconsistent_reason"] = .string(reason) }
        return .object(fields)
    }

    /// Why this primary cannot vouch that its peer's group volumes are one image (nil: it can).
    private func peerGroupNotConsistent(_ group: Group) -> String? {
        let running = Set(group.primaries.map(\.resource))
        if let stopped = group.primaryNames.subtracting(running).sorted().first {
            return "member '\(stopped)' does not replicate (disabled, or its peer's disk failed)"
        }
        return GroupPeerView.reasonNotConsistent(group.primaries.map { member in
            member.peekNode {
                GroupPeerView.Member(name: member.resource, peerDiskState: $0.peerDiskState,
                                     peerHoldsImageBeforeCatchUp: $0.peerHoldsImageBeforeCatchUp)
            }
        })
    }

    // MARK: Secondary

    func addSecondary(_ replicator: SecondaryReplicator) {
        guard let name = replicator.spec.group else { return }
        let group = group(name)
        group.secondaries.removeAll { $0 === replicator }
        group.secondaries.append(replicator)
        group.departed[replicator.resource] = nil
        settle(group)
    }

    func removeSecondary(_ replicator: SecondaryReplicator) {
        guard let name = replicator.spec.group, let group = groups[name] else { return }
        group.secondaries.removeAll { $0 === replicator }
        group.departed[replicator.resource] = replicator.groupCompletedThroughEpoch
        settle(group)
    }

    /// A member was deleted: the epoch it left behind no longer holds the others.
    func forget(_ spec: ResourceSpec) {
        guard let name = spec.group, let group = groups[name] else { return }
        group.departed[spec.name] = nil
        group.primaryNames.remove(spec.name)
        settle(group)
    }

    /// A secondary member applied, received or recorded something: recompute the limit.
    func secondaryProgressed(_ member: SecondaryReplicator) {
        guard let name = member.spec.group, let group = groups[name] else { return }
        settle(group)
    }

    /// Status `group_epochs` of a secondary member: the group epoch every member here has
    /// completed, the one every member has recorded durable, and the barrier's limit.
    func secondaryStatus(of name: String?) -> JSONValue? {
        guard let name, let group = groups[name] else { return nil }
        let completed = group.secondaries.map(\.groupCompletedThroughEpoch).min() ?? 0
        let durable = group.secondaries.map(\.node.machine.durableThroughEpoch).min() ?? 0
        // The barrier orders the stream only: a member that is not synced (a full copy or a
        // catch-up, which write out of epoch order) or not consistent (restarted, its re-send
        // not yet applied) breaks the group's image until it is done (docs/groups.md).
        let consistent = group.secondaries.allSatisfy { $0.node.isSynced && $0.node.machine.isConsistent }
        var fields: [String: JSONValue] = [
            "completed": .int(Int64(clamping: completed)),
            "durable": .int(Int64(clamping: durable)),
            "members": .int(Int64(group.secondaries.count)),
            "consistent": .bool(consistent && group.imageBroken == nil),
            "catch_up": .string(catchUpWord(group)),
        ]
        if let broken = group.imageBroken { fields["inconsistent_reason"] = .string(broken) }
        return .object(fields)
    }

    private func settle(_ group: Group) {
        guard !group.settling else { return group.settleAgain = true }
        group.settling = true
        repeat {
            group.settleAgain = false
            let limit = ConsistencyGroup.issueLimit(
                completedThrough: group.secondaries.map(\.groupCompletedThroughEpoch) + group.departed.values)
            for member in group.secondaries { member.setGroupIssueLimit(limit) }
            settleCatchUp(group)
        } while group.settleAgain
        group.settling = false
    }
}
