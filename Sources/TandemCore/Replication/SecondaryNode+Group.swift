// SecondaryNode in a consistency group: its staged catch-up commits with the group's
// (ConsistencyGroup+CatchUp, docs/groups.md). At its primary's SyncComplete the member keeps
// staging (the catch-up is whole; the stream goes on into the journal under the group's
// barrier) until the coordinator says every staging member is whole (`.groupCommitBegin`):
// then it drains and waits, holding new writes, for the group's durable decision
// (`.groupCommitDecided`), and only then commits and applies its journal as a single
// resource does.

extension SecondaryNode {
    /// This member's staged catch-up commits with its group's.
    var commitsWithGroup: Bool { config.group != nil && config.groupCommitsCatchUp }

    /// The catch-up is whole: its SyncComplete came and the journal holds every write it
    /// named (the group's barrier may hold some of them a while).
    var catchUpWhole: Bool {
        commitsWithGroup && staging.catchUpComplete && machine.hasCompleted(through: staging.catchUpThroughSequence)
    }

    mutating func groupCommitBegin(into actions: inout [SecondaryNodeAction]) {
        guard staging.phase == .staging, catchUpWhole, diskFault == nil else { return }
        staging.groupDrain = true
        staging.phase = .draining(noRoom: false)
        continueStaging(into: &actions)
    }

    mutating func groupCommitDecided(into actions: inout [SecondaryNodeAction]) {
        guard staging.phase == .awaitingGroup else { return }
        staging.groupDecided = true
        staging.phase = .draining(noRoom: false)
        continueStaging(into: &actions)
    }

    /// What the group's coordinator needs of this member.
    public var groupCatchUp: GroupMemberCatchUp {
        let step: GroupMemberCatchUp.Step
        switch staging.phase {
        case .off: step = .inPlace
        case .staging: step = catchUpWhole ? .whole : .staging
        case .draining: step = staging.groupDrain ? .draining : .committing
        case .awaitingGroup: step = .drained
        case .committing, .applying, .clearing: step = .committing
        }
        let before: Bool
        switch staging.phase {
        case .staging, .draining, .awaitingGroup, .committing: before = !staging.groupDecided && staging.keepsConsistent
        case .off, .applying, .clearing: before = false
        }
        let own = diskState
        return GroupMemberCatchUp(
            step: diskFault == nil ? step : .inPlace, stagingSession: record.staging?.session ?? 0,
            journalBytes: staging.endBytes, consistent: own != .inconsistent && own != .failed,
            holdsImageBeforeCatchUp: before && diskFault == nil, volumeWrites: volumeWritesSubmitted,
            streaming: staging.phase == .off && diskFault == nil && unproven == nil && !awaitingSessionRecord
                && link == .established && machine.isConnected && isSynced && machine.isConsistent,
            failed: diskFault != nil)
    }
}
