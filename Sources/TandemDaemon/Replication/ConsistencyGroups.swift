// ConsistencyGroups: the members of each consistency group on this node, and the in-process
// coordination between them (docs/groups.md). Every resource runs on the one event loop, so
// this needs no lock: a primary member's epoch close is carried to the group's other
// primaries at once (they close the same epoch), and a secondary member's progress
// recomputes how far every secondary member of the group may issue writes. The decisions
// are TandemCore's (`GroupEpochClock`, `ConsistencyGroup.issueLimit`). Loop thread only.
import Logging
import TandemControl
import TandemCore

final class ConsistencyGroups {
    final class Group {
        let name: String
        var clock = GroupEpochClock()
        var primaries: [PrimaryReplicator] = []
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
        if group.clock.closedThroughEpoch > 0 {
            replicator.feed(.groupEpochClosed(through: group.clock.closedThroughEpoch))
        }
    }

    func removePrimary(_ replicator: PrimaryReplicator) {
        guard let name = replicator.spec.group, let group = groups[name] else { return }
        group.primaries.removeAll { $0 === replicator }
    }

    /// `member` closed its epoch `epoch`: every other member closes the group's epoch too.
    func primaryClosed(_ epoch: Epoch, by member: PrimaryReplicator) {
        guard let name = member.spec.group, let group = groups[name],
            let through = group.clock.memberClosed(epoch)
        else { return }
        for other in group.primaries where other !== member { other.feed(.groupEpochClosed(through: through)) }
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
        return .object([
            "closed": .int(Int64(clamping: group.clock.closedThroughEpoch)),
            "durable": .int(Int64(clamping: durable)),
            "members": .int(Int64(group.primaries.count)),
        ])
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
