// PrimaryNode: the primary's decisions, checked on the actions it emits for each event.
import TandemCore
import Testing

/// A node and the actions of its last event.
struct PrimaryNodeHarness {
    var node: PrimaryNode
    var actions: [PrimaryNodeAction] = []
    var nowNs: UInt64 = 1_000_000_000

    init(mode: ReplicationAckMode = .async, basis: SessionBasis = .assumeInSync, bufferBytes: UInt64 = 8 << 20,
         volumeBytes: UInt64 = 64 << 20, chunkBytes: UInt32 = 1 << 20, tracksWithoutPeer: Bool = false) {
        node = PrimaryNode(
            config: PrimaryNodeConfig(
                primary: ReplicationPrimaryConfig(mode: mode, bufferBytesMax: bufferBytes),
                volumeSizeBytes: volumeBytes, chunkBytes: chunkBytes, syncTracksWithoutPeer: tracksWithoutPeer),
            session: 77, basis: basis)
    }

    @discardableResult
    mutating func send(_ event: PrimaryNodeEvent) -> [PrimaryNodeAction] {
        actions.removeAll()
        node.handle(event, nowNs: nowNs, into: &actions)
        return actions
    }

    /// Enabled, dialled, link up, the peer's hello accepted.
    mutating func connect(durable: Epoch = 0, copy: DiskState = .consistent) {
        send(.enable)
        #expect(actions.contains(.dial))
        send(.linkUp)
        send(.peer(.hello(durableThroughEpoch: durable, copy: copy)))
    }

    var answers: [(RequestID, Int32)] {
        actions.compactMap { if case let .answer(id, errno) = $0 { return (id, errno) } else { return nil } }
    }

    var localWrites: [LocalWrite] {
        actions.compactMap { if case let .writeLocal(write) = $0 { return write } else { return nil } }
    }

    var reads: [(UInt64, UInt32)] {
        actions.compactMap { if case let .readCopyChunk(offset, length) = $0 { return (offset, length) } else { return nil } }
    }

    var dataSent: [DataMessage] {
        actions.compactMap { if case let .send(.data(data)) = $0 { return data } else { return nil } }
    }

    func answered(_ id: RequestID) -> Int32? { answers.first { $0.0 == id }?.1 }
}

@Suite struct PrimaryNodeTests {
    @Test func aWriteIsWrittenSentAndAnsweredAfterTheLocalCompletionInAsyncMode() {
        var h = PrimaryNodeHarness()
        h.connect()
        h.send(.request(id: 5, .write(offsetBytes: 4096, lengthBytes: 4096, fua: false)))
        #expect(h.actions.first == .invalidateCleanStop, "the session's first mutation cancels the clean stop")
        #expect(h.localWrites.count == 1)
        let write = h.localWrites[0]
        #expect(write.source == .request(5) && write.sequence == 1 && write.offsetBytes == 4096)
        #expect(h.dataSent.map(\.sequence) == [1], "sent from the same payload in the same batch")
        #expect(h.answers.isEmpty)
        h.send(.localWriteDone(sequence: 1, errno: 0))
        #expect(h.answered(5) == 0)
        // Released only once the peer has it durable.
        #expect(!h.actions.contains { if case .release = $0 { return true } else { return false } })
        h.send(.peer(.durableThroughEpoch(1)))
        #expect(h.actions.contains(.release(throughSequence: 1)))
        // A second mutation does not invalidate again.
        h.send(.request(id: 6, .write(offsetBytes: 0, lengthBytes: 512, fua: false)))
        #expect(!h.actions.contains(.invalidateCleanStop))
    }

    @Test func aSyncWriteIsAnsweredOnlyAfterThePeerAppliedIt() {
        var h = PrimaryNodeHarness(mode: .sync)
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        h.send(.localWriteDone(sequence: 1, errno: 0))
        #expect(h.answers.isEmpty)
        h.send(.peer(.dataAck(sequence: 1)))
        #expect(h.answered(1) == 0)
    }

    @Test func anOverlappingWriteWaitsUntilTheEarlierIsAnsweredAndTheQueueStaysFIFO() {
        var h = PrimaryNodeHarness()
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 8192, fua: false)))
        #expect(h.localWrites.count == 1)
        h.send(.request(id: 2, .write(offsetBytes: 4096, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.isEmpty, "overlaps write 1, not yet answered")
        h.send(.request(id: 3, .write(offsetBytes: 1 << 20, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.isEmpty, "strict FIFO behind the waiting write")
        h.send(.localWriteDone(sequence: 1, errno: 0))
        #expect(h.answered(1) == 0)
        #expect(h.localWrites.map(\.source) == [.request(2), .request(3)])
        // The later write is in a later epoch: the secondary applies it after the earlier.
        let epochs = h.dataSent.map(\.epoch)
        #expect(epochs.count == 2 && epochs[0] > 1)
    }

    @Test func nonOverlappingWritesRunConcurrently() {
        var h = PrimaryNodeHarness()
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        h.send(.request(id: 2, .write(offsetBytes: 4096, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.map(\.sequence) == [2])
        #expect(h.node.localWritesInFlight == 2)
    }

    @Test func writeZeroesIsChunkedIntoReplicatedWritesOfTheSharedZeroBlock() {
        var h = PrimaryNodeHarness()
        h.connect()
        h.send(.request(id: 9, .writeZeroes(offsetBytes: 0, lengthBytes: 2_500_000, fua: true)))
        let writes = h.localWrites
        #expect(writes.map(\.lengthBytes) == [1 << 20, 1 << 20, 2_500_000 - 2 << 20])
        #expect(writes.allSatisfy { $0.source == .zeroes && $0.request == 9 })
        #expect(writes.map(\.fua) == [true, true, true], "FUA on every chunk: the whole range is durable when answered")
        #expect(h.dataSent.count == 3)
        h.send(.localWriteDone(sequence: 1, errno: 0))
        h.send(.localWriteDone(sequence: 2, errno: 0))
        #expect(h.answers.isEmpty, "answered once every chunk is")
        h.send(.localWriteDone(sequence: 3, errno: 0))
        #expect(h.answered(9) == 0, "async: the last (FUA) chunk durable locally answers the request")
    }

    @Test func zeroesWaitForRoomChunkByChunk() {
        // Sync: a full buffer makes writes wait (async goes Ahead instead: PrimaryNodeAheadTests).
        var h = PrimaryNodeHarness(mode: .sync, bufferBytes: 4 << 20)
        h.connect()
        h.send(.request(id: 1, .writeZeroes(offsetBytes: 0, lengthBytes: 6 << 20, fua: false)))
        #expect(h.localWrites.count == 4, "the buffer holds four chunks")
        #expect(h.node.isBlocked && h.node.streamState == .blocked)
        h.send(.request(id: 2, .flush))
        #expect(h.actions.isEmpty, "the flush waits behind the zeroes")
        for sequence in 1...4 {
            h.send(.localWriteDone(sequence: WriteSequence(sequence), errno: 0))
            h.send(.peer(.dataAck(sequence: WriteSequence(sequence))))
        }
        #expect(h.node.streamState == .blocked, "sync: the full buffer waits for the peer, never Ahead")
        h.send(.peer(.durableThroughEpoch(h.node.primary.openEpoch)))
        #expect(h.actions.contains(.release(throughSequence: 4)))
        #expect(h.localWrites.count == 2, "the last two chunks follow once room is released")
    }

    @Test func trimIsANoOpAnsweredAtOnce() {
        var h = PrimaryNodeHarness()
        h.send(.request(id: 4, .trim))
        #expect(h.actions == [.answer(4, errno: 0)])
    }

    @Test func aFlushIsAnsweredAfterTheLocalFlush() {
        var h = PrimaryNodeHarness()
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        h.send(.request(id: 2, .flush))
        #expect(!h.actions.contains(.flushLocal), "the write is not complete locally yet")
        h.send(.localWriteDone(sequence: 1, errno: 0))
        #expect(h.actions.contains(.flushLocal))
        h.send(.localFlushDone(errno: 0))
        #expect(h.answered(2) == 0)
    }

    @Test func theFirstDiskErrorFailsTheRequestAndEveryLaterMutation() {
        var h = PrimaryNodeHarness()
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        h.send(.request(id: 2, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))  // waits: overlap
        h.send(.localWriteDone(sequence: 1, errno: 28))
        #expect(h.actions.contains(.notice(.diskFailed(operation: "write", errno: 28))))
        #expect(h.answered(1) == PrimaryErrno.eio)
        #expect(h.answered(2) == PrimaryErrno.eio, "the queued mutation fails too")
        h.send(.request(id: 3, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        #expect(h.actions == [.answer(3, errno: PrimaryErrno.eio)])
        h.send(.request(id: 4, .flush))
        #expect(h.actions == [.answer(4, errno: PrimaryErrno.eio)])
    }

    @Test func theLinkIsDialledWithBackoffAndReconnectsAfterALoss() {
        var h = PrimaryNodeHarness()
        #expect(h.node.connectionState == .standAlone)
        h.send(.enable)
        #expect(h.actions.contains(.dial) && h.node.connectionState == .connecting)
        h.send(.dialFailed("refused"))
        h.send(.tick)
        #expect(!h.actions.contains(.dial), "not before 250 ms")
        h.nowNs += 250_000_000
        h.send(.tick)
        #expect(h.actions.contains(.dial))
        h.send(.dialFailed("refused"))
        h.nowNs += 250_000_000
        h.send(.tick)
        #expect(!h.actions.contains(.dial), "the backoff doubled to 500 ms")
        h.nowNs += 250_000_000
        h.send(.tick)
        #expect(h.actions.contains(.dial))
        h.send(.linkUp)
        #expect(h.node.connectionState == .connected)
        #expect(h.actions.contains(.notice(.connectionState(.connected))))
        h.send(.linkDown(reason: "reset", refusal: nil))
        #expect(h.node.connectionState == .connecting && h.node.streamState == .off)
        h.send(.tick)
        #expect(h.actions.contains(.dial), "a lost link is redialled at the next tick")
        h.send(.dialFailed("refused"))
        h.send(.tick)
        #expect(!h.actions.contains(.dial))
        h.nowNs += 250_000_000
        h.send(.tick)
        #expect(h.actions.contains(.dial), "the backoff starts again at 250 ms after a link was up")
    }

    @Test func helloResendsAndSyncCompleteFollowsInSyncMode() {
        var h = PrimaryNodeHarness(mode: .sync)
        h.send(.enable)
        h.send(.linkUp)
        #expect(h.node.peerDiskState == .unknown, "nothing heard yet")
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        #expect(h.actions.contains(.send(.resendComplete(throughSequence: 0))))
        #expect(h.actions.contains(.sendSyncComplete(throughSequence: 0)))
        #expect(h.node.peerDiskState == .upToDate)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        #expect(h.actions.contains { if case .protocolViolation = $0 { return true } else { return false } })
    }

    @Test func aPeerThatReportsInconsistentStaysInconsistentUntilTheResentWritesAreDurable() {
        var h = PrimaryNodeHarness()
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        h.send(.localWriteDone(sequence: 1, errno: 0))
        h.send(.linkDown(reason: "peer crashed", refusal: nil))
        // Acknowledged while the link was up and not confirmed durable: the peer may hold it.
        #expect(h.node.peerDiskState == .unknown)
        h.send(.request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        h.send(.localWriteDone(sequence: 2, errno: 0))
        #expect(h.answers.map(\.0).contains(2), "acknowledged without the peer")
        #expect(h.node.peerDiskState == .outdated, "it lacks a write acknowledged without it")
        h.nowNs += 1_000_000_000
        h.send(.tick)
        h.send(.linkUp)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .inconsistent)))
        #expect(h.dataSent.map(\.sequence) == [1, 2], "the unconfirmed write goes again, then the one made alone")
        #expect(h.node.peerDiskState == .inconsistent)
        h.send(.peer(.durableThroughEpoch(2)))
        #expect(h.node.peerDiskState == .upToDate)
        #expect(h.actions.contains(.sendSyncComplete(throughSequence: 2)))
    }

    @Test func aFullCopyReadsChunksAtOnceUnderRegionLocksAndCompletesWhenTheLastIsDurable() {
        var h = PrimaryNodeHarness(mode: .sync, basis: .fullCopy, volumeBytes: 3 << 20)
        h.connect()
        #expect(h.node.peerDiskState == .inconsistent && h.node.streamState == .syncSource)
        #expect(h.reads.map(\.0) == [0, 1 << 20, 2 << 20], "every chunk is read at once")
        // A write into a chunk being read waits for that chunk.
        h.send(.request(id: 1, .write(offsetBytes: 4096, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.isEmpty)
        // Reads end in any order; each chunk is admitted as its read ends.
        h.send(.copyChunkRead(offsetBytes: 2 << 20, lengthBytes: 1 << 20, errno: 0))
        #expect(h.localWrites.map(\.offsetBytes) == [2 << 20] && h.localWrites.first?.source == .copyChunk)
        h.send(.copyChunkRead(offsetBytes: 0, lengthBytes: 1 << 20, errno: 0))
        #expect(h.localWrites.map(\.offsetBytes) == [0] && h.localWrites.first?.sequence == 2)
        let chunkEpoch = h.localWrites.first?.epoch ?? 0
        // The write overlaps the chunk, which the sync peer has not applied yet: it waits for
        // that, then goes in a later epoch.
        #expect(h.localWrites.count == 1)
        h.send(.peer(.dataAck(sequence: 2)))
        #expect(h.localWrites.map(\.source) == [.request(1)] && h.localWrites.first?.sequence == 3)
        #expect(h.localWrites.first?.epoch ?? 0 > chunkEpoch)
        h.send(.copyChunkRead(offsetBytes: 1 << 20, lengthBytes: 1 << 20, errno: 0))
        #expect(h.actions.contains(.notice(.copySent(bytes: 3 << 20))))
        h.send(.localWriteDone(sequence: 3, errno: 0))
        for sequence in [1, 3, 4] { h.send(.peer(.dataAck(sequence: WriteSequence(sequence)))) }
        #expect(h.node.peerDiskState == .inconsistent)
        h.send(.peer(.durableThroughEpoch(h.node.primary.openEpoch)))
        #expect(h.actions.contains(.sendSyncComplete(throughSequence: 4)))
        #expect(h.actions.contains(.notice(.copyDone(bytes: 3 << 20))))
        #expect(h.node.peerDiskState == .upToDate && h.node.outOfSyncBytes == 0)
    }

    @Test func aCopyRunWaitsForItsBusyRegionAndHoldsNewWritesToItWhileOthersGoOn() {
        var h = PrimaryNodeHarness(mode: .async, basis: .fullCopy, volumeBytes: 4 << 20)
        h.send(.enable)
        h.send(.request(id: 1, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.map(\.sequence) == [1])
        h.send(.linkUp)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        #expect(h.reads.isEmpty, "the first run's region has a local write in flight")
        // A write elsewhere goes on; one into the waiting run's region waits, and so does
        // everything behind it (one FIFO).
        h.send(.request(id: 2, .write(offsetBytes: 3 << 20, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.map(\.offsetBytes) == [3 << 20])
        h.send(.request(id: 3, .write(offsetBytes: 4096, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.isEmpty, "a write into the region the copy waits for")
        // The region goes quiet: its run and the next ones are read, up to the busy one.
        h.send(.localWriteDone(sequence: 1, errno: 0))
        #expect(h.reads.map(\.0) == [0, 1 << 20, 2 << 20])
        #expect(h.localWrites.isEmpty, "write 3 now waits for the chunk being read")
        h.send(.copyChunkRead(offsetBytes: 0, lengthBytes: 1 << 20, errno: 0))
        #expect(h.localWrites.map(\.source) == [.copyChunk, .request(3)], "the chunk, then the write")
    }

    @Test func aFailedCopyReadStopsTheCopyAndLeavesThePeerInconsistent() {
        var h = PrimaryNodeHarness(basis: .fullCopy, volumeBytes: 2 << 20)
        h.connect()
        h.send(.copyChunkRead(offsetBytes: 0, lengthBytes: 1 << 20, errno: 5))
        #expect(h.actions.contains(.discardCopyChunk(offsetBytes: 0)))
        #expect(h.actions.contains(.notice(.diskFailed(operation: "read", errno: 5))))
        #expect(!h.actions.contains { if case .readCopyChunk = $0 { return true } else { return false } })
        #expect(h.node.peerDiskState == .inconsistent)
    }

    @Test func anUnrelatedDataRefusalSwitchesToAFullCopy() {
        var h = PrimaryNodeHarness(basis: .continues(from: 5))
        h.send(.enable)
        h.send(.linkDown(reason: "refused by the peer: unrelated-data", refusal: .unrelatedData))
        #expect(h.node.basis == .fullCopy && h.node.copyWanted && !h.node.peerSynced)
        #expect(h.actions.contains(.invalidateCleanStop))
        #expect(h.actions.contains(.notice(.fullCopyStarted(reason: "refused by the peer: unrelated-data"))))
    }

    @Test func drainRefusesNewWritesAndReportsDrainedWhenEverythingIsDurableOnThePeer() {
        var h = PrimaryNodeHarness()
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        h.send(.drain)
        #expect(!h.actions.contains(.drained))
        h.send(.request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        #expect(h.actions == [.answer(2, errno: PrimaryErrno.erofs)])
        h.send(.localWriteDone(sequence: 1, errno: 0))
        #expect(!h.actions.contains(.drained), "answered but not durable on the peer")
        h.send(.peer(.durableThroughEpoch(1)))
        #expect(h.actions.contains(.drained))
    }

    @Test func stopAnswersLocallyCompletedWritesAndFlushedFlushesAndFailsTheRest() {
        var h = PrimaryNodeHarness(mode: .sync, tracksWithoutPeer: true)  // dont-care (suspend-io: PrimaryNodeAheadTests)
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        h.send(.request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        h.send(.request(id: 3, .flush))
        h.send(.request(id: 4, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))  // overlaps 1: queued
        h.send(.localWriteDone(sequence: 1, errno: 0))
        h.send(.stop)
        #expect(h.actions.contains(.closeLink("resource stopping")))
        h.send(.linkDown(reason: "resource stopping", refusal: nil))
        #expect(h.answers.isEmpty, "write 2 is still running locally")
        h.send(.localWriteDone(sequence: 2, errno: 0))
        // The stream machine's own flush for the FLUSH (sync: not answerable without the
        // peer), then the stop's flush once nothing else runs.
        #expect(h.actions == [.flushLocal])
        h.send(.localFlushDone(errno: 0))
        #expect(h.actions == [.flushLocal], "a held FLUSH gets a local flush at stop")
        h.send(.localFlushDone(errno: 0))
        #expect(h.actions.contains(.recordStop(cleanStop: 0)))
        #expect(h.answered(1) == 0 && h.answered(2) == 0 && h.answered(3) == 0 && h.answered(4) == PrimaryErrno.eio)
        #expect(h.actions.contains(.notice(.acknowledgedWithoutPeer)), "answered alone: said first (B moves)")
        #expect(h.actions.last == .stopped)
    }

    @Test func aCleanStopRecordsTheSessionOnceThePeerWasHeard() {
        var h = PrimaryNodeHarness()
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        h.send(.localWriteDone(sequence: 1, errno: 0))
        h.send(.peer(.durableThroughEpoch(1)))
        #expect(h.node.isCleanForStop)
        h.send(.disable)
        #expect(h.node.connectionState == .standAlone)
        h.send(.stop)
        h.send(.linkDown(reason: "resource stopping", refusal: nil))
        #expect(!h.actions.contains { if case .recordStop = $0 { return true } else { return false } },
                "not before the stop's flush")
        #expect(h.actions.last == .flushLocal)
        h.send(.localFlushDone(errno: 0))
        #expect(h.actions.contains(.recordStop(cleanStop: 77)))
        h.send(.stop)
        #expect(!h.actions.contains { if case .recordStop = $0 { return true } else { return false } }, "recorded once")
    }

    @Test func anUnheardPeerKeepsTheBasisAsTheCleanStop() {
        var h = PrimaryNodeHarness(basis: .continues(from: 12))
        h.send(.stop)
        // A node that stops serving as primary flushes its disk first, always, and records
        // the clean stop only once that flush is done.
        #expect(h.actions.last == .flushLocal)
        h.send(.localFlushDone(errno: 0))
        #expect(h.actions.contains(.recordStop(cleanStop: 12)))
        #expect(h.actions.last == .stopped)
    }

    @Test func aPeerThatClaimsLessThanItConfirmedNeedsANewSessionThatCopies() {
        var h = PrimaryNodeHarness(mode: .async)
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        h.send(.localWriteDone(sequence: 1, errno: 0))
        h.send(.peer(.durableThroughEpoch(1)))
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.send(.tick)
        h.send(.linkUp)
        // Its record was re-initialised: durable through 0, below the 1 it confirmed.
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .inconsistent)))
        #expect(h.actions.contains { if case .notice(.peerNeedsFullCopy) = $0 { true } else { false } })
        #expect(h.actions.contains { if case .closeLink = $0 { true } else { false } })
        #expect(!h.actions.contains { if case .protocolViolation = $0 { true } else { false } })
    }

    @Test func aStopWhoseFlushFailedIsNotClean() {
        var h = PrimaryNodeHarness(basis: .continues(from: 12))
        h.send(.stop)
        h.send(.localFlushDone(errno: PrimaryErrno.eio))
        #expect(h.actions.contains(.recordStop(cleanStop: 0)))
    }

    @Test func aHandOverRecordsTheDemotionBeforeItTellsThePeer() {
        var h = PrimaryNodeHarness(mode: .sync)
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        h.send(.localWriteDone(sequence: 1, errno: 0))
        h.send(.peer(.dataAck(sequence: 1)))
        h.send(.drain)
        h.send(.peer(.durableThroughEpoch(1)))
        #expect(h.actions.contains(.drained))
        h.send(.handOver)
        #expect(h.actions == [.flushLocal], "the link stays up; the disk is flushed first")
        h.send(.localFlushDone(errno: 0))
        #expect(h.actions.contains(.recordDemotion))
        #expect(!h.actions.contains(.sendDemoted) && !h.actions.contains(.stopped))
        h.send(.tick)
        #expect(!h.actions.contains(.sendDemoted), "nothing is told before the demotion is recorded")
        h.send(.demotionRecorded)
        let sent = h.actions.firstIndex(of: .sendDemoted)
        let closed = h.actions.firstIndex { if case .closeLink = $0 { return true } else { return false } }
        #expect(sent != nil && closed != nil && sent! < closed!, "Demoted, then the link closes")
        #expect(h.actions.last == .stopped)
    }

    @Test func aStopBeforeTheDemotionIsAskedCallsTheHandOverOff() {
        var h = PrimaryNodeHarness(mode: .sync)
        h.connect()
        h.send(.drain)
        h.send(.handOver)
        #expect(h.actions == [.flushLocal])
        h.send(.stop)
        h.send(.linkDown(reason: "resource stopping", refusal: nil))
        h.send(.localFlushDone(errno: 0))
        #expect(!h.actions.contains(.recordDemotion) && !h.actions.contains(.sendDemoted))
        #expect(h.actions.last == .stopped)
    }

    @Test func aFlushBeforeAnyWriteOfTheRunStillFlushesTheDisk() {
        // The volume may hold writes of an earlier run that are only in the disk's cache.
        var h = PrimaryNodeHarness()
        h.connect()
        h.send(.request(id: 5, .flush))
        #expect(h.actions.contains(.flushLocal), "no flush: \(h.actions)")
        #expect(h.answers.isEmpty)
        h.send(.localFlushDone(errno: 0))
        #expect(h.answers.map(\.0) == [5] && h.answers.map(\.1) == [0])
    }
}
