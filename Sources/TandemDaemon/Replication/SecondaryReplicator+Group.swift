// SecondaryReplicator in a consistency group (docs/groups.md): what the group's barrier asks
// of this member (a pure move out of SecondaryReplicator.swift).
import TandemCore

extension SecondaryReplicator {
    /// Every group epoch ≤ this has completed on this member's volume.
    var groupCompletedThroughEpoch: Epoch { node.machine.completedThroughEpoch }

    /// The group's barrier: writes of epochs ≤ `limit` may be issued.
    func setGroupIssueLimit(_ limit: Epoch) {
        guard node.machine.groupIssueLimit != limit else { return }
        feed(.groupIssueLimit(limit))
        perform()
    }
}
