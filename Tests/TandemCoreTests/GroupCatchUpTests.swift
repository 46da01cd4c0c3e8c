// A consistency group's staged catch-ups commit together (ConsistencyGroup+CatchUp,
// SecondaryNode+Group; docs/groups.md, *Catch-up*): the two-phase decision (every staging
// member whole → drain; every one drained → one durable decision naming each journal), the
// decision's file format, the settlement that rolls a decided journal forward, the member's
// node that waits for the group instead of committing at its SyncComplete, and the group's
// image verdict.
import TandemCore
import Testing

private typealias Step = GroupMemberCatchUp.Step

private func member(_ name: String, _ step: Step, session: UInt64 = 7, bytes: UInt64 = 8192,
                    consistent: Bool = true, before: Bool = false, writes: UInt64 = 0,
                    streaming: Bool = false, failed: Bool = false) -> (name: String, catchUp: GroupMemberCatchUp) {
    (name, GroupMemberCatchUp(step: step, stagingSession: session, journalBytes: bytes, consistent: consistent,
                              holdsImageBeforeCatchUp: before, volumeWrites: writes, streaming: streaming, failed: failed))
}

@Suite struct GroupCatchUpTests {
    @Test func theGroupDrainsOnlyOnceEveryStagingMemberIsWholeAndDecidesOnceAllDrained() {
        var commit = GroupStagedCommit()
        #expect(commit.next(group: "db", members: [member("g0", .inPlace), member("g1", .inPlace)]) == .wait)
        // g1's catch-up is whole, g0's is not: g1 waits (committing it alone is the gap).
        #expect(commit.next(group: "db", members: [member("g0", .staging), member("g1", .whole)]) == .wait)
        #expect(commit.next(group: "db", members: [member("g0", .whole), member("g1", .whole)]) == .drain(["g0", "g1"]))
        #expect(commit.cohort == ["g0", "g1"])
        // One drained, one still draining: no decision.
        #expect(commit.next(group: "db", members: [member("g0", .drained), member("g1", .draining)]) == .wait)
        let both = commit.next(group: "db", members: [member("g0", .drained, session: 11, bytes: 4 << 20),
                                                      member("g1", .drained, session: 12, bytes: 8192)])
        #expect(both == .decide(GroupCommitDecision(group: "db", members: [
            .init(resource: "g0", stagingSession: 11, journalBytes: 4 << 20),
            .init(resource: "g1", stagingSession: 12, journalBytes: 8192),
        ])))
        #expect(commit.cohort.isEmpty)
        #expect(commit.next(group: "db", members: [member("g0", .committing), member("g1", .committing)]) == .wait)
    }

    /// A member away (its link down: its catch-up is still to come) holds the others' commit:
    /// committing g1's journal beside g0's old image is the gap. One that streams in place
    /// does not.
    @Test func aMemberAwayHoldsTheCommitAndAStreamingOneDoesNot() {
        var commit = GroupStagedCommit()
        #expect(commit.next(group: "db", members: [member("g0", .inPlace), member("g1", .whole)]) == .wait)
        #expect(commit.next(group: "db", members: [member("g0", .inPlace, streaming: true), member("g1", .whole)])
            == .drain(["g1"]))
    }

    /// One whose disk fails mid-drain is not named by the decision (its image is lost anyway).
    @Test func aMemberWhoseDiskFailsLeavesTheCohort() {
        var commit = GroupStagedCommit()
        #expect(commit.next(group: "db", members: [member("g0", .whole), member("g1", .whole),
                                                   member("g2", .inPlace, streaming: true)])
            == .drain(["g0", "g1"]))
        let step = commit.next(group: "db", members: [member("g0", .drained), member("g1", .inPlace, failed: true),
                                                      member("g2", .inPlace, streaming: true)])
        guard case .decide(let decision) = step else { Issue.record("\(step)"); return }
        #expect(decision.members.map(\.resource) == ["g0"])
    }

    /// One that stops (a promotion, which drops its undecided journal) abandons the commit: the
    /// others stay drained and uncommitted; a stopped member holds the next one too, and once
    /// it is back and whole, the drained ones are decided with it.
    @Test func aMemberThatStopsAbandonsTheCommit() {
        var commit = GroupStagedCommit()
        #expect(commit.next(group: "db", members: [member("g0", .whole), member("g1", .whole)]) == .drain(["g0", "g1"]))
        #expect(commit.next(group: "db", members: [member("g0", .drained), member("g1", .inPlace)]) == .wait)
        #expect(commit.cohort.isEmpty)
        #expect(commit.next(group: "db", members: [member("g0", .drained), member("g1", .inPlace)]) == .wait)
        #expect(commit.next(group: "db", members: [member("g0", .drained), member("g1", .whole)]) == .drain(["g1"]))
        let step = commit.next(group: "db", members: [member("g0", .drained), member("g1", .drained)])
        guard case .decide(let decision) = step else { Issue.record("\(step)"); return }
        #expect(decision.members.map(\.resource) == ["g0", "g1"])
    }

    /// A member that begins staging after the drain began is not in that cohort: the commit
    /// under way does not wait for it (its barrier would wait for the drained ones).
    @Test func aLateStagerJoinsTheNextCommit() {
        var commit = GroupStagedCommit()
        #expect(commit.next(group: "db", members: [member("g0", .whole), member("g1", .inPlace, streaming: true)]) == .drain(["g0"]))
        let step = commit.next(group: "db", members: [member("g0", .drained), member("g1", .staging)])
        #expect(step == .decide(GroupCommitDecision(group: "db", members: [.init(resource: "g0", stagingSession: 7, journalBytes: 8192)])))
        #expect(commit.next(group: "db", members: [member("g0", .inPlace), member("g1", .staging)]) == .wait)
    }

    @Test func theDecisionRoundTripsAndATornOrAlteredFileIsNoDecision() throws {
        let decision = GroupCommitDecision(group: "db", members: [
            .init(resource: "g0", stagingSession: 0xFFFF_FFFF_FFFF_FFFF, journalBytes: 1 << 40),
            .init(resource: "log.vol-1", stagingSession: 3, journalBytes: 0),
        ])
        let bytes = decision.encode()
        #expect(GroupCommitDecision.decode(bytes) == decision)
        #expect(decision.committedBytes(resource: "g0", stagingSession: 0xFFFF_FFFF_FFFF_FFFF) == 1 << 40)
        #expect(decision.committedBytes(resource: "g0", stagingSession: 4) == nil, "another journal of g0")
        #expect(decision.committedBytes(resource: "g9", stagingSession: 3) == nil)
        for cut in [0, 1, bytes.count / 2, bytes.count - 1] {
            #expect(GroupCommitDecision.decode(Array(bytes[..<cut])) == nil, "torn at \(cut)")
        }
        var altered = bytes
        let digit = try #require(altered.firstIndex(of: UInt8(ascii: "3")))
        altered[digit] = UInt8(ascii: "4")
        #expect(GroupCommitDecision.decode(altered) == nil, "a changed length must fail the CRC")
        #expect(GroupCommitDecision.decode(Array("garbage\n".utf8)) == nil)
        #expect(GroupCommitDecision.decode([0xFF, 0xFE, 0x0A]) == nil)
    }

    /// After a crash: a journal the group decided is replayed (at start and at a promotion);
    /// one it did not is resumed, or dropped at a promotion — every member of the group, or none.
    @Test func aDecidedJournalRollsForwardAndAnUndecidedOneDoesNot() {
        var record = ReplicationRecord(generation: 6, session: 9, durableThroughEpoch: 40, synced: false)
        record.staging = StagedCatchUp(session: 9, journalBytes: 16384, fromSession: 5, fromDurableEpoch: 30, fromContinuedFrom: 0)
        var applied = record
        applied.staging = nil
        applied.synced = true
        applied.generation = 7
        #expect(StagingSettlement.decide(record: record, promoting: false, groupCommittedBytes: 65536)
            == .replay(journalBytes: 65536, record: applied))
        #expect(StagingSettlement.decide(record: record, promoting: true, groupCommittedBytes: 65536)
            == .replay(journalBytes: 65536, record: applied))
        #expect(StagingSettlement.decide(record: record, promoting: false) == .resume(journalBytes: 16384))
        guard case .discard(let restored) = StagingSettlement.decide(record: record, promoting: true) else {
            Issue.record("an undecided journal is dropped at a promotion"); return
        }
        #expect(restored.session == 5 && restored.durableThroughEpoch == 30)
    }

    @Test func theImageIsInconsistentWhileAMemberIsOrOnceOneWroteBesideAnImageFromBefore() {
        var check = GroupImageCheck()
        #expect(check.update(members: [member("g0", .inPlace, writes: 10), member("g1", .inPlace, writes: 3)]) == nil)
        // Both stage (each volume keeps its image from before): consistent.
        #expect(check.update(members: [member("g0", .staging, before: true, writes: 10),
                                       member("g1", .staging, before: true, writes: 3)]) == nil)
        // g1 stages, g0 has not reconnected yet and writes nothing: still consistent.
        #expect(check.update(members: [member("g0", .inPlace, writes: 10), member("g1", .whole, before: true, writes: 3)]) == nil)
        // g0 writes in place while g1's volume is from before its catch-up: broken, and it stays
        // so while g1's image is from before, whatever g0 does.
        let broken = check.update(members: [member("g0", .inPlace, writes: 11), member("g1", .whole, before: true, writes: 3)])
        #expect(broken?.contains("'g0' wrote to its volume") == true, "\(broken ?? "nil")")
        #expect(check.update(members: [member("g0", .inPlace, writes: 11), member("g1", .drained, before: true, writes: 3)]) != nil)
        // Once no member holds an image from before, the members' own states decide.
        #expect(check.update(members: [member("g0", .inPlace, writes: 12), member("g1", .committing, writes: 3)]) == nil)
        let inconsistent = check.update(members: [member("g0", .inPlace, consistent: false), member("g1", .inPlace)])
        #expect(inconsistent == "member 'g0' is Inconsistent")
    }
}

// MARK: the member's node

private struct GroupMemberHarness {
    static let sizeBytes: UInt64 = 1 << 20
    static let recordBytes: UInt64 = 8192
    var node: SecondaryNode
    let nowNs: UInt64 = 1_000_000

    init(commitsWithGroup: Bool = true) {
        var machine = ReplicationSecondaryConfig(queuedBytesMax: 256 << 20, groupCommitIntervalNs: 1_000_000_000)
        machine.groupID = ConsistencyGroup.id(ofName: "db")
        var config = SecondaryNodeConfig(
            machine: machine, resourceName: "g0", nodeName: "beta", peerName: "alpha",
            volumeSizeBytes: Self.sizeBytes, alignment: 4096, initialSync: .full, stagingBytesMax: 64 << 10)
        config.group = "db"
        config.groupCommitsCatchUp = commitsWithGroup
        let record = ReplicationRecord(generation: 4, session: 5, durableThroughEpoch: 3, synced: true)
        node = SecondaryNode(config: config, record: record, handedOver: true, nowNs: nowNs)
        send(.groupIssueLimit(.max))
    }

    @discardableResult
    mutating func send(_ event: SecondaryNodeEvent) -> [SecondaryNodeAction] {
        var actions: [SecondaryNodeAction] = []
        node.handle(event, nowNs: nowNs, into: &actions)
        return actions
    }

    /// A catch-up session 9 from the base (5, 3), its first write staged and complete.
    mutating func stagingOneWrite() {
        let facts = PrimaryHelloFacts(
            hello: WireHello(role: .primary, nodeName: "alpha", resourceName: "g0", volumeSizeBytes: Self.sizeBytes,
                             generations: WireGenerations(current: 9, bitmap: 0, history: [5, 3, 0, 0]), promotionNumber: 0),
            certificateNamesPeer: true, certificateSubject: "CN=alpha")
        send(.hello(facts))
        send(.linkEstablished)
        let first = data(1, epoch: 1, block: 0)
        if let record = first.compactMap({ if case .writeRecord(let record) = $0 { record } else { nil } }).last {
            send(.recorded(record))
        }
        send(.groupIssueLimit(.max))  // the coordinator's barrier for the new session's machine
        send(.writeCompleted(sequence: 1, errno: 0))
    }

    @discardableResult
    mutating func data(_ sequence: WriteSequence, epoch: Epoch, block: UInt64) -> [SecondaryNodeAction] {
        send(.data(DataMessage(epoch: epoch, sequence: sequence, offsetBytes: block * 4096, lengthBytes: 4096, flags: [])))
    }
}

private func commits(_ actions: [SecondaryNodeAction]) -> [ReplicationRecord] {
    actions.compactMap { if case .commitStaging(let record) = $0 { record } else { nil } }
}

extension GroupCatchUpTests {
    /// At SyncComplete a group member's catch-up is whole but not committed: the stream goes on
    /// into the journal; the group's begin drains it (new writes held); only the decision
    /// commits it, whole.
    @Test func aMemberWaitsForTheGroupBeforeCommittingItsJournal() {
        var harness = GroupMemberHarness()
        harness.stagingOneWrite()
        #expect(harness.node.groupCatchUp.step == .staging)
        let complete = harness.send(.syncComplete(through: 1))
        #expect(commits(complete).isEmpty, "a group member committed alone: \(complete)")
        #expect(harness.node.groupCatchUp.step == .whole && harness.node.groupCatchUp.holdsImageBeforeCatchUp)
        #expect(harness.node.diskState == .consistent)
        // The stream after SyncComplete still goes to the journal.
        let later = harness.data(2, epoch: 2, block: 1)
        #expect(later.contains { if case .stageWrite = $0 { true } else { false } }, "\(later)")
        // Phase one: drain. The staged write is in flight: draining, then drained.
        #expect(commits(harness.send(.groupCommitBegin)).isEmpty)
        #expect(harness.node.groupCatchUp.step == .draining)
        let held = harness.data(3, epoch: 3, block: 2)
        #expect(!held.contains { if case .stageWrite = $0 { true } else { false } }, "a write during the drain: \(held)")
        #expect(commits(harness.send(.writeCompleted(sequence: 2, errno: 0))).isEmpty)
        #expect(harness.node.groupCatchUp == GroupMemberCatchUp(
            step: .drained, stagingSession: 9, journalBytes: 2 * GroupMemberHarness.recordBytes,
            holdsImageBeforeCatchUp: true, volumeWrites: 0))
        // Phase two: the group's decision commits the whole journal.
        let decided = harness.send(.groupCommitDecided)
        let committed = commits(decided)
        #expect(committed.count == 1 && committed.first?.staging?.committed == true
            && committed.first?.staging?.journalBytes == 2 * GroupMemberHarness.recordBytes, "\(decided)")
        #expect(harness.node.groupCatchUp.step == .committing && !harness.node.groupCatchUp.holdsImageBeforeCatchUp)
    }

    /// A SyncComplete that names a write still on its way to the journal: whole only once it is
    /// there (the group's barrier may hold it).
    @Test func aCatchUpIsWholeOnlyOnceTheJournalHoldsWhatItsSyncCompleteNamed() {
        var harness = GroupMemberHarness()
        harness.stagingOneWrite()
        harness.data(2, epoch: 2, block: 1)
        harness.send(.syncComplete(through: 2))
        #expect(harness.node.groupCatchUp.step == .staging)
        #expect(harness.send(.groupCommitBegin).isEmpty && harness.node.groupCatchUp.step == .staging)
        harness.send(.writeCompleted(sequence: 2, errno: 0))
        #expect(harness.node.groupCatchUp.step == .whole)
    }

    /// The control: without the group's coordination a member commits at its own SyncComplete.
    @Test func anUncoordinatedMemberCommitsAtItsSyncComplete() {
        var harness = GroupMemberHarness(commitsWithGroup: false)
        harness.stagingOneWrite()
        #expect(commits(harness.send(.syncComplete(through: 1))).count == 1)
    }

    /// A begin before the catch-up is whole, or a decision before the drain, changes nothing.
    @Test func anEarlyBeginOrDecisionIsIgnored() {
        var harness = GroupMemberHarness()
        harness.stagingOneWrite()
        #expect(harness.send(.groupCommitBegin).isEmpty && harness.node.groupCatchUp.step == .staging)
        #expect(harness.send(.groupCommitDecided).isEmpty && harness.node.groupCatchUp.step == .staging)
    }
}
