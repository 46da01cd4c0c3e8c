// SecondaryReplicator in a consistency group (docs/groups.md): what the group's barrier and
// its staged catch-up commit ask of this member.
import Glibc
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

    /// Set to "1" for a test's control: the members' catch-ups commit one by one, as single
    /// resources do (what the group commit prevents; ConsistencyGroupCatchUpTests).
    static let groupCatchUpUncoordinatedVariable = "TANDEM_TEST_GROUP_CATCH_UP_UNCOORDINATED"
    static let groupCatchUpUncoordinated = getenv(groupCatchUpUncoordinatedVariable).map { String(cString: $0) == "1" } ?? false

    /// Status `group_catch_up`: where this member's staged catch-up stands in the group's commit.
    var groupCatchUpWord: String {
        switch node.groupCatchUp.step {
        case .inPlace: return "none"
        case .staging: return "staging"
        case .whole: return "whole"
        case .draining: return "draining"
        case .drained: return "drained"
        case .committing: return "committing"
        }
    }

    /// The disk state status and events report: the member's own, but `Inconsistent` while
    /// the group's volumes together are not one consistent image (ConsistencyGroups).
    var reportedDiskState: DiskState {
        let own = peekNode { $0.diskState }  // once or twice per message: not copied (NodeReads)
        guard spec.group != nil, own == .consistent || own == .upToDate || own == .outdated,
            context.groups.secondaryImageBroken(spec.group) != nil
        else { return own }
        return .inconsistent
    }

    /// Phase two of the group's commit: the journal durable through what the decision names
    /// (its drain is over: nothing of it is in flight). 0, or the errno.
    func syncJournalForGroup() -> Int32 {
        guard let journal else { return EBADF }
        return journal.sync()
    }

    /// The group's decision could not be made durable: no member commits, each fails.
    func groupCommitFailed(_ message: String, errno code: Int32) {
        lastError = "group commit: \(message)"
        feed(.stagingFailed(SecondaryDiskFault(operation: "group commit", errno: code, message: message)))
        perform()
    }
}
