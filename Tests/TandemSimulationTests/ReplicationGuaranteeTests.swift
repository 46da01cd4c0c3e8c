import Testing
import TandemCore

// Focused, hand-driven checks of the epoch rule, the acknowledgement conditions, group
// commit, consistency after restart and RPO accounting. Each test names the guarantee.

private struct PrimaryHarness {
    var primary: ReplicationPrimary
    var nowNs: UInt64 = 0
    var actions: [PrimaryAction] = []

    init(_ mode: ReplicationAckMode, bufferBytesMax: UInt64 = 1 << 20) {
        primary = ReplicationPrimary(config: ReplicationPrimaryConfig(mode: mode, bufferBytesMax: bufferBytesMax))
    }

    @discardableResult
    mutating func send(_ event: PrimaryEvent, atNs: UInt64? = nil) -> [PrimaryAction] {
        if let atNs { nowNs = atNs }
        actions.removeAll()
        primary.handle(event, nowNs: nowNs, into: &actions)
        return actions
    }

    mutating func connect(durableThroughEpoch: Epoch = 0) {
        send(.connectionUp)
        send(.peerMessage(.hello(durableThroughEpoch: durableThroughEpoch, copy: .consistent)))
    }

    /// Submits a write and returns its sequence and epoch.
    mutating func write(_ request: RequestID, block: UInt64, fua: Bool = false) -> LocalWrite {
        let actions = send(.writeSubmitted(request: request, offsetBytes: block * 4096, lengthBytes: 4096, fua: fua))
        for case let .submitLocalWrite(write) in actions { return write }
        Issue.record("write \(request) was not submitted: \(actions)")
        return LocalWrite(request: 0, sequence: 0, epoch: 0, offsetBytes: 0, lengthBytes: 0, fua: false)
    }
}

private func acknowledges(_ actions: [PrimaryAction], write request: RequestID) -> Bool {
    actions.contains(.acknowledgeWrite(request: request))
}

private func acknowledges(_ actions: [PrimaryAction], flush request: RequestID) -> Bool {
    actions.contains(.acknowledgeFlush(request: request))
}

@Suite struct EpochRuleTests {
    @Test func concurrentWritesShareAnEpochAndAWriteAfterAnAcknowledgementStartsANewOne() {
        var harness = PrimaryHarness(.async)
        let a = harness.write(1, block: 0)
        let b = harness.write(2, block: 1)
        #expect(a.epoch == 1 && b.epoch == 1)
        #expect(acknowledges(harness.send(.localWriteCompleted(sequence: a.sequence)), write: 1))
        // C may depend on A: it must not share A's epoch.
        let c = harness.write(3, block: 2)
        #expect(c.epoch == 2)
    }

    @Test func everyFlushAndFUAEndsTheEpoch() {
        var harness = PrimaryHarness(.async)
        #expect(harness.write(1, block: 0).epoch == 1)
        harness.send(.flushSubmitted(request: 2))
        let fua = harness.write(3, block: 1, fua: true)
        #expect(fua.epoch == 2)
        #expect(harness.write(4, block: 2).epoch == 3)
    }

    @Test func theSecondaryIsToldWhenAnEpochCloses() {
        var harness = PrimaryHarness(.async)
        harness.connect()
        let a = harness.write(1, block: 0)
        let actions = harness.send(.localWriteCompleted(sequence: a.sequence))
        #expect(actions.contains(.send(.epochBarrier(epoch: 1))))
    }
}

@Suite struct AcknowledgementTests {
    @Test func syncWriteIsAcknowledgedOnlyAfterBothNodesCompletedIt() {
        var harness = PrimaryHarness(.sync)
        harness.connect()
        let a = harness.write(1, block: 0)
        #expect(!acknowledges(harness.send(.localWriteCompleted(sequence: a.sequence)), write: 1))
        #expect(acknowledges(harness.send(.peerMessage(.dataAck(sequence: a.sequence))), write: 1))
    }

    @Test func syncFlushIsAcknowledgedOnlyWhenDurableOnBothNodes() {
        var harness = PrimaryHarness(.sync)
        harness.connect()
        let a = harness.write(1, block: 0)
        harness.send(.localWriteCompleted(sequence: a.sequence))
        harness.send(.peerMessage(.dataAck(sequence: a.sequence)))
        let flushActions = harness.send(.flushSubmitted(request: 2))
        #expect(flushActions.contains(.submitLocalFlush))
        #expect(flushActions.contains(.send(.flushRequest(throughEpoch: 1))))
        #expect(!acknowledges(harness.send(.localFlushCompleted), flush: 2))
        #expect(acknowledges(harness.send(.peerMessage(.durableThroughEpoch(1))), flush: 2))
    }

    @Test func syncFUAWriteIsAcknowledgedOnlyWhenDurableOnBothNodes() {
        var harness = PrimaryHarness(.sync)
        harness.connect()
        let a = harness.write(1, block: 0, fua: true)
        harness.send(.localWriteCompleted(sequence: a.sequence))
        #expect(!acknowledges(harness.send(.peerMessage(.dataAck(sequence: a.sequence))), write: 1))
        #expect(acknowledges(harness.send(.peerMessage(.durableThroughEpoch(a.epoch))), write: 1))
    }

    @Test func asyncWriteIsAcknowledgedAfterTheLocalCompletionAlone() {
        var harness = PrimaryHarness(.async)
        let a = harness.write(1, block: 0)
        #expect(acknowledges(harness.send(.localWriteCompleted(sequence: a.sequence)), write: 1))
    }

    @Test func asyncFullBufferBlocksNewWritesUntilTheSecondaryConfirms() {
        var harness = PrimaryHarness(.async, bufferBytesMax: 2 * 4096)
        harness.connect()
        let a = harness.write(1, block: 0)
        _ = harness.write(2, block: 1)
        harness.send(.localWriteCompleted(sequence: a.sequence))
        let blocked = harness.send(.writeSubmitted(request: 3, offsetBytes: 2 * 4096, lengthBytes: 4096, fua: false))
        #expect(blocked.contains(.writesBlocked) && harness.primary.isBlocked)
        #expect(!blocked.contains { if case .submitLocalWrite = $0 { true } else { false } })
        let released = harness.send(.peerMessage(.durableThroughEpoch(1)))
        #expect(released.contains(.writesUnblocked) && !harness.primary.isBlocked)
        #expect(released.contains { if case .submitLocalWrite(let w) = $0 { w.request == 3 } else { false } })
    }

    @Test func reconnectResendsEverythingAfterTheSecondarysDurableEpoch() {
        var harness = PrimaryHarness(.async)
        harness.connect()
        let a = harness.write(1, block: 0)
        harness.send(.localWriteCompleted(sequence: a.sequence))
        let b = harness.write(2, block: 1)
        harness.send(.localWriteCompleted(sequence: b.sequence))
        harness.send(.peerMessage(.durableThroughEpoch(1)))
        harness.send(.connectionDown)
        harness.send(.connectionUp)
        let resent = harness.send(.peerMessage(.hello(durableThroughEpoch: 1, copy: .consistent)))
        let data = resent.compactMap { if case .send(.data(let m)) = $0 { m.sequence } else { nil } }
        #expect(data == [b.sequence])
        #expect(resent.last == .send(.resendComplete(throughSequence: b.sequence)))
    }
}

@Suite struct RPOAccountingTests {
    @Test func lagCountsAcknowledgedWritesUntilTheSecondaryConfirmsThemDurable() {
        var harness = PrimaryHarness(.async)
        harness.connect()
        let a = harness.write(1, block: 0)
        #expect(harness.primary.lagBytes == 0)  // not acknowledged yet: not the user's loss
        harness.send(.localWriteCompleted(sequence: a.sequence), atNs: 1_000)
        let b = harness.write(2, block: 1)
        harness.send(.localWriteCompleted(sequence: b.sequence), atNs: 4_000)
        #expect(harness.primary.lagBytes == 8192)
        #expect(harness.primary.rpoAgeNs(nowNs: 10_000) == 9_000)
        harness.send(.peerMessage(.durableThroughEpoch(1)), atNs: 11_000)
        #expect(harness.primary.lagBytes == 4096)
        #expect(harness.primary.rpoAgeNs(nowNs: 12_000) == 8_000)
        harness.send(.peerMessage(.durableThroughEpoch(2)), atNs: 13_000)
        #expect(harness.primary.lagBytes == 0 && harness.primary.rpoAgeNs(nowNs: 14_000) == 0)
    }

    @Test func syncLagCountsWritesTheSecondaryCompletedButHasNotFlushed() {
        var harness = PrimaryHarness(.sync)
        harness.connect()
        let a = harness.write(1, block: 0)
        harness.send(.localWriteCompleted(sequence: a.sequence), atNs: 100)
        harness.send(.peerMessage(.dataAck(sequence: a.sequence)), atNs: 300)
        #expect(harness.primary.lagBytes == 4096 && harness.primary.rpoAgeNs(nowNs: 1_300) == 1_000)
    }
}

private struct SecondaryHarness {
    var secondary: ReplicationSecondary
    var actions: [SecondaryAction] = []
    var nowNs: UInt64 = 0

    init(_ config: ReplicationSecondaryConfig, durableThroughEpoch: Epoch = 0, restarted: Bool = false) {
        secondary = ReplicationSecondary(config: config, durableThroughEpoch: durableThroughEpoch, restarted: restarted)
    }

    @discardableResult
    mutating func send(_ event: SecondaryEvent, atNs: UInt64? = nil) -> [SecondaryAction] {
        if let atNs { nowNs = atNs }
        actions.removeAll()
        secondary.handle(event, nowNs: nowNs, into: &actions)
        return actions
    }

    @discardableResult
    mutating func data(_ sequence: WriteSequence, epoch: Epoch, block: UInt64 = 0, flags: DataFlags = []) -> [SecondaryAction] {
        send(.message(.data(DataMessage(epoch: epoch, sequence: sequence, offsetBytes: block * 4096, lengthBytes: 4096, flags: flags))))
    }
}

private func submitted(_ actions: [SecondaryAction]) -> [WriteSequence] {
    actions.compactMap { if case .submitWrite(let write) = $0 { write.sequence } else { nil } }
}

@Suite struct SecondaryOrderTests {
    @Test func secondaryAppliesEpochNPlusOneOnlyAfterEveryWriteOfEpochNCompleted() {
        var harness = SecondaryHarness(ReplicationSecondaryConfig())
        harness.send(.connectionUp)
        #expect(submitted(harness.data(1, epoch: 1)) == [1])
        #expect(submitted(harness.data(2, epoch: 1, block: 1)) == [2])
        #expect(submitted(harness.data(3, epoch: 2, block: 2)).isEmpty)
        #expect(submitted(harness.send(.writeCompleted(sequence: 2))).isEmpty)
        #expect(submitted(harness.send(.writeCompleted(sequence: 1))) == [3])
    }

    @Test func aWriteAcknowledgedAfterApplyGoesAheadOfItsEpochUnlessItOverlapsAnOutstandingOne() {
        var harness = SecondaryHarness(ReplicationSecondaryConfig())
        harness.send(.connectionUp)
        let sync: DataFlags = [.acknowledgedAfterApply]
        #expect(submitted(harness.data(1, epoch: 1, block: 0, flags: sync)) == [1])
        #expect(submitted(harness.data(2, epoch: 2, block: 1, flags: sync)) == [2], "no overlap: ahead of epoch 1")
        #expect(submitted(harness.data(3, epoch: 3, block: 0, flags: sync)).isEmpty, "overlaps write 1, still outstanding")
        #expect(submitted(harness.data(4, epoch: 3, block: 2, flags: sync)).isEmpty, "submission stays in sequence order")
        #expect(submitted(harness.send(.writeCompleted(sequence: 2))).isEmpty)
        #expect(submitted(harness.send(.writeCompleted(sequence: 1))) == [3, 4])
        // Completion is still tracked in order: write 4 stays queued behind write 3.
        harness.send(.writeCompleted(sequence: 4))
        #expect(harness.secondary.queuedWrites == 2)
        harness.send(.writeCompleted(sequence: 3))
        #expect(harness.secondary.queuedWrites == 0)
    }

    @Test func withoutTheFlagOrWithDiskDrainFlushEpochsStayStrictlyOrdered() {
        var flush = SecondaryHarness(ReplicationSecondaryConfig(diskDrain: .flush))
        flush.send(.connectionUp)
        #expect(submitted(flush.data(1, epoch: 1, block: 0, flags: [.acknowledgedAfterApply])) == [1])
        #expect(submitted(flush.data(2, epoch: 2, block: 1, flags: [.acknowledgedAfterApply])).isEmpty)
        var plain = SecondaryHarness(ReplicationSecondaryConfig())
        plain.send(.connectionUp)
        #expect(submitted(plain.data(1, epoch: 1, block: 0)) == [1])
        #expect(submitted(plain.data(2, epoch: 2, block: 1)).isEmpty)
    }

    @Test func groupCommitFlushesOnceForSeveralEpochs() {
        let config = ReplicationSecondaryConfig(groupCommitIntervalNs: 1_000)
        var harness = SecondaryHarness(config)
        harness.send(.connectionUp)
        var flushes = 0
        for epoch in Epoch(1)...3 {
            harness.data(epoch, epoch: epoch, block: epoch)
            flushes += harness.send(.writeCompleted(sequence: epoch), atNs: 100 * epoch).filter { $0 == .submitFlush }.count
        }
        flushes += harness.send(.message(.epochBarrier(epoch: 3)), atNs: 400).filter { $0 == .submitFlush }.count
        #expect(flushes == 0)
        #expect(harness.send(.tick, atNs: 1_200).contains(.submitFlush))
        #expect(harness.send(.flushCompleted).contains(.recordDurableEpoch(3)))
        #expect(harness.send(.durableEpochRecorded(3)).contains(.send(.durableThroughEpoch(3))))
    }

    /// The interval counts from an epoch's own completion, also when it completed while the
    /// previous flush was in flight: the flush's completion does not restart its wait (that
    /// added a whole flush to the async RPO: docs/replication.md, *Group commit*).
    @Test func anEpochCompletedDuringAFlushIsFlushedAnIntervalAfterItsOwnCompletion() {
        var harness = SecondaryHarness(ReplicationSecondaryConfig(groupCommitIntervalNs: 1_000))
        harness.send(.connectionUp)
        harness.data(1, epoch: 1)
        harness.send(.writeCompleted(sequence: 1), atNs: 100)
        harness.send(.message(.epochBarrier(epoch: 1)), atNs: 100)
        #expect(harness.secondary.flushDeadlineNs == 1_100)
        #expect(harness.send(.tick, atNs: 1_100).contains(.submitFlush))
        // Epoch 2 completes at 1,200 while epoch 1's flush runs until 2,100.
        harness.data(2, epoch: 2, block: 1)
        harness.send(.writeCompleted(sequence: 2), atNs: 1_200)
        #expect(!harness.send(.message(.epochBarrier(epoch: 2)), atNs: 1_200).contains(.submitFlush))
        #expect(harness.secondary.flushDeadlineNs == nil, "a flush is in flight")
        #expect(!harness.send(.flushCompleted, atNs: 2_100).contains(.submitFlush))
        #expect(harness.secondary.flushDeadlineNs == 2_200)
        #expect(harness.send(.tick, atNs: 2_200).contains(.submitFlush))
        // A flush that outlasts the interval: what completed meanwhile is flushed at once.
        harness.data(3, epoch: 3, block: 2)
        harness.send(.writeCompleted(sequence: 3), atNs: 2_300)
        harness.send(.message(.epochBarrier(epoch: 3)), atNs: 2_300)
        #expect(harness.send(.flushCompleted, atNs: 3_500).contains(.submitFlush))
    }

    @Test func aFlushRequestFromThePrimaryIsServedAtOnce() {
        var harness = SecondaryHarness(ReplicationSecondaryConfig(groupCommitIntervalNs: 1_000_000))
        harness.send(.connectionUp)
        harness.data(1, epoch: 1)
        #expect(harness.send(.writeCompleted(sequence: 1)).contains(.send(.dataAck(sequence: 1))))
        #expect(harness.send(.message(.flushRequest(throughEpoch: 1)), atNs: 10).contains(.submitFlush))
    }

    @Test func diskDrainFlushFlushesAtEveryEpochBoundaryBeforeTheNextEpoch() {
        var harness = SecondaryHarness(ReplicationSecondaryConfig(diskDrain: .flush))
        harness.send(.connectionUp)
        harness.data(1, epoch: 1)
        harness.data(2, epoch: 2, block: 1)
        let completed = harness.send(.writeCompleted(sequence: 1))
        #expect(completed.contains(.submitFlush) && submitted(completed).isEmpty)
        #expect(submitted(harness.send(.flushCompleted)) == [2])
    }

    @Test func restartedSecondaryIsInconsistentUntilThePrimaryResentWhatFollowedItsDurableEpoch() {
        var harness = SecondaryHarness(ReplicationSecondaryConfig(), durableThroughEpoch: 4, restarted: true)
        #expect(!harness.secondary.isConsistent)
        #expect(harness.send(.connectionUp) == [.send(.hello(durableThroughEpoch: 4, copy: .inconsistent))])
        harness.data(10, epoch: 5)
        harness.send(.message(.resendComplete(throughSequence: 10)))
        #expect(!harness.secondary.isConsistent)  // re-sent, not yet re-applied
        harness.send(.writeCompleted(sequence: 10))
        #expect(harness.secondary.isConsistent)
    }

    @Test func outOfOrderDataIsRefused() {
        var harness = SecondaryHarness(ReplicationSecondaryConfig())
        harness.send(.connectionUp)
        harness.data(1, epoch: 1)
        let actions = harness.data(3, epoch: 1)
        #expect(actions.contains { if case .protocolViolation = $0 { true } else { false } })
        #expect(submitted(actions).isEmpty)
    }
}

@Suite struct BadPeerInputTests {
    private func isViolation(_ actions: [PrimaryAction]) -> Bool {
        actions.contains { if case .protocolViolation = $0 { true } else { false } }
    }

    @Test func aDurableAckForAnEpochStillOpenIsRefusedAndAcknowledgesNothing() {
        var harness = PrimaryHarness(.sync)
        harness.connect()
        let a = harness.write(1, block: 0, fua: false)
        harness.send(.localWriteCompleted(sequence: a.sequence))
        let actions = harness.send(.peerMessage(.durableThroughEpoch(1)))
        #expect(isViolation(actions) && !acknowledges(actions, write: 1))
        #expect(!harness.primary.isPeerReady && harness.primary.peerDurableEpoch == 0)
    }

    @Test func aHelloClaimingLessThanWasConfirmedIsRefused() {
        var harness = PrimaryHarness(.async)
        harness.connect()
        let a = harness.write(1, block: 0)
        harness.send(.localWriteCompleted(sequence: a.sequence))
        harness.send(.peerMessage(.durableThroughEpoch(1)))
        harness.send(.connectionDown)
        harness.send(.connectionUp)
        #expect(isViolation(harness.send(.peerMessage(.hello(durableThroughEpoch: 0, copy: .consistent)))))
    }

    @Test func aDataAckForAWriteNeverSentIsRefused() {
        var harness = PrimaryHarness(.sync)
        harness.connect()
        #expect(isViolation(harness.send(.peerMessage(.dataAck(sequence: 9)))))
    }

    @Test func statusReportsLagAndRPOInMilliseconds() {
        var harness = PrimaryHarness(.async)
        harness.connect()
        let a = harness.write(1, block: 0)
        harness.send(.localWriteCompleted(sequence: a.sequence), atNs: 2_000_000)
        let status = harness.primary.status(nowNs: 9_500_000)
        #expect(status.lagBytes == 4096 && status.rpoMs == 7 && status.openEpoch == 1)
    }
}
