// GroupPeerView: the primary node's word on its peer's group image (docs/groups.md,
// *Status*). The secondary node judges the group's volumes itself (GroupImageCheck, status
// `group_epochs.consistent`); the primary sends no frame about it and gets none, so it says
// what its members' own views of their peers let it vouch for: the group's secondary volumes
// are one crash-consistent image when every member's peer holds a consistent image (the
// barrier orders their streams) and no member's peer applies its stream in place while
// another's keeps its image from before a staged catch-up. Anything it cannot vouch for —
// a peer it has not heard from since it started or that is away with writes it may not hold
// (`DUnknown`), an `Inconsistent` or failed
// peer, the mix of staged and in-place — is `false` with the reason: the primary's word may
// be false where the secondary's is true (it does not know), never true where a member's
// own view says otherwise. Pure.

public enum GroupPeerView {
    public struct Member: Sendable, Equatable {
        public var name: String
        /// The member's `peer_disk_state` (its node's own view of its peer).
        public var peerDiskState: DiskState
        /// The peer stages a catch-up whose commit has not been reported (its CaughtUp): its
        /// volume keeps its image from before the catch-up.
        public var peerHoldsImageBeforeCatchUp: Bool

        public init(name: String, peerDiskState: DiskState, peerHoldsImageBeforeCatchUp: Bool) {
            self.name = name
            self.peerDiskState = peerDiskState
            self.peerHoldsImageBeforeCatchUp = peerHoldsImageBeforeCatchUp
        }
    }

    /// Why the primary cannot vouch that its peer's group image is consistent; nil: it can.
    /// No member: nil (there is nothing to judge; status shows `members` 0).
    public static func reasonNotConsistent(_ members: [Member]) -> String? {
        let members = members.sorted { $0.name < $1.name }
        for member in members {
            switch member.peerDiskState {
            case .upToDate, .consistent, .outdated:
                continue
            case .unknown:
                return "member '\(member.name)': its peer's disk state is unknown (DUnknown: not heard from since this daemon started, "
                    + "or away with writes it may not hold)"
            default:
                return "member '\(member.name)': its peer is \(member.peerDiskState.rawValue)"
            }
        }
        // A peer that is away (Outdated) does not move its volume; one connected and not
        // staging applies its stream in place, beside a sibling's image from before.
        if let staging = members.first(where: \.peerHoldsImageBeforeCatchUp),
            let inPlace = members.first(where: { !$0.peerHoldsImageBeforeCatchUp && $0.peerDiskState != .outdated }) {
            return "member '\(inPlace.name)''s peer applies its stream in place while member '\(staging.name)''s peer "
                + "holds its image from before its catch-up"
        }
        return nil
    }
}
