// PrimaryNode going Ahead (tracking the regions its peer lacks instead of blocking) and the
// catch-up session after it: the decisions, checked on the actions the node emits.
import TandemCore
import Testing

/// A node and the actions of its last event (4 KiB bitmap blocks, 1 MiB chunks). Shared with
/// PrimaryNodeFencedStopTests.
struct AheadHarness {
    var node: PrimaryNode
    var actions: [PrimaryNodeAction] = []
    var nowNs: UInt64 = 1_000_000_000

    init(mode: ReplicationAckMode = .async, tracksWithoutPeer: Bool = false, bufferBytes: UInt64 = 4 << 20,
         volumeBytes: UInt64 = 64 << 20, basis: SessionBasis = .continues(from: 5)) {
        node = PrimaryNode(
            config: PrimaryNodeConfig(
                primary: ReplicationPrimaryConfig(mode: mode, bufferBytesMax: bufferBytes),
                volumeSizeBytes: volumeBytes, syncTracksWithoutPeer: tracksWithoutPeer),
            session: 77, basis: basis)
    }

    @discardableResult
    mutating func send(_ event: PrimaryNodeEvent) -> [PrimaryNodeAction] {
        actions.removeAll()
        node.handle(event, nowNs: nowNs, into: &actions)
        return actions
    }

    mutating func connect() {
        send(.enable)
        send(.linkUp)
        send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
    }

    var localWrites: [LocalWrite] {
        actions.compactMap { if case let .writeLocal(write) = $0 { return write } else { return nil } }
    }

    var reads: [(UInt64, UInt32)] {
        actions.compactMap { if case let .readCopyChunk(offset, length) = $0 { return (offset, length) } else { return nil } }
    }

    func answered(_ id: RequestID) -> Int32? {
        actions.lazy.compactMap { if case let .answer(answered, errno) = $0, answered == id { return errno } else { return nil } }.first
    }

    var wentAhead: Bool {
        actions.contains { if case .notice(.ahead) = $0 { return true } else { return false } }
    }

    /// Writes `count` 1 MiB requests at `offset`, each completed locally.
    mutating func writeAndComplete(_ id: RequestID, offsetBytes: UInt64, lengthBytes: UInt32 = 1 << 20) {
        send(.request(id: id, .write(offsetBytes: offsetBytes, lengthBytes: lengthBytes, fua: false)))
        for write in localWrites { send(.localWriteDone(sequence: write.sequence, errno: 0)) }
    }

    /// Ticks until the node dials; returns the Hello's session and basis.
    mutating func redial() -> (UInt64, SessionBasis) {
        nowNs += 10_000_000_000
        send(.tick)
        #expect(actions.contains(.dial))
        return (node.helloSession, node.helloBasis)
    }
}

@Suite struct PrimaryNodeAheadTests {
    @Test func anAsyncPrimaryWhoseBufferOverflowsGoesAheadAndAcknowledgesLocally() {
        var h = AheadHarness()
        h.connect()
        h.send(.linkDown(reason: "cut", refusal: nil))
        // Four 1 MiB writes fill the 4 MiB buffer: they wait for the peer to come back.
        for id in 1...4 { h.writeAndComplete(RequestID(id), offsetBytes: UInt64(id) << 20) }
        #expect(!h.node.isAhead && h.node.primary.unconfirmedBytes == 4 << 20)
        // The fifth finds no room: the node goes Ahead instead of making it wait.
        h.send(.request(id: 5, .write(offsetBytes: 32 << 20, lengthBytes: 4096, fua: false)))
        #expect(h.wentAhead && h.node.isAhead && h.node.streamState == .ahead)
        #expect(h.node.primary.isTracking && h.node.primary.unconfirmedBytes == 0)
        #expect(h.localWrites.count == 1, "the waiting write is admitted at once")
        #expect(h.actions.contains(.release(throughSequence: 4)), "held payloads are freed: the bitmap stands for them")
        h.send(.localWriteDone(sequence: h.localWrites[0].sequence, errno: 0))
        #expect(h.answered(5) == 0)
        // Every region the peer lacks is dirty: the four held writes and the fifth.
        #expect(h.node.outOfSyncBytes == (4 << 20) + 4096)
        #expect(h.node.bitmap.anySet(offsetBytes: 32 << 20, lengthBytes: 4096))
        #expect(h.node.lagBytes == h.node.outOfSyncBytes && !h.node.isCleanForStop)
        #expect(h.node.peerDiskState == .outdated, "the peer was heard and lacks writes")
    }

    @Test func aSyncPrimaryWithFencingDontCareGoesAheadWhenItsLinkGoes() {
        var h = AheadHarness(mode: .sync, tracksWithoutPeer: true)
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        h.send(.localWriteDone(sequence: 1, errno: 0))
        #expect(h.answered(1) == nil, "sync: waits for the peer while the link is up")
        h.send(.linkDown(reason: "cut", refusal: nil))
        #expect(h.wentAhead && h.answered(1) == 0, "the link gone, the write is answered on this copy alone")
        #expect(h.node.bitmap.isSet(block: 2))
        h.send(.request(id: 2, .flush))
        h.send(.localFlushDone(errno: 0))
        #expect(h.answered(2) == 0, "a FLUSH no longer waits for the peer either")
    }

    /// The "B stays 0" hole: a write in flight at the cut (nothing acknowledged unconfirmed, so
    /// the link's loss moved no B) and answered alone after it is a write the peer will not get.
    /// The node says so before the answer (the driver moves B first), once per link loss; a
    /// write acknowledged with the link up says nothing.
    @Test func aWriteAcknowledgedAloneAfterTheCutIsNoticedBeforeItsAnswerOncePerLoss() {
        func noticed(_ actions: [PrimaryNodeAction]) -> Int? {
            actions.firstIndex(of: .notice(.acknowledgedWithoutPeer))
        }
        func answer(_ actions: [PrimaryNodeAction], _ id: RequestID) -> Int? {
            actions.firstIndex { if case .answer(id, 0) = $0 { return true } else { return false } }
        }
        var h = AheadHarness(mode: .async)
        h.connect()
        // Admitted and sent, its local write still running when the link goes: lag 0 at the cut.
        h.send(.request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        let inFlight = h.localWrites
        #expect(inFlight.count == 1)
        h.send(.linkDown(reason: "cut", refusal: nil))
        #expect(h.node.lagBytes == 0 && noticed(h.actions) == nil)
        h.send(.localWriteDone(sequence: inFlight[0].sequence, errno: 0))
        let notice = noticed(h.actions)
        let answered = answer(h.actions, 2)
        #expect(notice != nil && answered != nil && notice! < answered!, "the notice precedes the answer: \(h.actions)")
        h.writeAndComplete(3, offsetBytes: 16384, lengthBytes: 4096)
        #expect(h.answered(3) == 0 && noticed(h.actions) == nil, "once per link loss")
        _ = h.redial()
        h.send(.linkUp)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        h.writeAndComplete(4, offsetBytes: 32768, lengthBytes: 4096)
        #expect(h.answered(4) == 0 && noticed(h.actions) == nil, "acknowledged with the link up")
        h.send(.linkDown(reason: "cut again", refusal: nil))
        h.writeAndComplete(5, offsetBytes: 65536, lengthBytes: 4096)
        #expect(h.answered(5) == 0 && noticed(h.actions) != nil, "said again after the next loss")
    }

    /// Issue 14: `changed bytes` count the writes a link's loss leaves unacknowledged. An async
    /// write whose local write still runs at the cut and one queued behind it (it overlaps)
    /// are in no lag yet; both are counted, and a sync dont-care loss, which goes Ahead, counts
    /// its held write in the lag (the bitmap) and not again here.
    @Test func theWritesALinksLossLeavesUnacknowledgedAreCountedOnce() {
        var h = AheadHarness(mode: .async)
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        let inFlight = h.localWrites
        h.send(.request(id: 2, .write(offsetBytes: 8192, lengthBytes: 8192, fua: false)))  // overlaps 1: queued
        h.send(.linkDown(reason: "cut", refusal: nil))
        #expect(h.node.lagBytes == 0 && h.node.unacknowledgedBytes == 4096 + 8192)
        h.send(.localWriteDone(sequence: inFlight[0].sequence, errno: 0))
        #expect(h.answered(1) == 0 && h.node.lagBytes == 4096 && h.node.unacknowledgedBytes == 8192)
        for write in h.localWrites { h.send(.localWriteDone(sequence: write.sequence, errno: 0)) }
        #expect(h.answered(2) == 0 && h.node.lagBytes == 4096 + 8192 && h.node.unacknowledgedBytes == 0)

        var tracked = AheadHarness(mode: .sync, tracksWithoutPeer: true)
        tracked.connect()
        tracked.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        tracked.send(.linkDown(reason: "cut", refusal: nil))
        #expect(tracked.node.isAhead && tracked.node.lagBytes == 4096 && tracked.node.unacknowledgedBytes == 0)
    }

    /// A peer that stages the catch-up keeps the base's image until its journal commits: what
    /// it confirmed of the copy and of the stream is still lag (what a failover would lose).
    /// With `lag_bytes` as the larger of the dirty regions and the unconfirmed acknowledged
    /// writes, this read 0 once the copy's chunks were sent (tandem-bench's truth check of a
    /// periodic cycle lost more than the reported lag).
    @Test func aPeerThatStagesTheCatchUpLacksEverythingTheSessionMovedUntilTheCopyIsDone() {
        var h = AheadHarness(mode: .sync, tracksWithoutPeer: true, bufferBytes: 16 << 20)
        h.connect()
        h.send(.linkDown(reason: "cut", refusal: nil))
        for id in 1...5 { h.writeAndComplete(RequestID(id), offsetBytes: UInt64(id) << 20) }
        #expect(h.node.isAhead && h.node.outOfSyncBytes == 5 << 20 && h.node.lagBytes == 5 << 20)
        _ = h.redial()
        h.send(.linkUp)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        #expect(h.node.peerDiskState == .consistent, "the peer stages the catch-up")
        // The dirty regions are read and sent as chunks, a few in flight at a time; the peer
        // confirms each applied — to its journal, not its volume.
        var reads = h.reads
        var sentChunks = 0
        var ackedChunks = 0
        while !reads.isEmpty || ackedChunks < sentChunks {
            if let (offset, length) = reads.first {
                reads.removeFirst()
                h.send(.copyChunkRead(offsetBytes: offset, lengthBytes: length, errno: 0))
                sentChunks += 1
                #expect(h.node.lagBytes == 5 << 20, "what was sent is not in the peer's image either")
            } else {
                while ackedChunks < sentChunks {
                    ackedChunks += 1
                    h.send(.peer(.dataAck(sequence: WriteSequence(UInt64(ackedChunks)))))
                }
                h.send(.peer(.durableThroughEpoch(h.node.primary.openEpoch)))
                if h.node.copyWanted {
                    #expect(h.node.peerDiskState == .consistent)
                    #expect(h.node.lagBytes == 5 << 20, "durable in the journal is not in the image")
                }
                reads += h.reads
                h.nowNs += 10_000_000  // the copy's pacer reads the next chunks on a tick
                h.send(.tick)
            }
            reads += h.reads
        }
        #expect(sentChunks == 5 && h.node.outOfSyncBytes == 0)
    }

    @Test func theCatchUpSessionCopiesOnlyTheDirtyRegionsThenStreams() {
        var h = AheadHarness(mode: .sync, tracksWithoutPeer: true)
        h.connect()
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.writeAndComplete(1, offsetBytes: 1 << 20, lengthBytes: 8192)
        #expect(h.node.isAhead)
        h.writeAndComplete(2, offsetBytes: 40 << 20, lengthBytes: 4096)
        #expect(h.node.outOfSyncBytes == 12288)
        let (session, basis) = h.redial()
        #expect(session != 77 && h.node.session == 77, "a new session is named; the stream is still the old one")
        #expect(basis == .catchUp([CatchUpBase(session: 77, durableThroughEpoch: 0), .all(of: 5)]),
                "nothing was confirmed in session 77: the peer may still hold what it started from")
        // While the old stream has a write in flight, the new one waits (admission pauses).
        h.send(.request(id: 3, .write(offsetBytes: 50 << 20, lengthBytes: 4096, fua: false)))
        let inFlight = h.localWrites[0].sequence
        h.send(.linkUp)
        #expect(h.node.restartPending && !h.actions.contains(.streamRestarted))
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        h.send(.request(id: 4, .write(offsetBytes: 60 << 20, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.isEmpty, "admission waits for the old stream to go quiet")
        h.send(.localWriteDone(sequence: inFlight, errno: 0))
        #expect(h.answered(3) == 0)
        #expect(h.actions.contains(.streamRestarted) && h.node.session == session && !h.node.isAhead)
        #expect(h.actions.contains(.notice(.catchUpStarted(bytes: 16384))))
        #expect(h.node.rpoAgeNs(nowNs: h.nowNs) >= 10_000_000_000, "the peer still lacks what was written while Ahead")
        // The peer's ReplicaHello said `consistent` for the catch-up: it stages it, its volume
        // keeps the image of the base (PrimaryNode+StagedPeer) until it says it went in place.
        #expect(h.node.streamState == .syncSource && h.node.peerDiskState == .consistent)
        #expect(h.node.peerConsistentAsOf == ConsistentPoint(session: 77, epoch: 0))
        h.node.peerCatchUpWentInPlace(session: 77)  // a stale session: ignored
        #expect(h.node.peerDiskState == .consistent)
        h.node.peerCatchUpWentInPlace(session: session)
        #expect(h.node.peerDiskState == .inconsistent && h.node.peerConsistentAsOf == nil)
        // Write 4 was admitted in the new stream first (it was queued): sequence 1. The dirty
        // runs overlap no local write in flight: all three are read at once, only they.
        #expect(h.localWrites.first?.sequence == 1 && h.localWrites.first?.offsetBytes == 60 << 20)
        let reads = h.reads
        #expect(reads.map(\.0) == [1 << 20, 40 << 20, 50 << 20], "only the dirty runs, read at once")
        #expect(reads.map(\.1) == [8192, 4096, 4096])
        h.send(.localWriteDone(sequence: 1, errno: 0))
        for (offset, length) in reads.reversed() {
            h.send(.copyChunkRead(offsetBytes: offset, lengthBytes: length, errno: 0))
        }
        #expect(h.node.outOfSyncBytes == 0)
        // The peer applies everything: SyncComplete, the copy is done, streaming goes on.
        for sequence in 1...4 { h.send(.peer(.dataAck(sequence: WriteSequence(sequence)))) }
        h.send(.peer(.durableThroughEpoch(h.node.primary.openEpoch)))
        #expect(h.actions.contains(.notice(.copyDone(bytes: 16384))))
        #expect(h.node.rpoAgeNs(nowNs: h.nowNs) < 10_000_000_000, "caught up: only the stream's own lag counts")
        #expect(h.node.streamState == .established && h.node.peerDiskState == .upToDate)
    }

    @Test func aCopyReadInFlightWhenTheNodeGoesAheadIsDroppedAndStaysDirty() {
        var h = AheadHarness(mode: .sync, tracksWithoutPeer: true, volumeBytes: 4 << 20, basis: .fullCopy)
        h.connect()
        #expect(h.reads.first.map { $0.0 } == 0)
        // A write waits behind the read; the link goes: Ahead, with the read still out.
        h.send(.request(id: 1, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        h.send(.linkDown(reason: "cut", refusal: nil))
        #expect(h.wentAhead)
        h.send(.copyChunkRead(offsetBytes: 0, lengthBytes: 1 << 20, errno: 0))
        #expect(h.actions.contains(.discardCopyChunk(offsetBytes: 0)), "the chunk would clear bits the peer never got")
        #expect(h.node.outOfSyncBytes == 4 << 20, "a full copy's bits stay set until shipped")
        #expect(h.localWrites.map(\.offsetBytes) == [8192], "the write goes on, tracked")
    }

    @Test func aPeerCutMidCopyIsInconsistentNotOutdatedWhileAhead() {
        var h = AheadHarness(mode: .sync, tracksWithoutPeer: true, volumeBytes: 4 << 20, basis: .fullCopy)
        h.connect()
        h.send(.copyChunkRead(offsetBytes: 0, lengthBytes: 1 << 20, errno: 0))
        #expect(h.node.peerDiskState == .inconsistent)
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.writeAndComplete(1, offsetBytes: 2 << 20, lengthBytes: 4096)
        #expect(h.node.isAhead)
        #expect(h.node.peerDiskState == .inconsistent, "its content is in no order, not an older image")
    }

    @Test func outdatePeerLetsASuspendIOPrimaryAnswerWhatWaitsForItsGonePeer() {
        var h = AheadHarness(mode: .sync, tracksWithoutPeer: false)
        h.connect()
        #expect(h.node.outdatePeerRefusal != nil, "a connected peer is not outdated")
        h.send(.peerOutdated)
        #expect(!h.node.peerOutdatedConfirmed)
        h.send(.linkDown(reason: "cut", refusal: nil))
        // suspend-io: the write is on this disk but waits for the peer.
        h.writeAndComplete(1, offsetBytes: 1 << 20, lengthBytes: 4096)
        #expect(h.answered(1) == nil && !h.node.isAhead)
        #expect(h.node.outdatePeerRefusal == nil)
        h.send(.peerOutdated)
        #expect(h.wentAhead && h.node.isAhead && h.node.peerDiskState == .outdated)
        #expect(h.answered(1) == 0, "the held write is answered from this copy")
        #expect(h.node.outOfSyncBytes == 4096, "and tracked for the catch-up")
        // Later writes do not wait either; the peer's return ends the confirmation.
        h.writeAndComplete(2, offsetBytes: 2 << 20, lengthBytes: 4096)
        #expect(h.answered(2) == 0)
        _ = h.redial()
        h.send(.linkUp)
        #expect(!h.node.peerOutdatedConfirmed)
    }

    @Test func outdatePeerWithNothingWaitingSaysOutdatedAndGoesAheadAtTheNextWrite() {
        var h = AheadHarness(mode: .sync, tracksWithoutPeer: false)
        h.connect()
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.send(.peerOutdated)
        #expect(!h.node.isAhead && h.node.peerDiskState == .outdated)
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        #expect(h.wentAhead, "the first write that would wait for the peer")
        h.send(.localWriteDone(sequence: h.localWrites[0].sequence, errno: 0))
        #expect(h.answered(1) == 0)
    }

    @Test func aVersion2PeerGetsAFullCopyInsteadOfACatchUp() {
        var h = AheadHarness(mode: .sync, tracksWithoutPeer: true)
        h.connect()
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.writeAndComplete(1, offsetBytes: 0, lengthBytes: 4096)
        _ = h.redial()
        h.send(.peerVersion(2))
        #expect(h.node.helloBasis == .fullCopy)
        #expect(h.actions.contains { if case .notice(.fullCopyStarted) = $0 { return true } else { return false } })
        #expect(h.node.outOfSyncBytes == 64 << 20)
    }

    @Test func aSessionThatStartsAsACatchUpCopiesEverythingToAVersion2Peer() {
        // A restart from a sealed bitmap: the Hello says catch-up, which a version-2 secondary
        // reads as a full copy and accepts whatever its copy holds.
        var tracked = DirtyBitmap(volumeSizeBytes: 64 << 20, blockBytes: 4096)
        _ = tracked.setRange(offsetBytes: 0, lengthBytes: 8192)
        var h = AheadHarness(mode: .async)
        h.node = PrimaryNode(config: h.node.config, session: 77,
                             basis: .catchUp([CatchUpBase(session: 9, durableThroughEpoch: 3)]), trackedBitmap: tracked)
        #expect(h.node.outOfSyncBytes == 8192)
        h.send(.enable)
        h.send(.peerVersion(3))
        #expect(h.node.outOfSyncBytes == 8192, "a version-3 peer checks the base: only the tracked blocks")
        h.send(.peerVersion(2))
        #expect(h.node.basis == .fullCopy && h.node.outOfSyncBytes == 64 << 20)
    }

    @Test func aRestartedPrimaryCountsItsRPOAgeFromWhenItsRecordSaysThePeerBeganToLack() {
        // A restart from a sealed bitmap whose record says the peer lacks writes since 30 s
        // before this run's now: the age counts from then until the catch-up is done.
        var tracked = DirtyBitmap(volumeSizeBytes: 64 << 20, blockBytes: 4096)
        _ = tracked.setRange(offsetBytes: 0, lengthBytes: 8192)
        var h = AheadHarness(mode: .async)
        h.nowNs = 100_000_000_000
        h.node = PrimaryNode(config: h.node.config, session: 77,
                             basis: .catchUp([CatchUpBase(session: 9, durableThroughEpoch: 3)]), trackedBitmap: tracked)
        #expect(h.node.rpoAgeNs(nowNs: h.nowNs) == 0, "without the record's word the age is not known")
        h.node.restorePeerLacksSince(h.nowNs - 30_000_000_000)
        h.send(.enable)
        #expect(h.node.rpoAgeNs(nowNs: h.nowNs) == 30_000_000_000)
        h.nowNs += 5_000_000_000
        #expect(h.node.rpoAgeNs(nowNs: h.nowNs) == 35_000_000_000, "it grows while the peer is away")

        // Nothing tracked (a clean restart in sync): the record's word changes nothing.
        var clean = AheadHarness(mode: .async)
        clean.node.restorePeerLacksSince(1)
        #expect(clean.node.rpoAgeNs(nowNs: clean.nowNs) == 0)
    }

    @Test func aRefusedCatchUpMakesTheNextSessionAFullCopy() {
        var h = AheadHarness(mode: .sync, tracksWithoutPeer: true)
        h.connect()
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.writeAndComplete(1, offsetBytes: 0, lengthBytes: 4096)
        _ = h.redial()
        h.send(.linkDown(reason: "refused by the peer: unrelated-data", refusal: .unrelatedData))
        let (_, basis) = h.redial()
        #expect(basis == .fullCopy && h.node.outOfSyncBytes == 64 << 20)
    }
}

@Suite struct CatchUpBasisTests {
    @Test func theBasesTravelInTheHistoryAndAVersion2ReaderSeesAFullCopy() {
        let basis = SessionBasis.catchUp([CatchUpBase(session: 9, durableThroughEpoch: 41), .assumed])
        let wire = basis.wireGenerations(session: 12)
        #expect(wire.bitmap == 0 && wire.history == [9, 41, 0, CatchUpBase.epochAll])
        #expect(SessionBasis(generations: wire) == basis)
        #expect(SessionBasis(wireValue: wire.bitmap, session: 12) == .fullCopy, "what a version-2 secondary reads")
        for other in [SessionBasis.fullCopy, .assumeInSync, .continues(from: 3)] {
            #expect(SessionBasis(generations: other.wireGenerations(session: 12)) == other)
        }
    }

    @Test func aSecondaryAcceptsACatchUpOnlyFromABaseItHolds() {
        func verdict(_ bases: [CatchUpBase], session: UInt64 = 9, durable: Epoch = 40, synced: Bool = true,
                     continuedFrom: UInt64 = 0, fresh: Bool = false) -> SecondarySessionVerdict {
            SecondarySessionVerdict.decide(recordSession: session, recordContinuedFrom: continuedFrom, recordSynced: synced,
                                           fresh: fresh, recordDurableEpoch: durable, session: 100, basis: .catchUp(bases))
        }
        let caughtUp = SecondarySessionVerdict.newSession(synced: false, continuedFrom: 0)
        #expect(verdict([CatchUpBase(session: 9, durableThroughEpoch: 40)]) == caughtUp)
        #expect(verdict([CatchUpBase(session: 9, durableThroughEpoch: 40)], synced: false) == caughtUp,
                "an interrupted catch-up of that session left its regions dirty on the primary")
        if case .refuse = verdict([CatchUpBase(session: 9, durableThroughEpoch: 41)]) {} else {
            Issue.record("a copy durable through 40 cannot stand for one through 41: writes of 41 were released")
        }
        if case .refuse = verdict([CatchUpBase(session: 8, durableThroughEpoch: 0)]) {} else {
            Issue.record("another session's base")
        }
        #expect(verdict([CatchUpBase(session: 8, durableThroughEpoch: 0), .all(of: 9)]) == caughtUp, "the second base")
        if case .refuse = verdict([.all(of: 9)], synced: false) {} else {
            Issue.record("all of a session needs a synced copy, as a clean restart does")
        }
        #expect(verdict([.all(of: 3)], continuedFrom: 3) == caughtUp)
        #expect(verdict([.assumed], session: 0, durable: 0, synced: false, fresh: true) == caughtUp)
        if case .refuse = verdict([CatchUpBase(session: 0, durableThroughEpoch: 0)], session: 0, fresh: true) {} else {
            Issue.record("a fresh copy holds no session")
        }
    }

    @Test func basesAfterLosingThePeerKeepThePreviousOnesOnlyWhenNothingWasConfirmed() {
        let previous = [CatchUpBase.all(of: 5)]
        #expect(SessionBasis.basesAfterLosingPeer(session: 7, peerDurableEpoch: 3, previous: previous)
                == [CatchUpBase(session: 7, durableThroughEpoch: 3)])
        #expect(SessionBasis.basesAfterLosingPeer(session: 7, peerDurableEpoch: 0, previous: previous)
                == [CatchUpBase(session: 7, durableThroughEpoch: 0), .all(of: 5)])
        let many = [CatchUpBase(session: 6, durableThroughEpoch: 0), .all(of: 5)]
        #expect(SessionBasis.basesAfterLosingPeer(session: 7, peerDurableEpoch: 0, previous: many).count == CatchUpBase.countMax)
    }
}
