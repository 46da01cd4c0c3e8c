// A staged catch-up on the secondary (SecondaryNode+Staging): the decisions, driven as the
// daemon drives them. The copy stays Consistent while the catch-up is written to the journal,
// commits it with a durable record before anything touches the volume, applies it, and only
// then writes the stream in place; a catch-up larger than the journal is committed as far as
// it got, marked Inconsistent, and goes on in place.
import TandemCore
import Testing

private struct StagingHarness {
    static let sizeBytes: UInt64 = 1 << 20
    static let recordBytes: UInt64 = 8192  // a 4 KiB write: header and payload
    var node: SecondaryNode
    let nowNs: UInt64 = 1_000_000

    init(record: ReplicationRecord, handedOver: Bool = true, cleanStop: Bool = false, stagingBytesMax: UInt64 = 64 << 10) {
        let machine = ReplicationSecondaryConfig(queuedBytesMax: 256 << 20, groupCommitIntervalNs: 1_000_000_000)
        let config = SecondaryNodeConfig(
            machine: machine, resourceName: "r1", nodeName: "beta", peerName: "alpha",
            volumeSizeBytes: Self.sizeBytes, alignment: 4096, initialSync: .full, stagingBytesMax: stagingBytesMax)
        node = SecondaryNode(config: config, record: record, handedOver: handedOver, cleanStop: cleanStop, nowNs: nowNs)
    }

    @discardableResult
    mutating func send(_ event: SecondaryNodeEvent) -> [SecondaryNodeAction] {
        var actions: [SecondaryNodeAction] = []
        node.handle(event, nowNs: nowNs, into: &actions)
        return actions
    }

    /// A catch-up session `session` from the base (5, 3) (or a full copy).
    @discardableResult
    mutating func connectCatchUp(session: UInt64, fullCopy: Bool = false) -> [SecondaryNodeAction] {
        connect(session: session, history: fullCopy ? [0, 0, 0, 0] : [5, 3, 0, 0])
    }

    /// A primary's session `session` whose generation history is `history`.
    @discardableResult
    mutating func connect(session: UInt64, history: [UInt64]) -> [SecondaryNodeAction] {
        let facts = PrimaryHelloFacts(
            hello: WireHello(role: .primary, nodeName: "alpha", resourceName: "r1", volumeSizeBytes: Self.sizeBytes,
                             generations: WireGenerations(current: session, bitmap: 0, history: history),
                             promotionNumber: 0),
            certificateNamesPeer: true, certificateSubject: "CN=alpha")
        let accepted = send(.hello(facts))
        #expect(accepted.last == .acceptLink)
        return accepted + send(.linkEstablished)
    }

    @discardableResult
    mutating func data(_ sequence: WriteSequence, epoch: Epoch, block: UInt64) -> [SecondaryNodeAction] {
        send(.data(DataMessage(epoch: epoch, sequence: sequence, offsetBytes: block * 4096, lengthBytes: 4096,
                               flags: [.acknowledgedAfterApply])))
    }

    /// The record the node asked to store last, as the store reports it stable.
    mutating func storeLast(_ actions: [SecondaryNodeAction]) -> [SecondaryNodeAction] {
        guard let record = recordsOf(actions).last else { Issue.record("no record in \(actions)"); return [] }
        return send(.recorded(record))
    }
}

private func recordsOf(_ actions: [SecondaryNodeAction]) -> [ReplicationRecord] {
    actions.compactMap {
        switch $0 {
        case .writeRecord(let record), .commitStaging(let record): record
        default: nil
        }
    }
}

private func staged(_ actions: [SecondaryNodeAction]) -> [UInt64] {
    actions.compactMap { if case .stageWrite(_, let offset) = $0 { offset } else { nil } }
}

private func inPlace(_ actions: [SecondaryNodeAction]) -> [WriteSequence] {
    actions.compactMap { if case .submitWrite(let write) = $0 { write.sequence } else { nil } }
}

/// A synced copy of session 5, durable through epoch 3, handed over (consistent).
private let syncedRecord = ReplicationRecord(generation: 4, session: 5, durableThroughEpoch: 3, synced: true)

@Suite struct SecondaryNodeStagingTests {
    @Test func aCatchUpIsStagedAndTheCopyStaysConsistentUntilTheJournalIsApplied() {
        var harness = StagingHarness(record: syncedRecord)
        let up = harness.connectCatchUp(session: 9)
        #expect(up.contains(.send(.hello(durableThroughEpoch: 0, copy: .consistent))), "\(up)")
        #expect(harness.node.diskState == .consistent)
        let first = harness.data(1, epoch: 1, block: 0)
        #expect(first.contains(.beginStaging(session: 9, journalBytes: 0)))
        let record = recordsOf(first).last
        #expect(record?.staging == StagedCatchUp(session: 9, fromSession: 5, fromDurableEpoch: 3, fromContinuedFrom: 0))
        #expect(record?.synced == false && record?.session == 9)
        #expect(staged(first).isEmpty && inPlace(first).isEmpty)  // the record first
        #expect(staged(harness.storeLast(first)) == [0])
        #expect(staged(harness.data(2, epoch: 1, block: 1)) == [StagingHarness.recordBytes])
        harness.send(.writeCompleted(sequence: 1, errno: 0))
        harness.send(.writeCompleted(sequence: 2, errno: 0))
        // The machine's flush is the journal's; the durable record claims both records.
        let flush = harness.send(.message(.flushRequest(throughEpoch: 1)))
        #expect(flush.contains(.flushStaging) && !flush.contains(.submitFlush), "\(flush)")
        let durable = harness.send(.flushCompleted(errno: 0))
        #expect(recordsOf(durable).last?.staging?.journalBytes == 2 * StagingHarness.recordBytes)
        harness.storeLast(durable)
        #expect(harness.node.diskState == .consistent && harness.node.streamState == .syncTarget)

        // SyncComplete: commit (journal durable, then the record), nothing in place before it.
        let complete = harness.send(.syncComplete(through: 2))
        guard case .commitStaging(let committed)? = complete.last else { Issue.record("no commit: \(complete)"); return }
        #expect(committed.staging?.committed == true && committed.staging?.journalBytes == 2 * StagingHarness.recordBytes)
        #expect(committed.synced)
        #expect(harness.node.diskState == .consistent, "UpToDate only once applied")
        let during = harness.data(3, epoch: 2, block: 0)  // the stream goes on: held
        #expect(staged(during).isEmpty && inPlace(during).isEmpty)
        let apply = harness.send(.recorded(committed))
        #expect(apply == [.applyStaging(journalBytes: 2 * StagingHarness.recordBytes)])
        let applied = harness.send(.stagingApplied(errno: 0))
        #expect(applied.contains(.notice(.stagingApplied(bytes: 2 * StagingHarness.recordBytes))))
        #expect(recordsOf(applied).last?.staging == nil && recordsOf(applied).last?.synced == true)
        #expect(inPlace(applied).isEmpty, "the held write waits for the record that forgets the journal")
        let forgotten = harness.storeLast(applied)
        #expect(inPlace(forgotten) == [3])
        #expect(!harness.node.isStaging)
        #expect(harness.node.diskState == .upToDate)
        // CaughtUp (protocol 7) only now that the catch-up is on the volume and the journal
        // forgotten: a periodic primary completes its cycle on it.
        let caughtUp = SecondaryNodeAction.sendCaughtUp(session: 9)
        #expect(!complete.contains(caughtUp) && !apply.contains(caughtUp) && !applied.contains(caughtUp))
        #expect(forgotten.contains(caughtUp))
    }

    /// A copy restarted after a clean stop (a `disable` and `enable`, a daemon restart) whose
    /// catch-up it stages says `consistent` in its ReplicaHello, as it reports itself: the
    /// writes re-sent to it go to the journal, not to its image, so the primary must not show
    /// it `Inconsistent` while the catch-up runs. Without a journal it says `inconsistent`
    /// (the re-sent writes land in place until ResendComplete).
    @Test func aCleanlyStoppedCopyThatStagesItsCatchUpSaysConsistentInItsHello() {
        var staging = StagingHarness(record: syncedRecord, handedOver: false, cleanStop: true)
        let up = staging.connectCatchUp(session: 9)
        #expect(up.contains(.send(.hello(durableThroughEpoch: 0, copy: .consistent))), "\(up)")
        #expect(staging.node.diskState == .consistent)
        var inPlace = StagingHarness(record: syncedRecord, handedOver: false, cleanStop: true, stagingBytesMax: 0)
        let upInPlace = inPlace.connectCatchUp(session: 9)
        #expect(upInPlace.contains(.send(.hello(durableThroughEpoch: 0, copy: .inconsistent))), "\(upInPlace)")
    }

    /// `consistent_as_of`: the image before the catch-up while staged, the catch-up's session
    /// from the commit record on, and none once a catch-up goes in place.
    @Test func consistentAsOfIsTheImageBeforeTheCatchUpUntilTheCommit() {
        var harness = StagingHarness(record: syncedRecord)
        #expect(harness.node.consistentAsOf == ConsistentPoint(session: 5, epoch: 3))
        harness.connectCatchUp(session: 9)
        harness.storeLast(harness.data(1, epoch: 1, block: 0))
        harness.send(.writeCompleted(sequence: 1, errno: 0))
        harness.send(.message(.flushRequest(throughEpoch: 1)))
        harness.storeLast(harness.send(.flushCompleted(errno: 0)))
        // Durable through epoch 1 of session 9 in the journal; the volume still holds (5, 3).
        #expect(harness.node.consistentAsOf == ConsistentPoint(session: 5, epoch: 3))
        let complete = harness.send(.syncComplete(through: 1))
        #expect(harness.node.consistentAsOf == ConsistentPoint(session: 5, epoch: 3), "not committed yet")
        guard case .commitStaging(let committed)? = complete.last else { Issue.record("no commit: \(complete)"); return }
        harness.send(.recorded(committed))
        #expect(harness.node.consistentAsOf == ConsistentPoint(session: 9, epoch: 1), "a crash replays the journal")
        harness.storeLast(harness.send(.stagingApplied(errno: 0)))
        #expect(harness.node.consistentAsOf == ConsistentPoint(session: 9, epoch: 1))

        var small = StagingHarness(record: syncedRecord, stagingBytesMax: StagingHarness.recordBytes)
        small.connectCatchUp(session: 9)
        small.storeLast(small.data(1, epoch: 1, block: 0))
        small.data(2, epoch: 1, block: 1)  // no room: in place from here
        #expect(small.node.consistentAsOf == nil)
    }

    @Test func aCatchUpLargerThanTheJournalIsCommittedInconsistentAndGoesOnInPlace() {
        var harness = StagingHarness(record: syncedRecord, stagingBytesMax: 2 * StagingHarness.recordBytes)
        harness.connectCatchUp(session: 9)
        harness.storeLast(harness.data(1, epoch: 1, block: 0))
        #expect(staged(harness.data(2, epoch: 1, block: 1)) == [StagingHarness.recordBytes])
        let full = harness.data(3, epoch: 1, block: 2)
        #expect(full.contains(.notice(.catchUpInconsistent(stagedBytes: 2 * StagingHarness.recordBytes,
                                                           writeBytes: StagingHarness.recordBytes,
                                                           stagingBytesMax: 2 * StagingHarness.recordBytes))), "\(full)")
        #expect(staged(full).isEmpty && inPlace(full).isEmpty)
        #expect(harness.node.diskState == .inconsistent)
        harness.send(.writeCompleted(sequence: 1, errno: 0))
        let drained = harness.send(.writeCompleted(sequence: 2, errno: 0))
        guard case .commitStaging(let committed)? = drained.last else { Issue.record("no commit: \(drained)"); return }
        #expect(committed.staging?.committed == true && !committed.synced)
        #expect(harness.send(.recorded(committed)) == [.applyStaging(journalBytes: 2 * StagingHarness.recordBytes)])
        let applied = harness.send(.stagingApplied(errno: 0))
        #expect(inPlace(harness.storeLast(applied)) == [3])
        #expect(harness.node.diskState == .inconsistent && harness.node.streamState == .syncTarget)
        harness.send(.writeCompleted(sequence: 3, errno: 0))
        harness.send(.syncComplete(through: 3))
        #expect(harness.node.diskState == .upToDate || harness.node.diskState == .consistent)
    }

    @Test func aCopyThatIsNotConsistentOrAFullCopyIsNeverStaged() {
        // Restarted without a hand-over: its volume may hold unflushed writes in any order.
        var restarted = StagingHarness(record: syncedRecord, handedOver: false)
        restarted.connectCatchUp(session: 9)
        let first = restarted.data(1, epoch: 1, block: 0)
        #expect(recordsOf(first).last?.staging == nil && !first.contains(where: { if case .beginStaging = $0 { true } else { false } }))
        #expect(inPlace(restarted.storeLast(first)) == [1])
        // A full copy has no earlier image to keep; staging off never stages.
        var full = StagingHarness(record: syncedRecord)
        full.connectCatchUp(session: 9, fullCopy: true)
        #expect(recordsOf(full.data(1, epoch: 1, block: 0)).last?.staging == nil)
        var off = StagingHarness(record: syncedRecord, stagingBytesMax: 0)
        off.connectCatchUp(session: 9)
        #expect(recordsOf(off.data(1, epoch: 1, block: 0)).last?.staging == nil)
    }

    @Test func aFullCopyDropsAnUncommittedJournalAndANextCatchUpContinuesIt() {
        var stagedRecord = syncedRecord
        stagedRecord.session = 9
        stagedRecord.durableThroughEpoch = 1
        stagedRecord.synced = false
        stagedRecord.staging = StagedCatchUp(session: 9, journalBytes: 3 * StagingHarness.recordBytes, fromSession: 5,
                                             fromDurableEpoch: 3, fromContinuedFrom: 0)
        // Restarted mid-catch-up: still Consistent (the volume was not written).
        var resumed = StagingHarness(record: stagedRecord, handedOver: false)
        #expect(resumed.node.isStaging && resumed.node.stagedBytes == 3 * StagingHarness.recordBytes)
        // A catch-up from (9, 1) continues the journal after its durable part.
        resumed.connect(session: 11, history: [9, 1, 0, 0])
        #expect(resumed.node.diskState == .consistent)
        let first = resumed.data(1, epoch: 1, block: 0)
        #expect(first.contains(.beginStaging(session: 9, journalBytes: 3 * StagingHarness.recordBytes)))
        #expect(recordsOf(first).last?.staging?.session == 9 && recordsOf(first).last?.session == 11)
        #expect(staged(resumed.storeLast(first)) == [3 * StagingHarness.recordBytes])

        var replaced = StagingHarness(record: stagedRecord)
        replaced.connectCatchUp(session: 12, fullCopy: true)
        #expect(replaced.node.diskState == .inconsistent)
        let copy = replaced.data(1, epoch: 1, block: 0)
        #expect(recordsOf(copy).last?.staging == nil)
        #expect(inPlace(replaced.storeLast(copy)) == [1])
    }

    /// A planned failover whose primary demotes while the commit runs is answered only once
    /// the journal is on the volume: the promotion must not drop a catch-up it was handed.
    @Test func aPlannedFailoverWaitsForTheCommitToBeApplied() {
        var harness = StagingHarness(record: syncedRecord)
        harness.connectCatchUp(session: 9)
        harness.storeLast(harness.data(1, epoch: 1, block: 0))
        #expect(harness.send(.requestFailover) == [.sendFailoverRequest])
        harness.send(.writeCompleted(sequence: 1, errno: 0))
        let complete = harness.send(.syncComplete(through: 1))
        guard case .commitStaging(let committed)? = complete.last else { Issue.record("no commit: \(complete)"); return }
        #expect(!harness.send(.demoted).contains(.failoverAnswered(demoted: true)))
        harness.send(.recorded(committed))
        let applied = harness.send(.stagingApplied(errno: 0))
        #expect(!applied.contains(.failoverAnswered(demoted: true)))
        #expect(harness.storeLast(applied).contains(.failoverAnswered(demoted: true)))
    }

    /// A promotion that stops the node after SyncComplete, with a staged write still in
    /// flight, still gets the commit record: the promotion then applies the journal instead of
    /// dropping a catch-up the primary already called UpToDate.
    @Test func aStopAfterSyncCompleteStillCommitsTheJournal() {
        var harness = StagingHarness(record: syncedRecord)
        harness.connectCatchUp(session: 9)
        harness.storeLast(harness.data(1, epoch: 1, block: 0))
        let complete = harness.send(.syncComplete(through: 1))
        #expect(!complete.contains { if case .commitStaging = $0 { true } else { false } }, "write 1 is in flight")
        harness.send(.stop)
        let drained = harness.send(.writeCompleted(sequence: 1, errno: 0))
        guard case .commitStaging(let committed)? = drained.last else { Issue.record("no commit after the stop: \(drained)"); return }
        #expect(committed.staging?.committed == true)
        // Stopping: the apply is the promotion's (a replay), not the node's.
        #expect(harness.send(.recorded(committed)).isEmpty)
        guard case .replay? = Optional(StagingSettlement.decide(record: committed, promoting: true)) else {
            Issue.record("the promotion does not replay the committed journal")
            return
        }
    }

    @Test func aSettlementReplaysACommittedJournalAndAPromotionDropsAnUncommittedOne() {
        var record = ReplicationRecord(generation: 8, session: 9, durableThroughEpoch: 4, synced: false)
        record.staging = StagedCatchUp(session: 9, journalBytes: 4096 * 6, fromSession: 5, fromDurableEpoch: 3,
                                       fromContinuedFrom: 2)
        #expect(StagingSettlement.decide(record: record, promoting: false) == .resume(journalBytes: 4096 * 6))
        guard case .discard(let restored) = StagingSettlement.decide(record: record, promoting: true) else {
            Issue.record("a promotion keeps an uncommitted journal")
            return
        }
        #expect(restored.staging == nil && restored.session == 5 && restored.durableThroughEpoch == 3)
        #expect(restored.continuedFrom == 2 && restored.synced && restored.generation == 9)
        record.staging?.committed = true
        record.synced = true
        for promoting in [false, true] {
            guard case .replay(let bytes, let cleared) = StagingSettlement.decide(record: record, promoting: promoting) else {
                Issue.record("a committed journal is not replayed (promoting \(promoting))")
                return
            }
            #expect(bytes == 4096 * 6 && cleared.staging == nil && cleared.session == 9 && cleared.synced)
        }
        #expect(StagingSettlement.decide(record: syncedRecord, promoting: true) == .none)
    }

    @Test func aJournalRecordIsProvenOnlyWhereAndForTheJournalItWasWritten() {
        let record = StagingJournalRecord(stagingSession: 9, journalOffsetBytes: 8192, sequence: 4, epoch: 2,
                                          volumeOffsetBytes: 65536, lengthBytes: 512, payloadCRC: 0xDEAD_BEEF)
        #expect(record.recordBytes == 8192)
        var bytes = record.encode()
        #expect(StagingJournalRecord.decode(bytes, stagingSession: 9, journalOffsetBytes: 8192) == .success(record))
        #expect(StagingJournalRecord.decode(bytes, stagingSession: 10, journalOffsetBytes: 8192) == .failure(.otherJournal(session: 9)))
        #expect(StagingJournalRecord.decode(bytes, stagingSession: 9, journalOffsetBytes: 0) == .failure(.misplaced(claimedOffset: 8192)))
        bytes[40] ^= 1
        #expect(StagingJournalRecord.decode(bytes, stagingSession: 9, journalOffsetBytes: 8192) == .failure(.checksumMismatch))
        #expect(StagingJournalRecord.decode([UInt8](repeating: 0, count: 4096), stagingSession: 9, journalOffsetBytes: 0)
            == .failure(.badMagic))
    }

    @Test func theSuperblockCarriesTheStagedCatchUp() throws {
        var superblock = MetadataSuperblock(resourceName: "r1", volumeSizeBytes: 1 << 20)
        superblock.sequence = 3
        var record = ReplicationRecord(generation: 2, session: 9, durableThroughEpoch: 1)
        record.staging = StagedCatchUp(session: 9, journalBytes: 16384, committed: true, fromSession: 5,
                                       fromDurableEpoch: 3, fromContinuedFrom: 4)
        superblock.record = record
        let decoded = try MetadataSuperblockCodec.decode(MetadataSuperblockCodec.encode(superblock)).get()
        #expect(decoded.record == record)
        #expect(decoded.flags.contains(.stagedCommitted))
        // A committed flag without a staging session is refused, never guessed.
        var broken = superblock
        broken.stagingSession = 0
        #expect(throws: (any Error).self) { try MetadataSuperblockCodec.decode(MetadataSuperblockCodec.encode(broken)).get() }
    }

    /// Seed 18 of the node simulator: a crash restart's digest compare against a copy that
    /// resumes a journal of an earlier session. The journal's records are not on the volume,
    /// and the primary may have lost them in its crash: a digest of the volume would agree
    /// with the primary's and clear the region, and the commit would then write the lost
    /// write onto it. Every region is answered `unvouched` until that journal is committed;
    /// a journal the current session began is read from the volume as before.
    @Test func aResumedJournalOfAnEarlierSessionVouchesForNoRegion() {
        let asked = SecondaryNodeEvent.digestRequested(offsetBytes: 0, lengthBytes: 4096)
        let unvouched = SecondaryNodeAction.sendDigest(offsetBytes: 0, lengthBytes: 4096, digest: .unvouched)
        // The same process: session 9 stages block 0, its link drops, session 11 resumes.
        var harness = StagingHarness(record: syncedRecord)
        harness.connectCatchUp(session: 9)
        harness.storeLast(harness.data(1, epoch: 1, block: 0))
        harness.send(.writeCompleted(sequence: 1, errno: 0))
        #expect(harness.send(asked) == [.flushForDigests], "the link's first digest read waits for a volume flush")
        #expect(harness.send(.digestFlushCompleted(errno: 0)) == [.readForDigest(offsetBytes: 0, lengthBytes: 4096)])
        harness.send(.digestRead(offsetBytes: 0, lengthBytes: 4096, digest: RegionDigest(high: 1, low: 2), errno: 0))
        harness.send(.linkClosed)
        harness.connect(session: 11, history: [9, 0, 0, 0])
        #expect(harness.node.isStaging && harness.node.stagedBytes == StagingHarness.recordBytes)
        // Before the new session's first Data (the compare asks before the copy) and after it.
        #expect(harness.send(asked) == [unvouched])
        let first = harness.data(1, epoch: 1, block: 1)
        #expect(first.contains(.beginStaging(session: 9, journalBytes: StagingHarness.recordBytes)))
        _ = harness.storeLast(first)
        #expect(harness.send(asked) == [unvouched])

        // A restart: the journal of session 9 (three records) is resumed by session 11.
        var restartedRecord = syncedRecord
        (restartedRecord.session, restartedRecord.durableThroughEpoch, restartedRecord.synced) = (9, 1, false)
        restartedRecord.staging = StagedCatchUp(session: 9, journalBytes: 3 * StagingHarness.recordBytes, fromSession: 5,
                                                fromDurableEpoch: 3, fromContinuedFrom: 0)
        var restarted = StagingHarness(record: restartedRecord, handedOver: false)
        restarted.connect(session: 11, history: [9, 1, 0, 0])
        #expect(restarted.send(asked) == [unvouched])
    }

    /// A digest vouches that this copy holds the region: the primary clears the region's bits
    /// when it agrees and never sends it again. So what is read must be durable — writes of an
    /// earlier link (a crashed primary's last epoch, never completed and so never
    /// group-committed) may be only in a cache, and a power loss after "equal" would take one
    /// from this copy with nothing marking it. Each link's first digest read waits for a volume
    /// flush, later ones go at once, and a failed flush fails the disk and reads nothing. On
    /// the build before, the read went at once.
    @Test func aDigestIsReadOnlyOnceTheVolumeWasFlushedOnItsLink() {
        func ask(_ offset: UInt64) -> SecondaryNodeEvent { .digestRequested(offsetBytes: offset, lengthBytes: 4096) }
        func read(_ offset: UInt64) -> SecondaryNodeAction { .readForDigest(offsetBytes: offset, lengthBytes: 4096) }
        func answered(_ harness: inout StagingHarness, _ offsets: [UInt64]) {
            for offset in offsets {
                harness.send(.digestRead(offsetBytes: offset, lengthBytes: 4096, digest: RegionDigest(high: offset, low: 1), errno: 0))
            }
        }
        var harness = StagingHarness(record: syncedRecord)
        harness.connectCatchUp(session: 9)
        #expect(harness.send(ask(0)) == [.flushForDigests])
        #expect(harness.send(ask(4096)).isEmpty, "one flush for the reads asked while it runs")
        #expect(harness.send(.digestFlushCompleted(errno: 0)) == [read(0), read(4096)])
        #expect(harness.send(ask(8192)) == [read(8192)], "after it, at once")
        answered(&harness, [0, 4096, 8192])

        harness.send(.linkClosed)
        harness.connectCatchUp(session: 9)
        #expect(harness.send(ask(0)) == [.flushForDigests], "a new link flushes again")
        // A flush submitted on a link that ended does not count for the next one.
        harness.send(.linkClosed)
        harness.connectCatchUp(session: 9)
        #expect(harness.send(ask(0)).isEmpty)
        #expect(harness.send(.digestFlushCompleted(errno: 0)) == [.flushForDigests])
        let failed = harness.send(.digestFlushCompleted(errno: 5))
        #expect(failed.contains(.notice(.diskError(SecondaryDiskFault(operation: "flush", errno: 5)))), "\(failed)")
        #expect(!failed.contains(read(0)), "nothing is vouched for after a failed flush")
    }
}
