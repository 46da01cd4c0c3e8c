import TandemCore
import Testing

/// Drives one SecondaryNode as the daemon's driver does, collecting its actions.
private struct Harness {
    static let sizeBytes: UInt64 = 1 << 20
    var node: SecondaryNode
    var nowNs: UInt64 = 1_000_000

    init(record: ReplicationRecord = ReplicationRecord(), handedOver: Bool = false, cleanStop: Bool = false,
         initialSync: InitialSync = .full, fault: SecondaryTestingFault? = nil, queuedBytesMax: UInt64 = 256 << 20,
         group: String? = nil) {
        let machine = ReplicationSecondaryConfig(queuedBytesMax: queuedBytesMax, groupCommitIntervalNs: 1_000,
                                                 testingFault: fault)
        var config = SecondaryNodeConfig(
            machine: machine, resourceName: "r1", nodeName: "beta", peerName: "alpha",
            volumeSizeBytes: Self.sizeBytes, alignment: 4096, initialSync: initialSync)
        config.group = group
        node = SecondaryNode(config: config, record: record, handedOver: handedOver, cleanStop: cleanStop, nowNs: nowNs)
    }

    @discardableResult
    mutating func send(_ event: SecondaryNodeEvent) -> [SecondaryNodeAction] {
        var actions: [SecondaryNodeAction] = []
        node.handle(event, nowNs: nowNs, into: &actions)
        return actions
    }

    /// Hello (accepted) and handshake end; the actions of both.
    @discardableResult
    mutating func connect(session: UInt64, bitmap: UInt64) -> [SecondaryNodeAction] {
        let accepted = send(.hello(hello(session: session, bitmap: bitmap)))
        #expect(accepted.last == .acceptLink)
        return accepted + send(.linkEstablished)
    }

    @discardableResult
    mutating func data(_ sequence: WriteSequence, epoch: Epoch, block: UInt64 = 0) -> [SecondaryNodeAction] {
        send(.data(Self.write(sequence, epoch: epoch, block: block)))
    }

    static func write(_ sequence: WriteSequence, epoch: Epoch, block: UInt64 = 0) -> DataMessage {
        DataMessage(epoch: epoch, sequence: sequence, offsetBytes: block * 4096, lengthBytes: 4096,
                    flags: [.acknowledgedAfterApply])
    }
}

private func hello(session: UInt64, bitmap: UInt64, role: ResourceRole = .primary, name: String = "alpha",
                   sizeBytes: UInt64 = Harness.sizeBytes, certificate: Bool = true,
                   version: UInt16 = WireFormat.helloVersion) -> PrimaryHelloFacts {
    PrimaryHelloFacts(
        hello: WireHello(protocolVersion: version, role: role, nodeName: name, resourceName: "r1", volumeSizeBytes: sizeBytes,
                         generations: WireGenerations(current: session, bitmap: bitmap), promotionNumber: 0),
        certificateNamesPeer: certificate, certificateSubject: "CN=mallory")
}

private func writes(_ actions: [SecondaryNodeAction]) -> [WriteSequence] {
    actions.compactMap { if case .submitWrite(let write) = $0 { write.sequence } else { nil } }
}

private func records(_ actions: [SecondaryNodeAction]) -> [ReplicationRecord] {
    actions.compactMap { if case .writeRecord(let record) = $0 { record } else { nil } }
}

private func refusal(_ actions: [SecondaryNodeAction]) -> WireRefusal? {
    for case .refuseLink(let code, _) in actions { return code }
    return nil
}

/// A record of a synced copy of session 5, durable through epoch 3, from an earlier run.
private let syncedRecord = ReplicationRecord(generation: 4, session: 5, durableThroughEpoch: 3, synced: true)

@Suite struct SecondaryNodeTests {
    @Test func helloChecksRefuseWithTheirCodeAndChangeNothing() {
        var harness = Harness(record: ReplicationRecord(generation: 2, session: 5, synced: false))
        #expect(refusal(harness.send(.hello(hello(session: 9, bitmap: 9, certificate: false)))) == .unexpectedNode)
        #expect(refusal(harness.send(.hello(hello(session: 9, bitmap: 9, name: "mallory")))) == .unexpectedNode)
        let secondary = harness.send(.hello(hello(session: 9, bitmap: 9, role: .secondary)))
        #expect(secondary == [.refuseLink(.roleConflict, "'beta' is secondary for 'r1' too: neither node is primary")])
        #expect(refusal(harness.send(.hello(hello(session: 9, bitmap: 9, sizeBytes: 4096)))) == .sizeMismatch)
        // "In sync" (bitmap = session) for a copy whose full copy never finished.
        #expect(refusal(harness.send(.hello(hello(session: 9, bitmap: 9)))) == .unrelatedData)
        // Continuing a session this copy does not hold.
        var synced = Harness(record: syncedRecord)
        #expect(refusal(synced.send(.hello(hello(session: 9, bitmap: 4)))) == .unrelatedData)
        #expect(harness.node.connectionState == .wfConnection && harness.node.session == 5)
        #expect(synced.send(.linkEstablished).isEmpty)  // nothing was accepted
    }

    /// A consistency group's member issues nothing until its group's barrier allows it, so a
    /// primary too old to send GroupBarrier is refused, naming the group and the upgrade.
    @Test func aGroupMemberRefusesAPrimaryTooOldForGroupBarriers() {
        var member = Harness(group: "db")
        let old = member.send(.hello(hello(session: 7, bitmap: 0, version: WireFormat.groupVersion - 1)))
        guard case .refuseLink(.unsupportedVersion, let reason)? = old.last else {
            Issue.record("an old primary was not refused: \(old)")
            return
        }
        #expect(reason.contains("'db'"), "\(reason)")
        #expect(member.send(.hello(hello(session: 7, bitmap: 0))).last == .acceptLink)
        var loner = Harness()
        #expect(loner.send(.hello(hello(session: 7, bitmap: 0, version: WireFormat.groupVersion - 1))).last == .acceptLink)
    }

    @Test func aNewSessionsWritesWaitUntilItsRecordIsStable() {
        var harness = Harness()
        let up = harness.connect(session: 7, bitmap: 0)  // full copy into a fresh volume
        #expect(up.contains(.releasePayloads))
        #expect(up.contains(.send(.hello(durableThroughEpoch: 0, copy: .inconsistent))))
        #expect(up.contains(.notice(.connectionState(.connected))))
        #expect(harness.node.connectionState == .connected && harness.node.streamState == .syncTarget)
        #expect(harness.node.classify(Harness.write(1, epoch: 1)) == .new)
        let first = harness.data(1, epoch: 1)
        // The session is committed by its first write: the record says so, nothing is written yet.
        #expect(records(first) == [ReplicationRecord(generation: 1, session: 7, durableThroughEpoch: 0, synced: false)])
        #expect(writes(first).isEmpty)
        #expect(writes(harness.data(2, epoch: 1, block: 1)).isEmpty)
        // A stale record of another session does not release them; the session's does.
        #expect(writes(harness.send(.recorded(ReplicationRecord(generation: 1, session: 3)))).isEmpty)
        let stable = harness.send(.recorded(ReplicationRecord(generation: 1, session: 7)))
        #expect(writes(stable) == [1, 2])
        #expect(harness.send(.writeCompleted(sequence: 1, errno: 0)) == [.send(.dataAck(sequence: 1))])
        #expect(harness.node.diskState == .inconsistent)  // until SyncComplete
    }

    @Test func anUnprovenSessionThatEndsLeavesTheRecordedOne() {
        var harness = Harness(record: syncedRecord)
        harness.connect(session: 9, bitmap: 5)  // continues session 5
        #expect(harness.node.session == 9 && harness.node.machine.durableThroughEpoch == 0)
        let closed = harness.send(.linkClosed)
        #expect(closed.contains(.notice(.sessionAbandoned)))
        #expect(records(closed).isEmpty)
        #expect(harness.node.session == 5 && harness.node.machine.durableThroughEpoch == 3)
        #expect(harness.node.connectionState == .wfConnection && harness.node.diskState == .inconsistent)
        // The real primary's session 5 is answered as before: a reconnect, its durable epoch.
        let again = harness.connect(session: 5, bitmap: 5)
        #expect(!again.contains(.releasePayloads))
        #expect(again.contains(.send(.hello(durableThroughEpoch: 3, copy: .inconsistent))))  // restarted: re-send due
    }

    @Test func syncCompleteProvesAContinuedSessionButNeverAFullCopy() {
        var full = Harness(record: syncedRecord)
        full.connect(session: 9, bitmap: 0)
        #expect(full.send(.syncComplete(through: 0))
            == [.closeForViolation("protocol violation: SyncComplete before any Data of the session")])

        var continued = Harness(record: syncedRecord, handedOver: true)
        let up = continued.connect(session: 9, bitmap: 5)
        #expect(up.contains(.send(.hello(durableThroughEpoch: 0, copy: .consistent))))
        #expect(continued.node.diskState == .consistent)
        let confirmed = continued.send(.syncComplete(through: 0))
        #expect(records(confirmed) == [ReplicationRecord(generation: 5, session: 9, durableThroughEpoch: 0, synced: true,
                                                         continuedFrom: 5)])
        #expect(continued.node.diskState == .upToDate && continued.node.isRedundant)
        // A link loss now keeps the committed session.
        continued.send(.linkClosed)
        #expect(continued.node.session == 9 && continued.node.diskState == .consistent)
    }

    @Test func upToDateNeedsSyncCompleteUnlessTheTestingFaultLies() {
        var honest = Harness(record: syncedRecord, handedOver: true)
        honest.connect(session: 5, bitmap: 5)
        #expect(honest.node.diskState == .consistent)
        var lying = Harness(record: syncedRecord, handedOver: true, fault: .claimsUpToDateBeforeConfirmed)
        lying.connect(session: 5, bitmap: 5)
        #expect(lying.node.diskState == .upToDate)
        lying.send(.linkClosed)
        #expect(lying.node.diskState == .consistent)  // the fault lies only while connected
    }

    @Test func duplicatesAndBadFramesAreClassifiedBeforeAnyPayloadIsRead() {
        var harness = Harness(record: syncedRecord, handedOver: true)
        #expect(harness.node.classify(Harness.write(1, epoch: 4)) == .ignore)  // no link
        harness.connect(session: 5, bitmap: 5)
        #expect(harness.node.classify(Harness.write(1, epoch: 4)) == .new)
        harness.data(1, epoch: 4)
        #expect(harness.node.classify(Harness.write(1, epoch: 4)) == .duplicate)
        #expect(harness.node.classify(Harness.write(3, epoch: 4)) == .violation("protocol violation: data 3 of epoch 4 out of order"))
        let outside = DataMessage(epoch: 4, sequence: 2, offsetBytes: Harness.sizeBytes, lengthBytes: 4096, flags: [])
        #expect(harness.node.classify(outside)
            == .violation("protocol violation: write of 4096 bytes at 1048576 is outside or misaligned on the volume"))
        // A duplicate of a completed write is acknowledged again.
        harness.send(.writeCompleted(sequence: 1, errno: 0))
        #expect(harness.data(1, epoch: 4) == [.send(.dataAck(sequence: 1))])
    }

    @Test func aFrameThatDoesNotFitWaitsForRoomAndOneLargerThanTheBoundIsAViolation() {
        // Room for two 4 KiB writes: the third waits (backpressure) until a write completes.
        var harness = Harness(record: syncedRecord, handedOver: true, queuedBytesMax: 8192)
        harness.connect(session: 5, bitmap: 5)
        harness.data(1, epoch: 4)
        harness.data(2, epoch: 4, block: 1)
        #expect(harness.node.classify(Harness.write(3, epoch: 4, block: 2)) == .wait)
        // Delivered anyway, it is the driver's fault and ends the link rather than overrun the queue.
        var careless = harness
        #expect(careless.data(3, epoch: 4, block: 2).contains { if case .closeForViolation = $0 { true } else { false } })
        harness.send(.writeCompleted(sequence: 2, errno: 0))
        #expect(harness.node.classify(Harness.write(3, epoch: 4, block: 2)) == .wait)  // 1 still queued before it
        harness.send(.writeCompleted(sequence: 1, errno: 0))
        #expect(harness.node.classify(Harness.write(3, epoch: 4, block: 2)) == .new)
        let huge = DataMessage(epoch: 4, sequence: 3, offsetBytes: 0, lengthBytes: 12288, flags: [.acknowledgedAfterApply])
        #expect(harness.node.classify(huge)
            == .violation("protocol violation: data 3 of 12288 bytes exceeds the secondary's queue bound"))
    }

    @Test func aDiskErrorStopsAcknowledgingAndRefusesThePrimary() {
        var harness = Harness(record: syncedRecord, handedOver: true)
        harness.connect(session: 5, bitmap: 5)
        #expect(writes(harness.data(1, epoch: 4)) == [1])
        #expect(writes(harness.data(2, epoch: 4, block: 1)) == [2])
        let failed = harness.send(.writeCompleted(sequence: 1, errno: 28))
        let fault = SecondaryDiskFault(operation: "write", errno: 28)
        #expect(failed.first == .notice(.diskError(fault)))
        #expect(records(failed).map(\.synced) == [false])
        #expect(failed.contains(.closeLink("this node's disk failed (write: errno 28)")))
        #expect(!failed.contains { if case .send = $0 { true } else { false } })
        #expect(harness.node.diskState == .failed && harness.node.connectionState == .wfConnection)
        // The other write lands, but nothing is acknowledged any more.
        #expect(harness.send(.writeCompleted(sequence: 2, errno: 0)).isEmpty)
        // The driver supplies the text; later Hellos are refused with it.
        harness.send(.diskFailed(SecondaryDiskFault(operation: "write", errno: 28, message: "No space left on device")))
        #expect(harness.send(.hello(hello(session: 5, bitmap: 5)))
            == [.refuseLink(.diskFailed, "the disk of resource 'r1' failed: write: No space left on device (errno 28)")])
        // A later error is reported (counted) but changes nothing more.
        #expect(harness.send(.flushCompleted(errno: 5)) == [.notice(.diskError(SecondaryDiskFault(operation: "flush", errno: 5)))])
    }

    @Test func aSwitchOfSessionWaitsForTheOldSessionsWrites() {
        var harness = Harness(record: syncedRecord, handedOver: true)
        harness.connect(session: 5, bitmap: 5)
        #expect(writes(harness.data(1, epoch: 4)) == [1])
        // A new connection replaces the old one at once…
        let replaced = harness.send(.hello(hello(session: 9, bitmap: 5)))
        #expect(replaced.first == .closeLink("replaced by a new connection from the primary"))
        #expect(replaced.last == .acceptLink)
        // …but its new session cannot start while write 1 is on its way to the disk.
        #expect(harness.send(.linkEstablished).first == .closeLink("writes of the previous session still in flight"))
        #expect(harness.node.session == 5)
    }

    @Test func theRestartRuleAndTheFreshCopyRule() {
        #expect(SecondaryNode.restarted(record: syncedRecord, handedOver: false))
        #expect(!SecondaryNode.restarted(record: syncedRecord, handedOver: true))
        #expect(!SecondaryNode.restarted(record: ReplicationRecord(), handedOver: false))
        #expect(SecondaryNode.isSynced(record: ReplicationRecord(), initialSync: .none))
        #expect(!SecondaryNode.isSynced(record: ReplicationRecord(), initialSync: .full))
        #expect(!SecondaryNode.isSynced(record: ReplicationRecord(generation: 1), initialSync: .none))
        #expect(Harness(record: syncedRecord).node.diskState == .inconsistent)
        #expect(Harness(record: syncedRecord, handedOver: true).node.diskState == .consistent)
    }

    /// A copy whose last run stopped cleanly (flushed after its last write) is the epoch
    /// prefix that stop left: Consistent at restart, so a forced failover may promote it. Its
    /// first re-sent write may land over a newer one, so from then on it is Inconsistent until
    /// the re-send is applied, as after a crash; its Hello says so from the start.
    @Test func aCleanlyStoppedCopyIsConsistentUntilItsFirstReSentWrite() {
        #expect(Harness(record: syncedRecord, cleanStop: false).node.diskState == .inconsistent)
        var harness = Harness(record: syncedRecord, cleanStop: true)
        #expect(harness.node.diskState == .consistent)
        // An unsynced record (a full copy stopped half-way) is Inconsistent whatever the stop.
        #expect(Harness(record: ReplicationRecord(generation: 4, session: 5, synced: false), cleanStop: true)
            .node.diskState == .inconsistent)
        let up = harness.connect(session: 5, bitmap: 5)
        #expect(up.contains(.send(.hello(durableThroughEpoch: 3, copy: .inconsistent))))  // the re-send is due
        #expect(harness.node.diskState == .consistent)
        #expect(writes(harness.data(10, epoch: 4)) == [10])
        #expect(harness.node.diskState == .inconsistent)
        harness.send(.writeCompleted(sequence: 10, errno: 0))
        harness.send(.message(.resendComplete(throughSequence: 10)))
        #expect(harness.node.diskState == .consistent)
    }

    /// The daemon records a clean stop only when the node says the stopped copy is an epoch
    /// prefix: nothing in flight, no failed disk, and a consistent machine (or nothing
    /// written since a clean start).
    @Test func aStopLeavesAConsistentCopyOnlyWithNothingInFlightAndAPrefixApplied() {
        var streaming = Harness(record: syncedRecord, handedOver: true)
        streaming.connect(session: 5, bitmap: 5)
        #expect(writes(streaming.data(1, epoch: 4)) == [1])
        streaming.send(.stop)
        #expect(!streaming.node.stopLeavesConsistentCopy)  // write 1 is still in flight
        streaming.send(.writeCompleted(sequence: 1, errno: 0))
        #expect(streaming.node.stopLeavesConsistentCopy)

        var crashed = Harness(record: syncedRecord)
        crashed.send(.stop)
        #expect(!crashed.node.stopLeavesConsistentCopy)  // restarted after a crash, never re-sent
        var clean = Harness(record: syncedRecord, cleanStop: true)
        #expect(!clean.node.stopLeavesConsistentCopy)  // not stopping yet
        clean.send(.stop)
        #expect(clean.node.stopLeavesConsistentCopy)

        var failed = Harness(record: syncedRecord, handedOver: true)
        failed.send(.diskFailed(SecondaryDiskFault(operation: "write", errno: 5)))
        failed.send(.stop)
        #expect(!failed.node.stopLeavesConsistentCopy)
    }

    @Test func aProbeIsDueAfterAQuietPeriodThenAtMostEveryInterval() {
        var harness = Harness()
        let start = harness.nowNs
        harness.nowNs = start + 10_000_000_000 - 1
        #expect(!harness.send(.tick).contains(.probe))
        harness.nowNs = start + 10_000_000_000
        #expect(harness.send(.tick).contains(.probe))
        harness.nowNs += 29_000_000_000
        #expect(!harness.send(.tick).contains(.probe))
        harness.nowNs += 1_000_000_000
        #expect(harness.send(.tick).contains(.probe))
        // A primary connects: no probe while it is there, nor for a quiet period after.
        #expect(harness.connect(session: 7, bitmap: 0).contains(.endProbe))
        harness.nowNs += 60_000_000_000
        #expect(!harness.send(.tick).contains(.probe))
        harness.send(.linkClosed)
        harness.nowNs += 9_000_000_000
        #expect(!harness.send(.tick).contains(.probe))
        harness.nowNs += 2_000_000_000
        #expect(harness.send(.tick).contains(.probe))
        harness.send(.stop)
        harness.nowNs += 60_000_000_000
        #expect(!harness.send(.tick).contains(.probe))
    }

    @Test func aPlannedFailoverIsAnsweredByDemotedOrTheLinksEnd() {
        var harness = Harness(record: syncedRecord, handedOver: true)
        #expect(harness.send(.requestFailover) == [.failoverAnswered(demoted: false)])
        harness.connect(session: 5, bitmap: 5)
        #expect(harness.send(.requestFailover) == [.sendFailoverRequest])
        #expect(harness.send(.demoted) == [.notice(.peerDemoted), .failoverAnswered(demoted: true)])
        #expect(harness.send(.requestFailover) == [.sendFailoverRequest])
        #expect(harness.send(.linkClosed).first == .failoverAnswered(demoted: false))
    }

    @Test func aStopLeavesANewSessionsHeldWritesUnwritten() {
        var harness = Harness()
        harness.connect(session: 7, bitmap: 0)
        #expect(writes(harness.data(1, epoch: 1)).isEmpty)
        harness.send(.stop)
        #expect(writes(harness.send(.recorded(ReplicationRecord(generation: 1, session: 7)))).isEmpty)
    }

    @Test func aFailedRecordWriteFailsTheNode() {
        var harness = Harness(record: syncedRecord, handedOver: true)
        harness.connect(session: 5, bitmap: 5)
        let failed = harness.send(.recordFailed(errno: 5))
        #expect(failed.first == .notice(.diskError(SecondaryDiskFault(operation: "metadata write", errno: 5))))
        #expect(harness.node.diskState == .failed && !harness.node.isConnected)
        #expect(harness.node.classify(Harness.write(1, epoch: 4)) == .ignore)
    }

    @Test func stoppingClosesTheLinkAndRefusesHellos() {
        var harness = Harness(record: syncedRecord, handedOver: true)
        harness.connect(session: 5, bitmap: 5)
        let stop = harness.send(.stop)
        #expect(stop.first == .closeLink("resource stopping"))
        #expect(refusal(harness.send(.hello(hello(session: 5, bitmap: 5)))) == .busy)
        #expect(harness.node.connectionState == .wfConnection)
    }
}
