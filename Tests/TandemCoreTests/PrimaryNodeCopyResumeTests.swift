// A crash during a full copy resumes it (issue 13 §4; PrimaryNode+CopyCheckpoint): the copy's
// bitmap pages are written whole once, all set, before a transaction counts them with the
// copy's bases; the pages of the chunks the peer confirmed are written clear every
// `copyCheckpointBytes`, the unconfirmed chunks still set; and the secondary takes the resumed
// copy only from its own record of the copy's session, staying Inconsistent. On the code before
// it, a full copy wrote no page and its transactions named no bases: a crash copied it all again.
import TandemCore
import Testing

/// A full copy of a 160 MiB volume (two bitmap pages at 4 KiB blocks) in 1 MiB chunks, four at
/// once, with an activity log and a checkpoint every 2 MiB confirmed.
private struct CopyHarness {
    static let volumeBytes: UInt64 = 160 << 20
    var node: PrimaryNode
    var actions: [PrimaryNodeAction] = []

    init(fault: ActivityLogTestingFault? = nil) {
        var config = PrimaryNodeConfig(
            primary: ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 16 << 20),
            volumeSizeBytes: Self.volumeBytes, chunkBytes: 1 << 20, copyBuffersMax: 4,
            activityLog: ActivityLogSettings(extents: 2, extentBytes: 4 << 20, writeBytesMax: 1 << 20,
                                             lastTransaction: 10, testingFault: fault))
        config.copyCheckpointBytes = 2 << 20
        node = PrimaryNode(config: config, session: 77, basis: .fullCopy)
    }

    @discardableResult
    mutating func send(_ event: PrimaryNodeEvent) -> [PrimaryNodeAction] {
        actions.removeAll()
        node.handle(event, nowNs: 1_000_000_000, into: &actions)
        return actions
    }

    var pageWrite: (ticket: UInt64, pages: [Int]?, alsoSet: [BlockRun])? {
        for case let .persistBitmapPages(ticket, pages, alsoSet) in actions { return (ticket, pages, alsoSet) }
        return nil
    }

    var transaction: (number: UInt64, bases: [CatchUpBase], pagesCount: Bool)? {
        for case let .writeActivityLog(number, _, bases, _, pagesCount) in actions { return (number, bases, pagesCount) }
        return nil
    }

    var reads: [UInt64] {
        actions.compactMap { if case let .readCopyChunk(offset, _) = $0 { offset } else { nil } }
    }

    /// Enabled with the whole-volume page write and the transaction that counts it durable,
    /// then connected: the copy's first four chunks are being read.
    mutating func startCopy() {
        send(.enable)
        let whole = pageWrite
        #expect(whole?.pages == [0, 1] && whole?.alsoSet == [], "every page, all set, once: \(actions)")
        #expect(transaction.map { $0.bases.isEmpty && !$0.pagesCount } ?? true,
                "no transaction counts pages before they are written: \(actions)")
        send(.bitmapPagesPersisted(ticket: whole?.ticket ?? 0, errno: 0))
        let counting = transaction
        #expect(counting?.bases == [CatchUpBase(session: 77, durableThroughEpoch: 0)] && counting?.pagesCount == true,
                "the pages count from the copy's session: \(actions)")
        send(.activityLogWritten(transaction: counting?.number ?? 0, errno: 0))
        send(.linkUp)
        send(.peer(.hello(durableThroughEpoch: 0, copy: .inconsistent)))
        #expect(reads == [0, 1 << 20, 2 << 20, 3 << 20])
    }
}

extension CopyHarness {
    /// The first two chunks read, admitted and acknowledged by the peer (not yet durable), then
    /// the chunks at `offsets` read: admitted after an acknowledgement, they fall in a later
    /// epoch, so the peer can confirm the first two alone (through `firstTwoEpoch`: with four
    /// copy buffers the copy closes its epoch at every chunk, PrimaryNode+Copy).
    mutating func admitTwoAcknowledgedThen(_ offsets: [UInt64]) {
        for offset in [0, 1 << 20] as [UInt64] { send(.copyChunkRead(offsetBytes: offset, lengthBytes: 1 << 20, errno: 0)) }
        for sequence in [1, 2] as [WriteSequence] { send(.peer(.dataAck(sequence: sequence))) }
        for offset in offsets { send(.copyChunkRead(offsetBytes: offset, lengthBytes: 1 << 20, errno: 0)) }
    }

    static let firstTwoEpoch: Epoch = 2
}

@Suite struct PrimaryNodeCopyResumeTests {
    @Test func aFullCopyCountsItsPagesAndWritesTheConfirmedChunksClearWithTheUnconfirmedStillSet() {
        var h = CopyHarness()
        h.startCopy()
        h.admitTwoAcknowledgedThen([2 << 20, 3 << 20])
        #expect(h.pageWrite == nil, "nothing confirmed yet: no checkpoint")
        h.send(.peer(.durableThroughEpoch(CopyHarness.firstTwoEpoch)))
        let checkpoint = h.pageWrite
        #expect(checkpoint?.pages == [0], "the page of the confirmed chunks: \(h.actions)")
        // Chunks 3 and 4 (blocks 512–1023) are read, so their bits are clear in the bitmap, but
        // the peer has not confirmed them: the page keeps them set.
        let alsoSet = checkpoint?.alsoSet ?? []
        let kept = (UInt64(512)..<1024).allSatisfy { block in alsoSet.contains { $0.first <= block && block < $0.end } }
        #expect(kept, "the unconfirmed chunks stay set on disk: \(alsoSet)")
        #expect(!(checkpoint?.alsoSet.contains { $0.first < 512 } ?? true), "the confirmed ones go clear")
        #expect(h.node.outOfSyncBytes == CopyHarness.volumeBytes - (4 << 20))
        // One checkpoint write at a time; the next waits for more confirmed bytes.
        h.send(.bitmapPagesPersisted(ticket: checkpoint?.ticket ?? 0, errno: 0))
        #expect(h.pageWrite == nil)
    }

    /// The seeded fault the simulator's checker must catch: the checkpoint from the bitmap alone.
    @Test func theSeededFaultWritesTheUnconfirmedChunksClear() {
        var h = CopyHarness(fault: .copyCheckpointClearsUnconfirmedChunks)
        h.startCopy()
        h.admitTwoAcknowledgedThen([2 << 20])
        h.send(.peer(.durableThroughEpoch(CopyHarness.firstTwoEpoch)))
        #expect(h.pageWrite?.pages == [0] && h.pageWrite?.alsoSet == [])
    }

    /// The restart: the durable pages ∪ the log's extents, from the transaction's bases
    /// (PrimaryStart), and the peer's verdict on them.
    @Test func aRestartedCopyIsACatchUpThatOnlyTheCopysOwnTargetAccepts() {
        let bases = [CatchUpBase(session: 77, durableThroughEpoch: 3)]
        let start = PrimaryStart(PrimaryStartFacts(
            record: ReplicationRecord(generation: 4, primaryStarted: true), initialSync: .full,
            tracked: bases, trackedAfterCrash: true))
        #expect(start.basis == .catchUp(bases) && start.reason == .crashRecovery)
        let basis = SessionBasis.catchUp(bases)
        func verdict(session: UInt64, durable: Epoch, fresh: Bool = false) -> SecondarySessionVerdict {
            SecondarySessionVerdict.decide(recordSession: session, recordContinuedFrom: 0, recordSynced: false, fresh: fresh,
                                           recordDurableEpoch: durable, session: 91, basis: basis)
        }
        // The copy's target: its record of session 77, durable through 3 or later, unsynced.
        #expect(verdict(session: 77, durable: 3) == .newSession(synced: false, continuedFrom: 0),
                "accepted, and still not synced: Inconsistent until the resumed copy's SyncComplete")
        #expect(verdict(session: 77, durable: 9) == .newSession(synced: false, continuedFrom: 0))
        // Anything it cannot prove is refused (and the primary copies everything, saying why).
        for refused in [verdict(session: 77, durable: 2), verdict(session: 12, durable: 3), verdict(session: 77, durable: 3, fresh: true)] {
            guard case .refuse(let reason) = refused else {
                Issue.record("accepted a copy it cannot prove: \(refused)")
                continue
            }
            #expect(reason.contains("needs a full copy"), "\(reason)")
        }
        // An unsynced record never stages: the resumed copy writes in place, Inconsistent.
        #expect(!SecondaryNode.isSynced(record: ReplicationRecord(generation: 4, session: 77, durableThroughEpoch: 3),
                                        initialSync: .full))
    }

    /// The peer refuses the resumed copy: the whole volume is copied, the reason said, and its
    /// pages are written whole again before any transaction counts them.
    @Test func aRefusedContinuationCopiesTheWholeVolumeAndSaysWhy() {
        var tracked = DirtyBitmap(volumeSizeBytes: CopyHarness.volumeBytes, blockBytes: 4096)
        _ = tracked.setBlocks(BlockRun(first: 30_000, count: 10_960))
        var config = PrimaryNodeConfig(
            primary: ReplicationPrimaryConfig(mode: .async, bufferBytesMax: 16 << 20),
            volumeSizeBytes: CopyHarness.volumeBytes, chunkBytes: 1 << 20, copyBuffersMax: 4,
            activityLog: ActivityLogSettings(extents: 2, extentBytes: 4 << 20, writeBytesMax: 1 << 20, lastTransaction: 10))
        config.activityLog?.trackedPagesDurable = true
        var node = PrimaryNode(config: config, session: 91, basis: .catchUp([CatchUpBase(session: 77, durableThroughEpoch: 3)]),
                               trackedBitmap: tracked)
        var actions: [PrimaryNodeAction] = []
        node.handle(.enable, nowNs: 1, into: &actions)
        #expect(node.outOfSyncBytes == 10_960 * 4096, "only what the pages still mark")
        actions.removeAll()
        let reason = "this copy holds session 12 through epoch 0, Inconsistent, which the primary's bitmap does not cover: it needs a full copy"
        node.handle(.linkDown(reason: reason, refusal: .unrelatedData), nowNs: 2, into: &actions)
        #expect(actions.contains(.notice(.fullCopyStarted(reason: reason))), "\(actions)")
        #expect(node.outOfSyncBytes == CopyHarness.volumeBytes)
        let whole = actions.compactMap { if case let .persistBitmapPages(_, pages, _) = $0 { pages } else { nil } }
        #expect(whole == [[0, 1]], "every page again, all set: \(actions)")
    }
}
