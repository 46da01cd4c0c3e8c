// The consistency group's decisions in TandemCore (docs/groups.md): the shared epoch
// sequence of the primary's members, the secondary's barrier, the GroupBarrier frame.
import TandemCore
import Testing

/// Two primary members and the coordinator's rule, as the daemon's ConsistencyGroups applies
/// it: a member's `.groupEpochClosed(E)` closes E on the other.
private struct PrimaryMembers {
    static let groupID = ConsistencyGroup.id(ofName: "db")
    var members: [ReplicationPrimary]
    var clock = GroupEpochClock()
    /// What each member sent to its secondary, in order.
    var sent: [[PrimaryMessage]] = [[], []]

    init(mode: ReplicationAckMode = .async) {
        var config = ReplicationPrimaryConfig(mode: mode, bufferBytesMax: 1 << 20)
        config.groupID = Self.groupID
        members = [ReplicationPrimary(config: config), ReplicationPrimary(config: config)]
    }

    mutating func connect(_ member: Int, durableThroughEpoch: Epoch = 0) {
        send(member, .connectionUp)
        send(member, .peerMessage(.hello(durableThroughEpoch: durableThroughEpoch, copy: .consistent)))
    }

    @discardableResult
    mutating func send(_ member: Int, _ event: PrimaryEvent) -> [PrimaryAction] {
        var actions: [PrimaryAction] = []
        members[member].handle(event, nowNs: 0, into: &actions)
        carry(member, actions)
        return actions
    }

    private mutating func carry(_ member: Int, _ actions: [PrimaryAction]) {
        for action in actions {
            switch action {
            case .send(let message): sent[member].append(message)
            case .groupEpochClosed(let epoch):
                guard let through = clock.memberClosed(epoch) else { continue }
                let other = 1 - member
                var closing: [PrimaryAction] = []
                members[other].closeGroupEpoch(through: through, into: &closing)
                carry(other, closing)
            default: break
            }
        }
    }

    /// Submits a write to `member`; returns its LocalWrite.
    mutating func write(_ member: Int, _ request: RequestID, block: UInt64 = 0) -> LocalWrite {
        for case let .submitLocalWrite(write) in send(member, .writeSubmitted(
            request: request, offsetBytes: block * 4096, lengthBytes: 4096, fua: false)) { return write }
        Issue.record("write \(request) was not submitted")
        return LocalWrite(request: 0, sequence: 0, epoch: 0, offsetBytes: 0, lengthBytes: 0, fua: false)
    }
}

@Suite struct GroupEpochTests {
    @Test func aWriteAdmittedAfterAnotherMembersAcknowledgementLandsInALaterEpoch() {
        var group = PrimaryMembers()
        group.connect(0)
        group.connect(1)
        let first = group.write(0, 1)
        let concurrent = group.write(1, 2)
        #expect(first.epoch == 1 && concurrent.epoch == 1, "in flight together: one group epoch")
        // Member 0's write is acknowledged (async: local completion): the group's epoch 1 closes.
        let acked = group.send(0, .localWriteCompleted(sequence: first.sequence))
        #expect(acked.contains(.acknowledgeWrite(request: 1)))
        #expect(group.clock.closedThroughEpoch == 1)
        // Member 1 had epoch 1 open: it is closed there too, and its secondary is told.
        #expect(group.sent[1].suffix(2) == [.epochBarrier(epoch: 1), .groupBarrier(groupID: PrimaryMembers.groupID, epoch: 1)])
        let dependent = group.write(1, 3, block: 1)
        #expect(dependent.epoch == 2, "admitted after the acknowledgement: the next group epoch")
    }

    @Test func aMemberThatWroteNothingSkipsTheGroupsEpochsAndIsToldOfEach() {
        var group = PrimaryMembers()
        group.connect(0)
        group.connect(1)
        for request in 1...3 as ClosedRange<RequestID> {
            let write = group.write(0, request, block: UInt64(request))
            #expect(write.epoch == Epoch(request))
            group.send(0, .localWriteCompleted(sequence: write.sequence))
        }
        #expect(group.sent[1] == [.resendComplete(throughSequence: 0)]
                + (1...3).map { .groupBarrier(groupID: PrimaryMembers.groupID, epoch: $0) })
        #expect(group.members[1].closedEpoch == 3)
        #expect(group.write(1, 9).epoch == 4, "member 1's first write opens the group's next epoch")
    }

    @Test func aCloseTheGroupAlreadyMadeIsNotNews() {
        var clock = GroupEpochClock()
        #expect(clock.memberClosed(2) == 2)
        #expect(clock.memberClosed(2) == nil)
        #expect(clock.memberClosed(1) == nil)
        #expect(clock.memberClosed(3) == 3 && clock.closedThroughEpoch == 3)
    }

    @Test func aReconnectedMemberIsToldWhereTheGroupStandsAfterItsResend() {
        var group = PrimaryMembers()
        group.connect(0)
        let write = group.write(0, 1)
        group.send(0, .localWriteCompleted(sequence: write.sequence))  // closes group epoch 1
        // Member 1 was not connected when epoch 1 closed: its hello gets the barrier then.
        #expect(group.sent[1].isEmpty)
        group.connect(1)
        #expect(group.sent[1] == [.groupBarrier(groupID: PrimaryMembers.groupID, epoch: 1), .resendComplete(throughSequence: 0)])
    }

    @Test func aNewStreamContinuesTheGroupsNumbering() {
        var config = ReplicationPrimaryConfig(mode: .async, bufferBytesMax: 1 << 20)
        config.groupID = 7
        var primary = ReplicationPrimary(config: config)
        primary.startGroupNumbering(closedThrough: 41)
        var actions: [PrimaryAction] = []
        primary.handle(.writeSubmitted(request: 1, offsetBytes: 0, lengthBytes: 4096, fua: false), nowNs: 0, into: &actions)
        #expect(actions.contains { if case .submitLocalWrite(let write) = $0 { write.epoch == 42 } else { false } })
    }
}

private struct SecondaryMember {
    var machine: ReplicationSecondary

    init(groupID: UInt64 = PrimaryMembers.groupID) {
        var config = ReplicationSecondaryConfig(groupCommitIntervalNs: 1_000_000_000)
        config.groupID = groupID
        machine = ReplicationSecondary(config: config)
        send(.connectionUp)
    }

    @discardableResult
    mutating func send(_ event: SecondaryEvent) -> [SecondaryAction] {
        var actions: [SecondaryAction] = []
        machine.handle(event, nowNs: 0, into: &actions)
        return actions
    }

    @discardableResult
    mutating func data(_ sequence: WriteSequence, epoch: Epoch, block: UInt64 = 0) -> [SecondaryAction] {
        send(.message(.data(DataMessage(epoch: epoch, sequence: sequence, offsetBytes: block * 4096, lengthBytes: 4096,
                                        flags: []))))
    }
}

private func submitted(_ actions: [SecondaryAction]) -> [WriteSequence] {
    actions.compactMap { if case .submitWrite(let write) = $0 { write.sequence } else { nil } }
}

private func violated(_ actions: [SecondaryAction]) -> Bool {
    actions.contains { if case .protocolViolation = $0 { true } else { false } }
}

@Suite struct GroupBarrierTests {
    @Test func theLimitIsOnePastTheLowestMembersCompletedEpoch() {
        #expect(ConsistencyGroup.issueLimit(completedThrough: [5, 3, 9]) == 4)
        #expect(ConsistencyGroup.issueLimit(completedThrough: [0, 0]) == 1)
        #expect(ConsistencyGroup.issueLimit(completedThrough: [Epoch]()) == .max)
    }

    @Test func aMemberIssuesNothingBeforeTheBarrierSaysHowFar() {
        var member = SecondaryMember()
        #expect(submitted(member.data(1, epoch: 1)).isEmpty, "no limit yet: nothing issued")
        #expect(submitted(member.send(.groupIssueLimit(1))) == [1])
    }

    @Test func aLaterGroupEpochWaitsForTheLimit() {
        var member = SecondaryMember()
        member.send(.groupIssueLimit(1))
        #expect(submitted(member.data(1, epoch: 1)) == [1])
        member.send(.writeCompleted(sequence: 1))
        #expect(member.machine.completedThroughEpoch == 0, "epoch 1 is not closed yet")
        // Epoch 3 (the member wrote nothing in 2): received, held until every member did 2.
        #expect(submitted(member.data(2, epoch: 3, block: 1)).isEmpty)
        #expect(member.machine.completedThroughEpoch == 2, "1 complete, 2 empty here")
        #expect(submitted(member.send(.groupIssueLimit(2))).isEmpty)
        #expect(submitted(member.send(.groupIssueLimit(3))) == [2])
    }

    @Test func aGroupBarrierCompletesTheEpochsTheMemberSkipped() {
        var member = SecondaryMember()
        member.send(.message(.groupBarrier(groupID: PrimaryMembers.groupID, epoch: 6)))
        #expect(member.machine.completedThroughEpoch == 6)
        #expect(violated(member.data(1, epoch: 6)), "epoch 6 was closed by the barrier")
    }

    @Test func aBarrierOfAnotherGroupIsAViolation() {
        var member = SecondaryMember()
        #expect(violated(member.send(.message(.groupBarrier(groupID: 12345, epoch: 1)))))
        var loner = SecondaryMember(groupID: 0)
        #expect(violated(loner.send(.message(.groupBarrier(groupID: 12345, epoch: 1)))))
    }

    @Test func onlyAGroupMemberMaySkipEpochNumbers() {
        var member = SecondaryMember()
        #expect(!violated(member.data(1, epoch: 4)))
        var loner = SecondaryMember(groupID: 0)
        #expect(violated(loner.data(1, epoch: 4)))
    }

    @Test func theGroupIDIsStableAndNeverZero() {
        #expect(ConsistencyGroup.id(ofName: "db") == ConsistencyGroup.id(ofName: "db"))
        #expect(ConsistencyGroup.id(ofName: "db") != ConsistencyGroup.id(ofName: "db2"))
        #expect(ConsistencyGroup.id(ofName: "") != 0)
    }

    @Test func theGroupBarrierFrameRoundTripsAndGroupZeroIsRefused() throws {
        let message = WireMessage.groupBarrier(groupID: 0xFEED_FACE_CAFE_BEEF, epoch: 77)
        let frames = try WireFixtures.decodeAll(try WireEncoder.encode(message, promotionNumber: 3))
        #expect(frames.map(\.message) == [message])
        let zero = WireFixtures.rawFrame(type: 27, body: WireFixtures.le(UInt64(0)) + WireFixtures.le(UInt64(1)))
        guard case .inconsistentBody(.groupBarrier, _)? = WireFixtures.firstError(zero) else {
            Issue.record("group 0 decoded: \(String(describing: WireFixtures.firstError(zero)))")
            return
        }
    }
}

@Suite struct GroupAheadTests {
    static func node(groupID: UInt64) -> PrimaryNode {
        var primary = ReplicationPrimaryConfig(mode: .async, bufferBytesMax: 4 << 20)
        primary.groupID = groupID
        return PrimaryNode(config: PrimaryNodeConfig(primary: primary, volumeSizeBytes: 64 << 20),
                           session: 77, basis: .continues(from: 5))
    }

    static func wentAhead(_ actions: [PrimaryNodeAction]) -> Bool {
        actions.contains { if case .notice(.ahead) = $0 { true } else { false } }
    }

    @Test func aMemberGoesAheadWhenAnotherDoesAndOnlyOnce() {
        var node = Self.node(groupID: PrimaryMembers.groupID)
        var actions: [PrimaryNodeAction] = []
        node.handle(.enable, nowNs: 1, into: &actions)
        node.handle(.linkUp, nowNs: 1, into: &actions)
        node.handle(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)), nowNs: 1, into: &actions)
        actions.removeAll()
        node.handle(.groupMemberAhead(reason: "g0 went Ahead"), nowNs: 2, into: &actions)
        #expect(Self.wentAhead(actions), "\(actions)")
        #expect(actions.contains { if case .notice(.ahead(let reason, _)) = $0 { reason == "g0 went Ahead" } else { false } })
        actions.removeAll()
        node.handle(.groupMemberAhead(reason: "g1 went Ahead"), nowNs: 3, into: &actions)
        #expect(!Self.wentAhead(actions), "already Ahead")
    }

    @Test func aDisabledMemberOrOneInNoGroupDoesNotGoAhead() {
        var disabled = Self.node(groupID: PrimaryMembers.groupID)
        var actions: [PrimaryNodeAction] = []
        disabled.handle(.groupMemberAhead(reason: "g0"), nowNs: 1, into: &actions)
        #expect(!Self.wentAhead(actions))
        var loner = Self.node(groupID: 0)
        loner.handle(.enable, nowNs: 1, into: &actions)
        actions.removeAll()
        loner.handle(.groupMemberAhead(reason: "g0"), nowNs: 2, into: &actions)
        #expect(!Self.wentAhead(actions))
    }
}
