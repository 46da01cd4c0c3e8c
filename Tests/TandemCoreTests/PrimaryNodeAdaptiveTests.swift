// PrimaryNode in `mode: adaptive` and with `rpo_target_ms`: a switch applies to writes admitted
// after it, a write admitted sync is answered only once the peer applied it (no switch and no
// Ahead answers it earlier), and pacing spaces async admissions and goes Ahead when it cannot
// hold the target.
import TandemCore
import Testing

private struct ProfileHarness {
    var node: PrimaryNode
    var actions: [PrimaryNodeAction] = []
    var nowNs: UInt64 = 1_000_000_000
    static let ms: UInt64 = 1_000_000

    /// `logExtents`: an activity log of that many 8 KiB extents (writes and chunks of a block).
    init(adaptive: Bool = true, tracksWithoutPeer: Bool = false, rpoTargetMs: UInt64? = nil, pacingMaxMs: UInt64 = 50,
         bufferBytes: UInt64 = 4 << 20, basis: SessionBasis = .continues(from: 5), logExtents: Int? = nil) {
        let log = logExtents.map {
            ActivityLogSettings(extents: $0, extentBytes: 8192, writeBytesMax: 4096, lastTransaction: 10, testingFault: nil)
        }
        var config = PrimaryNodeConfig(
            primary: ReplicationPrimaryConfig(mode: .async, bufferBytesMax: bufferBytes),
            volumeSizeBytes: 64 << 20, chunkBytes: log == nil ? 1 << 20 : 4096, syncTracksWithoutPeer: tracksWithoutPeer,
            activityLog: log)
        if adaptive { config.adaptive = .init(latencyBoundNs: 10 * Self.ms, switchAfterNs: 100 * Self.ms) }
        if let rpoTargetMs {
            config.rpoTarget = .init(targetNs: rpoTargetMs * Self.ms, delayMaxNs: pacingMaxMs * Self.ms)
        }
        node = PrimaryNode(config: config, session: 77, basis: basis)
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

    var copyReads: [(offset: UInt64, length: UInt32)] {
        actions.compactMap { if case let .readCopyChunk(offset, length) = $0 { return (offset, length) } else { return nil } }
    }

    /// The activity log transaction asked for, if any.
    var logTransaction: UInt64? {
        for case let .writeActivityLog(number, _, _, _, _) in actions { return number }
        return nil
    }

    var localWrites: [LocalWrite] {
        actions.compactMap { if case let .writeLocal(write) = $0 { return write } else { return nil } }
    }

    var sentData: [DataMessage] {
        actions.compactMap { if case let .send(.data(data)) = $0 { return data } else { return nil } }
    }

    func answered(_ id: RequestID) -> Int32? {
        actions.lazy.compactMap { if case let .answer(answered, errno) = $0, answered == id { return errno } else { return nil } }.first
    }

    var switches: [ReplicationAckMode] {
        actions.compactMap { if case let .notice(.modeSwitched(mode, _)) = $0 { return mode } else { return nil } }
    }

    /// Submits a 4 KiB write and completes it locally; returns its sequence.
    @discardableResult
    mutating func write(_ id: RequestID, block: UInt64) -> WriteSequence {
        send(.request(id: id, .write(offsetBytes: block * 4096, lengthBytes: 4096, fua: false)))
        let sequence = localWrites[0].sequence
        send(.localWriteDone(sequence: sequence, errno: 0))
        return sequence
    }

    mutating func advance(ms: UInt64) {
        nowNs += ms * Self.ms
        send(.tick)
    }
}

@Suite struct PrimaryNodeAdaptiveTests {
    @Test func startsSyncAndAnswersAWriteOnlyOnceThePeerAppliedIt() {
        var h = ProfileHarness()
        h.connect()
        #expect(h.node.effectiveMode == .sync)
        let sequence = h.write(1, block: 0)
        #expect(h.answered(1) == nil)
        #expect(h.node.primary.syncPending)
        h.nowNs += 2 * ProfileHarness.ms
        h.send(.peer(.dataAck(sequence: sequence)))
        #expect(h.answered(1) == 0)
        #expect(h.node.lastPeerLatencyNs == 2 * ProfileHarness.ms)
    }

    @Test func aStalledPeerSwitchesLaterWritesToAsyncWhileTheSyncWriteKeepsWaiting() {
        var h = ProfileHarness()
        h.connect()
        let syncSequence = h.write(1, block: 0)
        // No ack: the write's wait crosses the 10 ms bound at +10 ms; the switch is due 100 ms later.
        #expect(h.node.profileWakeAtNs == h.nowNs + 10 * ProfileHarness.ms + 1)
        h.advance(ms: 11)
        #expect(h.node.effectiveMode == .sync && h.node.profileWakeAtNs != nil)
        h.advance(ms: 99)
        #expect(h.switches == [.async] && h.node.effectiveMode == .async)
        #expect(h.answered(1) == nil, "the switch answered a write admitted sync")
        #expect(h.node.adaptiveMode?.switches == 1)
        // A write admitted now is answered on local completion; the sync one still waits.
        h.write(2, block: 8)
        #expect(h.answered(2) == 0)
        h.advance(ms: 10_000)
        #expect(h.answered(1) == nil, "a sync-admitted write is never answered without the peer")
        h.send(.peer(.dataAck(sequence: syncSequence)))
        #expect(h.answered(1) == 0)
    }

    @Test func itReturnsToSyncOnceTheQueueDrainedAndAcksAreInTime() {
        var h = ProfileHarness()
        h.connect()
        let first = h.write(1, block: 0)
        h.advance(ms: 200)
        #expect(h.node.effectiveMode == .async)
        let second = h.write(2, block: 8)
        #expect(h.answered(2) == 0)
        // The peer catches up: both applied and durable.
        h.send(.peer(.dataAck(sequence: first)))
        h.send(.peer(.dataAck(sequence: second)))
        h.send(.peer(.durableThroughEpoch(h.node.primary.openEpoch)))
        #expect(h.node.effectiveMode == .async, "not before the hysteresis")
        h.advance(ms: 50)
        #expect(h.node.effectiveMode == .async)
        h.advance(ms: 60)
        #expect(h.switches == [.sync] && h.node.effectiveMode == .sync && h.node.adaptiveMode?.switches == 2)
        // Sync again: the next write waits for the peer, and goes flagged acknowledged-after-apply.
        h.send(.request(id: 3, .write(offsetBytes: 65_536, lengthBytes: 4096, fua: false)))
        #expect(h.sentData.first?.flags.contains(.acknowledgedAfterApply) == true)
        h.send(.localWriteDone(sequence: h.localWrites[0].sequence, errno: 0))
        #expect(h.answered(3) == nil)
    }

    @Test func aFullBufferDoesNotSendItAheadWhileASyncWriteWaitsUnderSuspendIO() {
        // 4 MiB buffer: one sync 4 KiB write waits, then 1 MiB async writes fill the buffer.
        var h = ProfileHarness(tracksWithoutPeer: false)
        h.connect()
        h.write(1, block: 0)
        h.advance(ms: 200)
        #expect(h.node.effectiveMode == .async)
        for id in 2...5 {
            h.send(.request(id: RequestID(id), .write(offsetBytes: UInt64(id) << 20, lengthBytes: 1 << 20, fua: false)))
            for write in h.localWrites { h.send(.localWriteDone(sequence: write.sequence, errno: 0)) }
        }
        #expect(h.node.isBlocked && !h.node.isAhead, "Ahead would answer the sync write without the peer")
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.advance(ms: 60_000)
        #expect(!h.node.isAhead && h.answered(1) == nil)
    }

    @Test func withFencingDontCareAPeerThatLeavesSendsItAheadAsSyncModeWould() {
        var h = ProfileHarness(tracksWithoutPeer: true)
        h.connect()
        h.write(1, block: 0)
        h.send(.linkDown(reason: "cut", refusal: nil))
        #expect(h.node.isAhead && h.answered(1) == 0)
        #expect(h.node.effectiveMode == .async)
        h.send(.tick)
        #expect(h.node.adaptiveMode?.mode == .async)
    }

    @Test func asyncWithNoSyncWriteWaitingKeepsBufferingWhenThePeerLeavesAsAsyncDoes() {
        var h = ProfileHarness(tracksWithoutPeer: true)
        h.connect()
        let first = h.write(1, block: 0)
        h.advance(ms: 200)
        #expect(h.node.effectiveMode == .async)
        h.send(.peer(.dataAck(sequence: first)))
        #expect(h.answered(1) == 0 && !h.node.primary.syncPending)
        h.write(2, block: 8)
        h.send(.linkDown(reason: "cut", refusal: nil))
        #expect(!h.node.isAhead, "async with nothing admitted sync: the buffer holds the writes for the next link")
    }

    @Test func theWrongBehaviourIsCaught_aSyncWriteAnsweredAfterTheSwitchWouldShowHere() {
        // The same stall in plain async mode answers the first write at once: the adaptive
        // assertion above (answered(1) == nil) is what distinguishes the two.
        var h = ProfileHarness(adaptive: false)
        h.connect()
        h.write(1, block: 0)
        #expect(h.answered(1) == 0)
        #expect(h.node.effectiveMode == .async)
    }

    @Test func pacingSpacesAsyncAdmissionsOnceTheLagNearsTheTarget() {
        var h = ProfileHarness(adaptive: false, rpoTargetMs: 100, pacingMaxMs: 20)
        h.connect()
        // The peer confirms nothing: after 50 ms the oldest write's age passes half the target.
        h.write(1, block: 0)
        h.advance(ms: 60)
        #expect(h.node.rpoPacer?.admitBytesPerSecond != nil)
        h.write(2, block: 1)
        #expect(h.answered(2) == 0, "the first write after the onset goes; the next waits its delay")
        h.send(.request(id: 3, .write(offsetBytes: 8 * 4096, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.isEmpty && h.answered(3) == nil)
        let wake = h.node.profileWakeAtNs
        #expect(wake == h.nowNs + 20 * ProfileHarness.ms, "nothing drains: the maximum delay")
        #expect(h.node.pacingDelayActiveNs == 20 * ProfileHarness.ms)
        h.nowNs = wake!
        h.send(.tick)
        #expect(h.localWrites.count == 1)
    }

    @Test func whenPacingCannotHoldTheTargetItSaysSoAndGoesAhead() {
        var h = ProfileHarness(adaptive: false, rpoTargetMs: 100, pacingMaxMs: 20)
        h.connect()
        h.write(1, block: 0)
        var missed = false
        var ahead = false
        for _ in 0..<40 {
            h.advance(ms: 5)
            missed = missed || h.actions.contains { if case .notice(.rpoTargetMissed) = $0 { return true } else { return false } }
            ahead = ahead || h.actions.contains { if case .notice(.ahead) = $0 { return true } else { return false } }
        }
        #expect(missed && ahead && h.node.isAhead)
        #expect(h.node.rpoPacer?.misses == 1 && h.node.lastRPOMissReason?.contains("rpo_target_ms 100") == true)
        // Ahead, nothing is paced.
        h.send(.request(id: 9, .write(offsetBytes: 20 * 4096, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.count == 1 && h.node.pacingDelayActiveNs == 0)
    }

    /// A copy's chunks (a full copy's here, a catch-up's alike) are read from this disk and
    /// "acknowledged" at once, then wait on the link like any write; they are not application
    /// writes. Nothing the peer confirms for twice the target: the RPO age pacing holds stays
    /// 0 and the node does not go Ahead (counted, a catch-up on a slow link missed the target
    /// and went Ahead, and the next catch-up again). `lag_bytes` still counts the chunk.
    @Test func aCopysChunksStayOutOfTheRPOAgeAndNeverSendItAhead() {
        var h = ProfileHarness(adaptive: false, rpoTargetMs: 100, pacingMaxMs: 20, basis: .fullCopy)
        h.send(.enable)
        h.send(.linkUp)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .inconsistent)))
        var pending = h.copyReads
        var chunks = 0
        for _ in 0..<40 {
            var next: [(offset: UInt64, length: UInt32)] = []
            for read in pending {
                h.send(.copyChunkRead(offsetBytes: read.offset, lengthBytes: read.length, errno: 0))
                chunks += 1
                next += h.copyReads
            }
            h.advance(ms: 5)
            pending = next + h.copyReads
        }
        #expect(chunks >= 1)
        #expect(h.node.primary.lagBytes > 0 && h.node.primary.applicationLagBytes == 0)
        #expect(h.node.primary.rpoAgeNs(nowNs: h.nowNs) == 0)
        #expect(!h.node.isAhead && h.node.rpoPacer?.misses == 0)
        // An application write beside the copy counts from its acknowledgement.
        h.write(1, block: 10_000)
        h.advance(ms: 10)
        #expect(h.node.primary.applicationLagBytes == 4096)
        #expect(h.node.primary.rpoAgeNs(nowNs: h.nowNs) == 10 * ProfileHarness.ms)
    }

    /// A write pacing let through, then held by the activity log (each of its extents holds a
    /// write the peer has not confirmed), goes the moment the log frees one: pacing charged
    /// it once. Charged again, it waited a second delay and took a second share of the budget.
    @Test func aWriteHeldByTheActivityLogAfterPacingIsNotPacedTwice() {
        var h = ProfileHarness(adaptive: false, rpoTargetMs: 100, pacingMaxMs: 20, logExtents: 2)
        h.send(.enable)
        if let number = h.logTransaction { h.send(.activityLogWritten(transaction: number, errno: 0)) }
        h.send(.linkUp)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        for (id, block) in [(RequestID(1), UInt64(0)), (2, 2)] {  // one write in each extent
            h.send(.request(id: id, .write(offsetBytes: block * 4096, lengthBytes: 4096, fua: false)))
            if let number = h.logTransaction { h.send(.activityLogWritten(transaction: number, errno: 0)) }
            h.send(.localWriteDone(sequence: WriteSequence(id), errno: 0))
            #expect(h.answered(id) == 0)
        }
        h.advance(ms: 60)  // nothing confirmed: past half the target, the pacer holds writes 20 ms apart
        #expect(h.node.rpoPacer?.admitBytesPerSecond != nil)
        // Pacing lets write 3 through (its first admission since the onset); both extents hold
        // a write the peer has not confirmed: write 3 waits for the log.
        h.send(.request(id: 3, .write(offsetBytes: 4 * 4096, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.isEmpty && h.actions.allSatisfy { if case .holdLocalWrite = $0 { false } else { true } })
        #expect(h.node.profileWakeAtNs == nil, "the log holds the write, not pacing")
        // The peer confirms both at once: the extents are free, and write 3 goes now.
        h.send(.peer(.dataAck(sequence: 1)))
        h.send(.peer(.dataAck(sequence: 2)))
        h.send(.peer(.durableThroughEpoch(2)))
        let admitted = h.actions.contains { action in
            switch action {
            case let .writeLocal(write), let .holdLocalWrite(write): write.sequence == 3
            default: false
            }
        }
        #expect(admitted, "write 3 waited for pacing a second time: \(h.actions)")
    }
}
