// ConsistencyGroups' part in the group's staged catch-ups (docs/groups.md, *Catch-up: one
// commit for the group*): after every change of a secondary member, the group's
// GroupStagedCommit says whether its members drain (phase one) or the decision is taken
// (phase two: every named journal synced, the decision stored in GroupCommitFile, then each
// member commits), and GroupImageCheck whether the group's volumes are one consistent image
// (status `group_epochs`, each member's reported `disk_state`, events `group-inconsistent`
// and `group-consistent`). The decisions are TandemCore's. Loop thread only.
import TandemControl
import TandemCore

extension ConsistencyGroups {
    /// Why the group's secondary volumes are not one consistent image now (nil: they are).
    func secondaryImageBroken(_ name: String?) -> String? {
        guard let name else { return nil }
        return group(ifKnown: name)?.imageBroken
    }

    func catchUpWord(_ group: Group) -> String {
        let steps = group.secondaries.map(\.node.groupCatchUp.step)
        if steps.contains(where: { $0 == .draining || $0 == .drained || $0 == .committing }) { return "committing" }
        if steps.contains(.whole) { return steps.contains(.staging) ? "staging" : "whole" }
        return steps.contains(.staging) ? "staging" : "none"
    }

    /// One pass after a member's change (inside `settle`: a member fed here reports back
    /// through `secondaryProgressed`, which asks for another pass).
    func settleCatchUp(_ group: Group) {
        let members = group.secondaries.map { (name: $0.resource, catchUp: $0.node.groupCatchUp) }
        noteImage(group, group.imageCheck.update(members: members))
        // A member that stopped here holds the commit as it holds the barrier (a promotion
        // drops its undecided journal: the others must not commit beside its old image).
        let departed = group.departed.keys.sorted().map { (name: $0, catchUp: GroupMemberCatchUp(step: .inPlace)) }
        switch group.stagedCommit.next(group: group.name, members: members + departed) {
        case .wait:
            return
        case .drain(let names):
            for member in group.secondaries where names.contains(member.resource) {
                member.feed(.groupCommitBegin)
                member.perform()
            }
        case .decide(let decision):
            decide(decision, in: group)
        }
    }

    /// Phase two: every journal durable through what the decision names, the decision
    /// durable, and only then each member commits. A failure before the decision is stored
    /// commits none (each member fails: its journal or the group's file cannot be trusted).
    private func decide(_ decision: GroupCommitDecision, in group: Group) {
        let named = group.secondaries.filter { member in decision.members.contains { $0.resource == member.resource } }
        for member in named {
            let code = member.syncJournalForGroup()
            guard code == 0 else {
                return failCommit(named, "the staging journal of '\(member.resource)' could not be flushed (errno \(code))", errno: code)
            }
        }
        if let error = GroupCommitFile.store(decision, stateDir: stateDir) {
            return failCommit(named, "storing \(GroupCommitFile.path(stateDir: stateDir, group: group.name)): \(error.message)",
                              errno: error.errno)
        }
        logger.notice("group catch-up committed", metadata: [
            "group": "\(group.name)", "members": "\(decision.members.map(\.resource).joined(separator: ","))",
        ])
        for member in named {
            let bytes = decision.committedBytes(resource: member.resource, stagingSession: member.node.record.staging?.session ?? 0)
            events.publish(resource: member.resource, "group-catch-up-committed", [
                "group": .string(group.name), "journal_bytes": .int(Int64(clamping: bytes ?? 0)),
                "members": .int(Int64(decision.members.count)),
            ])
            member.feed(.groupCommitDecided)
            member.perform()
        }
    }

    private func failCommit(_ members: [SecondaryReplicator], _ message: String, errno code: Int32) {
        logger.error("group catch-up commit failed", metadata: ["error": "\(message)"])
        for member in members { member.groupCommitFailed(message, errno: code) }
    }

    /// The group's image verdict changed: every member says so (event, reported disk state).
    private func noteImage(_ group: Group, _ verdict: String?) {
        guard verdict != group.imageBroken else { return }
        group.imageBroken = verdict
        for member in group.secondaries {
            if let verdict {
                events.publish(resource: member.resource, "group-inconsistent", [
                    "group": .string(group.name), "reason": .string(verdict),
                ])
            } else {
                events.publish(resource: member.resource, "group-consistent", ["group": .string(group.name)])
            }
            member.publishDiskState()
        }
    }
}
