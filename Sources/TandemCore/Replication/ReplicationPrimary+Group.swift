// ReplicationPrimary+Group: a consistency group member's share of the group's epochs
// (docs/groups.md). The members of a group on one primary node share one epoch sequence:
// when any member closes its open epoch (a write acknowledged, a FLUSH, a FUA), the group
// coordinator closes the same epoch number on every other member, so a write admitted
// after any write of the group was acknowledged lands in a later epoch on whichever volume
// it hits. A member's epochs are therefore the group's epochs, and skip the numbers in
// which the member wrote nothing; a GroupBarrier tells its secondary which were skipped.

extension ReplicationPrimary {
    /// The newest epoch this member has closed (its open epoch when none is open).
    public var closedEpoch: Epoch { startsNewEpoch ? openEpoch : openEpoch - 1 }

    /// Another member closed group epoch `epoch`: close ours if it is open, move the
    /// numbering on so our next write opens `epoch + 1`, and tell the secondary. An epoch
    /// not newer than what this member already closed changes nothing.
    public mutating func closeGroupEpoch(through epoch: Epoch, into actions: inout [PrimaryAction]) {
        precondition(config.groupID != 0, "a group epoch for a resource in no group")
        guard epoch > closedEpoch else { return }
        // Every member's open epoch is the group's open epoch, so an open one is `epoch`
        // (an older one, were a close ever missed, is closed all the same: order holds).
        if !startsNewEpoch {
            startsNewEpoch = true
            if isPeerReady { actions.append(.send(.epochBarrier(epoch: openEpoch))) }
        }
        openEpoch = epoch
        if isPeerReady { actions.append(.send(.groupBarrier(groupID: config.groupID, epoch: epoch))) }
    }

    /// A stream that starts inside a group run (a catch-up's new stream, a new session)
    /// starts its numbering at the group's: its first write opens `epoch + 1`.
    public mutating func startGroupNumbering(closedThrough epoch: Epoch) {
        precondition(writesInFlight == 0 && lastSequence == 0, "renumbering a stream that has written")
        if epoch > openEpoch { openEpoch = epoch }
        startsNewEpoch = true
    }

    /// After a re-send: everything of this member through its closed epoch has gone again,
    /// so the secondary may count the group's epochs through it as complete here.
    func appendGroupBarrierOnResend(into actions: inout [PrimaryAction]) {
        guard config.groupID != 0, closedEpoch > 0 else { return }
        actions.append(.send(.groupBarrier(groupID: config.groupID, epoch: closedEpoch)))
    }
}
