// The staged catch-up's faults the simulator found (docs/replication.md, *What the simulator
// found*), pinned as unit tests of SecondaryNode: a no-room apply's clearing record is
// written while the copy is Inconsistent; a primary that demotes before a staged catch-up's
// SyncComplete is not followed; a verify's digest read waits for the journal to be applied.
import TandemCore
import Testing

private struct Harness {
    static let sizeBytes: UInt64 = 1 << 20
    static let recordBytes: UInt64 = 8192  // a 4 KiB write: header and payload
    var node: SecondaryNode
    let nowNs: UInt64 = 1_000_000

    init(stagingBytesMax: UInt64 = 64 << 10) {
        let machine = ReplicationSecondaryConfig(queuedBytesMax: 256 << 20, groupCommitIntervalNs: 1_000_000_000)
        let config = SecondaryNodeConfig(
            machine: machine, resourceName: "r1", nodeName: "beta", peerName: "alpha",
            volumeSizeBytes: Self.sizeBytes, alignment: 4096, initialSync: .full, stagingBytesMax: stagingBytesMax)
        // A synced copy of session 5, durable through epoch 3, handed over (consistent).
        let record = ReplicationRecord(generation: 4, session: 5, durableThroughEpoch: 3, synced: true)
        node = SecondaryNode(config: config, record: record, handedOver: true, nowNs: nowNs)
    }

    @discardableResult
    mutating func send(_ event: SecondaryNodeEvent) -> [SecondaryNodeAction] {
        var actions: [SecondaryNodeAction] = []
        node.handle(event, nowNs: nowNs, into: &actions)
        return actions
    }

    /// A catch-up session `session` from the base (5, 3).
    mutating func connectCatchUp(session: UInt64) {
        let facts = PrimaryHelloFacts(
            hello: WireHello(role: .primary, nodeName: "alpha", resourceName: "r1", volumeSizeBytes: Self.sizeBytes,
                             generations: WireGenerations(current: session, bitmap: 0, history: [5, 3, 0, 0]),
                             promotionNumber: 0),
            certificateNamesPeer: true, certificateSubject: "CN=alpha")
        #expect(send(.hello(facts)).last == .acceptLink)
        send(.linkEstablished)
    }

    @discardableResult
    mutating func data(_ sequence: WriteSequence, block: UInt64) -> [SecondaryNodeAction] {
        send(.data(DataMessage(epoch: 1, sequence: sequence, offsetBytes: block * 4096, lengthBytes: 4096, flags: [])))
    }

    /// The record the node asked to store last, as the store reports it stable.
    @discardableResult
    mutating func storeLast(_ actions: [SecondaryNodeAction]) -> [SecondaryNodeAction] {
        let records: [ReplicationRecord] = actions.compactMap {
            switch $0 {
            case .writeRecord(let record), .commitStaging(let record): record
            default: nil
            }
        }
        guard let record = records.last else { Issue.record("no record in \(actions)"); return [] }
        return send(.recorded(record))
    }
}

@Suite struct SecondaryNodeStagingFindingsTests {
    /// Seed 8: after a no-room commit is applied, the copy holds part of the catch-up while the
    /// record that forgets the journal is written: it says Inconsistent, not Consistent.
    @Test func aNoRoomApplyStaysInconsistentWhileItsJournalIsForgotten() {
        var harness = Harness(stagingBytesMax: Harness.recordBytes)
        harness.connectCatchUp(session: 9)
        harness.storeLast(harness.data(1, block: 0))
        harness.data(2, block: 1)  // no room: commit what is staged
        let drained = harness.send(.writeCompleted(sequence: 1, errno: 0))
        guard case .commitStaging(let committed)? = drained.last else { Issue.record("no commit: \(drained)"); return }
        #expect(harness.send(.recorded(committed)) == [.applyStaging(journalBytes: Harness.recordBytes)])
        let applied = harness.send(.stagingApplied(errno: 0))
        #expect(applied.contains { if case .writeRecord(let record) = $0 { record.staging == nil } else { false } })
        #expect(harness.node.diskState == .inconsistent, "the clearing record of a no-room apply")
    }

    /// Seeds 226, 1196: a primary that demotes before the staged catch-up's SyncComplete (its
    /// drain does not wait for the copy) is answered "not demoted": the copy lacks the catch-up.
    @Test func aDemotionBeforeAStagedCatchUpCompletesIsNotFollowed() {
        var harness = Harness()
        harness.connectCatchUp(session: 9)
        #expect(harness.send(.requestFailover) == [.sendFailoverRequest])
        harness.storeLast(harness.data(1, block: 0))
        harness.send(.writeCompleted(sequence: 1, errno: 0))
        #expect(harness.node.diskState == .consistent)
        let demoted = harness.send(.demoted)
        #expect(demoted.contains(.failoverAnswered(demoted: false)), "\(demoted)")
        #expect(!demoted.contains(.failoverAnswered(demoted: true)))
    }

    /// The same before the session's first Data: the copy will stage, and already says
    /// Consistent, but holds nothing of the catch-up.
    @Test func aDemotionBeforeTheFirstStagedWriteIsNotFollowed() {
        var harness = Harness()
        harness.connectCatchUp(session: 9)
        #expect(harness.send(.requestFailover) == [.sendFailoverRequest])
        #expect(harness.send(.demoted).contains(.failoverAnswered(demoted: false)))
    }

    /// Seed 186: a DigestRequest after SyncComplete, while the committed journal is applied,
    /// is read once the journal is forgotten (the volume lacked the catch-up until then).
    @Test func aVerifyReadWaitsForTheCommittedJournalToBeApplied() {
        var harness = Harness()
        harness.connectCatchUp(session: 9)
        harness.storeLast(harness.data(1, block: 0))
        harness.send(.writeCompleted(sequence: 1, errno: 0))
        let complete = harness.send(.syncComplete(through: 1))
        guard case .commitStaging(let committed)? = complete.last else { Issue.record("no commit: \(complete)"); return }
        harness.send(.recorded(committed))
        let asked = harness.send(.digestRequested(offsetBytes: 0, lengthBytes: 4096))
        #expect(!asked.contains(.readForDigest(offsetBytes: 0, lengthBytes: 4096)), "\(asked)")
        let applied = harness.send(.stagingApplied(errno: 0))
        #expect(!applied.contains(.readForDigest(offsetBytes: 0, lengthBytes: 4096)))
        #expect(harness.storeLast(applied).contains(.readForDigest(offsetBytes: 0, lengthBytes: 4096)))
    }
}
