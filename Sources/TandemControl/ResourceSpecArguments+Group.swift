// ResourceSpecArguments+Group: the `group` key of `create` (issue 16 §3, docs/groups.md).
// What one resource's arguments can say is checked here (a valid name, a replicated role,
// a mode with a stream); what the group's members must share (peer, mode) is checked by the
// daemon against the group's other resources (ResourceRegistry+Group).
import TandemCore

extension ResourceSpec {
    static func parseGroup(_ reader: inout ArgumentReader, into spec: inout ResourceSpec) throws(ControlError) {
        guard let group = try reader.optionalString("group") else { return }
        guard isValidName(group) else {
            throw reader.invalid("group", "must be 1-64 characters of A-Z a-z 0-9 '-' '_' '.', not starting with '.'")
        }
        guard spec.role != .standalone else {
            throw reader.invalid("group", "is only allowed with role primary or secondary (a group is replicated together)")
        }
        guard spec.mode != .periodic else {
            throw ControlError(.unsupported, "argument 'group': mode periodic has no stream of epochs to share; "
                               + "a group's members replicate with mode sync, async or adaptive")
        }
        spec.group = group
    }

    /// Why `spec` cannot join a group whose existing member is `member` (nil: it can).
    public func groupConflict(with member: ResourceSpec) -> String? {
        guard let group, member.group == group else { return nil }
        // The same node (its address may differ: another route to it, a proxy).
        if member.peer?.name != peer?.name {
            return "resource '\(member.name)' of group '\(group)' replicates to peer "
                + "'\(member.peer?.name ?? "none")'; a group's members share their peer node"
        }
        if member.mode != mode {
            return "resource '\(member.name)' of group '\(group)' has mode \(member.mode.rawValue); "
                + "a group's members share their mode"
        }
        return nil
    }
}
