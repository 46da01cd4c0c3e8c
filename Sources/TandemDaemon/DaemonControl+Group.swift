// DaemonControl+Group: `failover` and `disable` of a consistency group's member act on the
// whole group here (docs/groups.md): the named member first, then the others in name order,
// each once the one before has finished. The first refusal stops the walk and names the
// member it came from and those already done.
import TandemControl

extension DaemonControl {
    /// Members still to do and those done; the loop thread alone touches it.
    private final class GroupWalk: @unchecked Sendable {
        var remaining: ArraySlice<Resource>
        var done: [String] = []
        init(_ members: [Resource]) { remaining = members[...] }
    }

    static func onGroup(_ members: [Resource], _ finished: @escaping (ControlError?) -> Void,
                        _ step: @escaping (Resource, @escaping (ControlError?) -> Void) -> Void) {
        let walk = GroupWalk(members)
        func next() {
            guard let member = walk.remaining.popFirst() else { return finished(nil) }
            step(member) { error in
                guard let error else {
                    walk.done.append(member.spec.name)
                    return next()
                }
                guard members.count > 1, let group = member.spec.group else { return finished(error) }
                let already = walk.done.isEmpty ? "" : "; already done for \(walk.done.joined(separator: ", "))"
                finished(ControlError(error.code, "resource '\(member.spec.name)' of group '\(group)': \(error.message)\(already)"))
            }
        }
        next()
    }
}
