// PrimaryNode+Group: a consistency group member on the primary (docs/groups.md). The node
// passes its own epoch closes up (`.groupEpochClosed(E)` action) and takes the other
// members' closes (`.groupEpochClosed(through:)` event); a stream it starts anew (a
// catch-up's) continues the group's numbering rather than starting at epoch 1.

extension PrimaryNode {
    /// Another member closed group epoch `epoch`: close ours and tell our secondary.
    mutating func groupEpochClosed(through epoch: Epoch, nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard config.primary.groupID != 0, epoch > groupClosedEpoch else { return }
        groupClosedEpoch = epoch
        primary.closeGroupEpoch(through: epoch, into: &inner)
        translateInner(nowNs: nowNs, into: &actions)
    }

    /// Another member went Ahead: this one does too, now, when it could go Ahead at all (a
    /// stopped, disabled or peerless node does not; one Ahead already stays so).
    mutating func groupMemberAhead(_ reason: String, nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard config.primary.groupID != 0 else { return }
        groupAheadReason = reason
        _ = enterAheadIfDue(nowNs: nowNs, into: &actions)
        groupAheadReason = nil
    }

    /// A new stream machine continues the group's epoch numbers.
    mutating func startGroupNumbering() {
        guard config.primary.groupID != 0 else { return }
        primary.startGroupNumbering(closedThrough: groupClosedEpoch)
    }
}

extension PrimaryNode {
    /// The peer stages this session's catch-up and has not reported it committed (its
    /// CaughtUp): its volume keeps its image from before (GroupPeerView).
    public var peerHoldsImageBeforeCatchUp: Bool { stagedPeerDiskState != nil }
}
