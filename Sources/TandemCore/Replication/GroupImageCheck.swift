// GroupImageCheck: whether a consistency group's secondary volumes together are one
// crash-consistent image (docs/groups.md, *Catch-up*): not while a member's own copy is
// Inconsistent, nor once a member wrote to its volume while another's held its image from
// before its catch-up. Status, events and every member's reported disk state follow it
// (ConsistencyGroups+CatchUp). Pure.

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
