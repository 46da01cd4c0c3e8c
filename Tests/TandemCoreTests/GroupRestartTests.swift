// A consistency group across a primary restart (docs/groups.md, *Across a primary restart*):
// the run's epoch floor (GroupEpochReservation: numbers above the run before's, its file
// format), the barrier that holds the member that is back behind the one still in the run
// before, and the primary's word on its peer's group image (GroupPeerView).
import TandemCore
import Testing

@Suite struct GroupRestartTests {
    @Test func eachRunNumbersAboveEveryNumberOfTheRunBefore() throws {
        let first = try #require(GroupEpochReservation.start(stored: 0))
        #expect(first.clockStart == 0 && first.reserveThrough == GroupEpochReservation.blockEpochs)
        // The next run starts where the first reserved to, whatever the first used of its block.
        let second = try #require(GroupEpochReservation.start(stored: first.reserveThrough))
        #expect(second.clockStart == first.reserveThrough && second.reserveThrough > second.clockStart)
        #expect(GroupEpochReservation.start(stored: GroupEpochReservation.floorMax + 1) == nil, "spent numbers refuse")
    }

    @Test func aLongRunStoresTheNextBlockBeforeItUsesIt() {
        let block = GroupEpochReservation.blockEpochs
        #expect(GroupEpochReservation.renewal(closed: 1000, reserved: block) == nil)
        let due = block - GroupEpochReservation.renewMarginEpochs
        #expect(GroupEpochReservation.renewal(closed: due, reserved: block) == 2 * block)
        #expect(GroupEpochReservation.renewal(closed: due - 1, reserved: block) == nil)
    }

    @Test func theFloorFileRoundTripsAndADamagedOneIsNoFloor() {
        let bytes = GroupEpochReservation.encode(floor: 3 << 40)
        #expect(GroupEpochReservation.decode(bytes) == 3 << 40)
        var altered = bytes
        altered[altered.count / 2] ^= 0x01
        #expect(GroupEpochReservation.decode(altered) == nil, "an altered byte")
        #expect(GroupEpochReservation.decode(Array(bytes.prefix(bytes.count - 3))) == nil, "a torn file")
        #expect(GroupEpochReservation.decode([]) == nil)
    }

    /// g0's secondary still holds the run before's epoch (its new stream has not come); g1's
    /// new stream starts at the new run's floor. The barrier must hold g1's writes: with the
    /// numbers starting at 1 again they would be issued beside g0's old image.
    @Test func theMemberThatIsBackIsHeldBehindTheOneStillInTheRunBefore() {
        let oldRunCompleted: Epoch = 812  // g0, completed in the run before
        let floor = GroupEpochReservation.blockEpochs
        var config = ReplicationSecondaryConfig(groupCommitIntervalNs: 1_000_000_000)
        config.groupID = ConsistencyGroup.id(ofName: "db")
        var g1 = ReplicationSecondary(config: config)
        var actions: [SecondaryAction] = []
        g1.handle(.connectionUp, nowNs: 0, into: &actions)
        // The new run's stream: GroupBarrier(floor) after the hello, then its first write.
        g1.handle(.message(.groupBarrier(groupID: config.groupID, epoch: floor)), nowNs: 0, into: &actions)
        g1.handle(.message(.data(DataMessage(epoch: floor + 2, sequence: 1, offsetBytes: 0, lengthBytes: 4096, flags: []))),
                  nowNs: 0, into: &actions)
        let limit = ConsistencyGroup.issueLimit(completedThrough: [oldRunCompleted, g1.completedThroughEpoch])
        actions.removeAll()
        g1.handle(.groupIssueLimit(limit), nowNs: 0, into: &actions)
        #expect(!actions.contains { if case .submitWrite = $0 { true } else { false } },
                "g1's write of epoch \(floor + 2) issued under the limit \(limit)")
        // The same write numbered as a run from 1 would have been (epoch 2 < 812): issued.
        var renumbered = ReplicationSecondary(config: config)
        actions.removeAll()
        renumbered.handle(.connectionUp, nowNs: 0, into: &actions)
        renumbered.handle(.message(.data(DataMessage(epoch: 2, sequence: 1, offsetBytes: 0, lengthBytes: 4096, flags: []))),
                          nowNs: 0, into: &actions)
        let staleLimit = ConsistencyGroup.issueLimit(completedThrough: [oldRunCompleted, renumbered.completedThroughEpoch])
        actions.removeAll()
        renumbered.handle(.groupIssueLimit(staleLimit), nowNs: 0, into: &actions)
        #expect(actions.contains { if case .submitWrite = $0 { true } else { false } }, "the control: issued")
    }

    /// A primary member started with the run's floor numbers its first write above it and
    /// tells its secondary where the group stands before anything else.
    @Test func aMemberStartedAtTheFloorSendsItsBarrierThenWritesAboveIt() {
        var config = ReplicationPrimaryConfig(mode: .async, bufferBytesMax: 1 << 20)
        config.groupID = ConsistencyGroup.id(ofName: "db")
        var primary = ReplicationPrimary(config: config)
        let floor = GroupEpochReservation.blockEpochs
        var actions: [PrimaryAction] = []
        primary.closeGroupEpoch(through: floor, into: &actions)
        primary.handle(.connectionUp, nowNs: 0, into: &actions)
        actions.removeAll()
        primary.handle(.peerMessage(.hello(durableThroughEpoch: 0, copy: .consistent)), nowNs: 0, into: &actions)
        let sent = actions.compactMap { if case .send(let message) = $0 { message } else { nil } }
        #expect(sent.first == .groupBarrier(groupID: config.groupID, epoch: floor), "\(sent)")
        actions.removeAll()
        primary.handle(.writeSubmitted(request: 1, offsetBytes: 0, lengthBytes: 4096, fua: false), nowNs: 0, into: &actions)
        #expect(actions.contains { if case .submitLocalWrite(let write) = $0 { write.epoch == floor + 1 } else { false } })
    }

    @Test func thePrimaryVouchesForItsPeersGroupImageOnlyWhenEveryMembersViewLetsIt() {
        typealias Member = GroupPeerView.Member
        func member(_ name: String, _ state: DiskState, staging: Bool = false) -> Member {
            Member(name: name, peerDiskState: state, peerHoldsImageBeforeCatchUp: staging)
        }
        #expect(GroupPeerView.reasonNotConsistent([member("g0", .upToDate), member("g1", .consistent)]) == nil)
        #expect(GroupPeerView.reasonNotConsistent([member("g0", .outdated), member("g1", .upToDate)]) == nil,
                "an away peer keeps its volume: the barrier's image")
        #expect(GroupPeerView.reasonNotConsistent([member("g0", .consistent, staging: true),
                                                   member("g1", .outdated, staging: true)]) == nil,
                "both stage: the group's commit switches them together")
        #expect(GroupPeerView.reasonNotConsistent([member("g1", .inconsistent), member("g0", .upToDate)])?
            .contains("'g1': its peer is Inconsistent") == true)
        #expect(GroupPeerView.reasonNotConsistent([member("g0", .unknown), member("g1", .upToDate)])?
            .contains("DUnknown") == true, "not heard from: not vouched for")
        #expect(GroupPeerView.reasonNotConsistent([member("g0", .failed), member("g1", .upToDate)]) != nil)
        let mixed = GroupPeerView.reasonNotConsistent([member("g0", .consistent, staging: true), member("g1", .upToDate)])
        #expect(mixed?.contains("member 'g1''s peer applies its stream in place while member 'g0''s peer") == true,
                "\(mixed ?? "nil")")
        #expect(GroupPeerView.reasonNotConsistent([]) == nil)
    }
}
