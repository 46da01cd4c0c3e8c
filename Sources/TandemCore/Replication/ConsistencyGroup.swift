// ConsistencyGroup: the decisions of a consistency group (docs/groups.md), pure. On the
// primary node the members share one epoch sequence (`GroupEpochClock`): any member's close
// closes the group's epoch on every member. On the secondary node a member issues the
// writes of group epoch E + 1 only once every member has completed epoch E
// (`issueLimit`), so the members' volumes together are always a prefix of the group's
// history plus a subset of one epoch.

public enum ConsistencyGroup {
    /// The group's id on the wire (GroupBarrier): FNV-1a 64 of its name, never 0 (0 is
    /// "no group"). Both nodes compute it from the `group` setting, so a barrier for another
    /// group (a configuration that differs between the nodes) is refused.
    public static func id(ofName name: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash == 0 ? 1 : hash
    }

    /// The newest epoch any member may issue writes of, from every member's "completed
    /// through" epoch: one past the lowest. No member: no limit.
    public static func issueLimit<Members: Sequence>(completedThrough members: Members) -> Epoch
    where Members.Element == Epoch {
        var lowest: Epoch?
        for completed in members { lowest = min(lowest ?? completed, completed) }
        guard let lowest else { return .max }
        return lowest == .max ? .max : lowest + 1
    }
}

/// The primary node's epoch sequence of one group: which epochs have closed.
public struct GroupEpochClock: Sendable, Hashable {
    /// Every group epoch ≤ this is closed on every member.
    public private(set) var closedThroughEpoch: Epoch = 0

    public init() {}

    /// A clock whose run numbers from `epoch` on (GroupEpochReservation: above every number
    /// of the primary's run before).
    public init(closedThrough epoch: Epoch) { closedThroughEpoch = epoch }

    /// A member closed its epoch `epoch`: the epoch every other member must close through
    /// now, or nil when that is not news (a close the group already made).
    public mutating func memberClosed(_ epoch: Epoch) -> Epoch? {
        guard epoch > closedThroughEpoch else { return nil }
        closedThroughEpoch = epoch
        return epoch
    }
}
