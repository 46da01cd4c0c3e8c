import Glibc
import TandemCore

// The primary's side of a simulated node: the state machine (ReplicationPrimary) and what the
// daemon's PrimaryReplicator decides around it today — the session and its basis from the
// record, the full copy, SyncComplete, drain, the disk-error and peer-failed rules — as the
// driver does them (docs/replication.md, "The daemon's driver"). These driver rules move into
// TandemCore's PrimaryNode (issue 8); this file then only maps its actions.

final class PrimarySide {
    var machine: ReplicationPrimary
    let session: UInt64
    var basis: SessionBasis
    var peerHeard = false
    var peerSynced: Bool
    var copyWanted: Bool
    var copyCursor = 0
    var copyReadInFlight = false
    var copyLastSequence: WriteSequence = 0
    var copyChunksOutstanding = 0
    var confirmedOnLink: WriteSequence?
    /// The peer said Inconsistent in its hello: until what was re-sent (through this
    /// sequence) is durable on it.
    var peerInconsistentThrough: WriteSequence?
    var draining = false
    /// The secondary accepted this link's Hello.
    var peerAccepted = false
    /// The peer's disk failed: replication is detached, writes go to the local disk only.
    var standalone = false
    var localIOInFlight = 0
    var wroteInSession = false
    /// Application requests waiting while a copy chunk is read (the driver's `parked`).
    var parked: [RequestID] = []
    var failedSequences: Set<WriteSequence> = []
    var sequenceOfRequest: [RequestID: WriteSequence] = [:]
    var deferred: [PrimaryEvent] = []

    init(config: ReplicationPrimaryConfig, session: UInt64, basis: SessionBasis) {
        machine = ReplicationPrimary(config: config)
        self.session = session
        self.basis = basis
        peerSynced = basis != .fullCopy
        copyWanted = basis == .fullCopy
    }
}

extension Simulation {
    /// A node starts (or restarts, or is promoted) as primary: the basis from its record
    /// (ResourceRoles' PrimaryStart), a new session.
    func startPrimary(_ node: SimNode, handedOver: Bool = false, peerLacksWrites: Bool = false) {
        let fault: PrimaryStartFault? = scenario.testingFault == .restartForgetsUnconfirmedWrites
            ? .restartForgetsUnconfirmedWrites : nil
        let start = PrimaryStart(PrimaryStartFacts(record: node.record, initialSync: scenario.initialSync,
                                                   handedOver: handedOver, peerLacksWrites: peerLacksWrites),
                                 fault: fault)
        let basis = start.basis
        node.record = start.record
        node.record.generation += 1
        // A FLUSH covers every write completed before it, also those of an earlier run (or
        // received as secondary) that the disk may still cache: the volume is flushed before
        // it is served. (ReplicationPrimary acknowledges a FLUSH before the session's first
        // write without a flush: docs/replication.md "The simulator", findings.)
        node.disk.flushNow()
        var session: UInt64
        repeat { session = random.between(1, UInt64.max - 1) } while checker.histories[session] != nil
        sessionsStarted += 1
        node.isPrimary = true
        node.lastPrimarySession = session
        node.primary = PrimarySide(config: scenario.primaryConfig, session: session, basis: basis)
        node.historySession = session
        node.lineage = checker.lineage
        if let problem = checker.startSession(session, base: node.disk.cache) { fail(problem) }
        rpo = RPOReference()
        trace("\(node.name) starts primary session \(session) (\(basis))")
        scheduleDial(afterNs: random.between(10_000, 1_000_000))
    }

    // MARK: State machine

    func drivePrimary(_ node: SimNode, _ event: PrimaryEvent) {
        guard let primary = node.primary else { return }
        var next: PrimaryEvent? = event
        while let event = next {
            primaryActions.removeAll(keepingCapacity: true)
            primary.machine.handle(event, nowNs: nowNs, into: &primaryActions)
            let actions = primaryActions
            for action in actions {
                trace("\(node.name) primary: \(action)")
                perform(action, node: node, primary: primary)
            }
            next = primary.deferred.isEmpty ? nil : primary.deferred.removeFirst()
        }
        afterPrimaryBatch(node, primary)
    }

    private func afterPrimaryBatch(_ node: SimNode, _ primary: PrimarySide) {
        admitParked(node, primary)
        continueCopy(node, primary)
        checkCopyDone(node, primary)
        confirmPeerIfInSync(node, primary)
        checkDrained(node)
    }

    private func perform(_ action: PrimaryAction, node: SimNode, primary: PrimarySide) {
        switch action {
        case let .submitLocalWrite(write):
            let range = blocks(offsetBytes: write.offsetBytes, lengthBytes: write.lengthBytes)
            rpo.admitted(write)
            primary.sequenceOfRequest[write.request] = write.sequence
            switch requests[write.request] {
            case let .write(blocks, fua, nil):
                let value = nextValue
                nextValue += 1
                requests[write.request] = .write(blocks: blocks, fua: fua, value: value)
                let extent = FakeDisk.Extent(firstBlock: range.lowerBound, values: Array(repeating: value, count: range.count))
                payloads[PayloadKey(session: primary.session, sequence: write.sequence)] = extent
                if let problem = checker.recordAdmission(
                    session: primary.session, sequence: write.sequence, epoch: write.epoch, blocks: range,
                    values: extent.values, isCopyChunk: false) {
                    return fail(problem)
                }
                if node.diskFailed {
                    primary.failedSequences.insert(write.sequence)
                    primary.deferred.append(.localWriteCompleted(sequence: write.sequence))
                } else {
                    primary.localIOInFlight += 1
                    submitWrite(node, extent, fua: write.fua, io: .primaryWrite(write.sequence))
                }
            case let .copyChunk(_, values):
                payloads[PayloadKey(session: primary.session, sequence: write.sequence)] =
                    FakeDisk.Extent(firstBlock: range.lowerBound, values: values)
                if let problem = checker.recordAdmission(
                    session: primary.session, sequence: write.sequence, epoch: write.epoch, blocks: range,
                    values: values, isCopyChunk: true) {
                    return fail(problem)
                }
                // The chunk was just read from this volume: nothing to write locally.
                primary.copyLastSequence = write.sequence
                primary.deferred.append(.localWriteCompleted(sequence: write.sequence))
            default:
                fail("the primary admitted request \(write.request), which is no unadmitted write")
            }
        case .submitLocalFlush:
            if node.diskFailed {
                primary.deferred.append(.localFlushCompleted)
            } else {
                primary.localIOInFlight += 1
                submitFlush(node, io: .primaryFlush)
            }
        case let .send(message):
            guard let link, link.primary == node.index else { return }
            sendToSecondary(.message(message))
        case let .acknowledgeWrite(request):
            let sequence = primary.sequenceOfRequest.removeValue(forKey: request) ?? 0
            rpo.acknowledged(sequence, atNs: nowNs)
            if case .copyChunk = requests[request] {
                requests[request] = nil
                primary.copyChunksOutstanding -= 1
                return
            }
            answer(request, errno: node.diskFailed || primary.failedSequences.contains(sequence) ? EIO : 0)
        case let .acknowledgeFlush(request):
            // After a disk failure no flush can promise durability.
            answer(request, errno: node.diskFailed ? EIO : 0)
        case .writesBlocked, .writesUnblocked:
            break
        case let .protocolViolation(reason):
            fail("primary \(node.name) reports a protocol violation by a real secondary: \(reason)")
        }
    }

    // MARK: Application requests

    /// An application request reaches the primary node.
    func submitToPrimary(_ node: SimNode, _ request: RequestID) {
        guard let primary = node.primary else { return }
        if primary.draining { return answer(request, errno: EROFS) }
        if node.diskFailed { return answer(request, errno: EIO) }
        if case .write = requests[request], !primary.wroteInSession {
            // Before the session's first write: the record no longer says the peer holds this
            // volume's content.
            primary.wroteInSession = true
            node.writeRecord { $0.cleanStop = 0 }
        }
        if primary.standalone {
            switch requests[request] {
            case let .write(blocks, fua, nil):
                let value = nextValue
                nextValue += 1
                requests[request] = .write(blocks: blocks, fua: fua, value: value)
                submitWrite(node, FakeDisk.Extent(firstBlock: blocks.lowerBound, values: Array(repeating: value, count: blocks.count)),
                            fua: fua, io: .standaloneWrite(request))
            case .flush:
                submitFlush(node, io: .standaloneFlush(request))
            default:
                break
            }
            return
        }
        primary.parked.append(request)
        admitParked(node, primary)
    }

    private func copyWaiting(_ node: SimNode, _ primary: PrimarySide) -> Bool {
        primary.copyReadInFlight || (copyWantsChunk(node, primary) && primary.localIOInFlight > 0)
    }

    private func admitParked(_ node: SimNode, _ primary: PrimarySide) {
        while !primary.parked.isEmpty, !copyWaiting(node, primary), !primary.machine.isBlocked, node.primary === primary {
            let request = primary.parked.removeFirst()
            switch requests[request] {
            case let .write(blocks, fua, nil):
                drivePrimaryNested(node, .writeSubmitted(
                    request: request, offsetBytes: UInt64(blocks.lowerBound) * SimulationScenario.blockSizeBytes,
                    lengthBytes: UInt32(UInt64(blocks.count) * SimulationScenario.blockSizeBytes), fua: fua))
            case .flush:
                drivePrimaryNested(node, .flushSubmitted(request: request))
            default:
                break
            }
        }
    }

    /// Feeds an event from inside a batch's follow-up (no recursion into afterPrimaryBatch).
    private func drivePrimaryNested(_ node: SimNode, _ event: PrimaryEvent) {
        guard let primary = node.primary else { return }
        var next: PrimaryEvent? = event
        while let event = next {
            primaryActions.removeAll(keepingCapacity: true)
            primary.machine.handle(event, nowNs: nowNs, into: &primaryActions)
            let actions = primaryActions
            for action in actions {
                trace("\(node.name) primary: \(action)")
                perform(action, node: node, primary: primary)
            }
            next = primary.deferred.isEmpty ? nil : primary.deferred.removeFirst()
        }
    }

    // MARK: Link

    func primaryLinkUp(_ node: SimNode, _ primary: PrimarySide) {
        primary.confirmedOnLink = nil
        primary.peerInconsistentThrough = nil
        primary.peerAccepted = false
        sendToSecondary(.hello(session: primary.session, basis: primary.basis, nodeName: node.name, certificateNamesPeer: true))
        drivePrimary(node, .connectionUp)
    }

    func primaryLinkDown(_ node: SimNode, _ primary: PrimarySide) {
        guard !primary.standalone else { return }
        if primary.machine.isConnected { drivePrimary(node, .connectionDown) }
        // The copy starts over on the next connection.
        if primary.copyWanted && !primary.copyReadInFlight { primary.copyCursor = 0 }
    }

    func primaryReceived(_ message: ToPrimary, node: SimNode) {
        guard let primary = node.primary, !primary.standalone else { return }
        switch message {
        case let .message(message):
            switch message {
            case let .hello(epoch, copy):
                rpo.confirm(through: epoch)
                primary.peerHeard = true
                if copy == .inconsistent { primary.peerInconsistentThrough = primary.machine.lastSequence }
            case let .durableThroughEpoch(epoch):
                rpo.confirm(through: epoch)
            case .dataAck:
                break
            }
            drivePrimary(node, .peerMessage(message))
        case .accepted:
            break
        case .failoverRequest:
            failoverRequested(node)
        case let .refused(reason, refusal):
            trace("\(node.name) refused by the peer: \(refusal): \(reason)")
            disconnect("refused: \(reason)", notifySecondary: false)
            if refusal == .diskFailed {
                peerDiskFailed(node, primary)
            } else if refusal == .unrelatedData, primary.basis != .fullCopy {
                // unrelated-data: the peer cannot continue from this basis; copy everything.
                primary.basis = .fullCopy
                primary.peerSynced = false
                primary.copyWanted = true
                primary.copyCursor = 0
                if !primary.wroteInSession {
                    primary.wroteInSession = true
                    node.writeRecord { $0.cleanStop = 0 }
                }
            }
        }
    }

    /// The peer's disk failed: replication detaches. Held requests are answered as for a stop
    /// (a write whose local I/O completed: 0; a FLUSH: after a local flush), then the node
    /// writes alone.
    private func peerDiskFailed(_ node: SimNode, _ primary: PrimarySide) {
        primary.standalone = true
        node.writeRecord { $0.cleanStop = 0 }
        var held: [RequestID] = []
        for (request, _) in outstanding { held.append(request) }
        for request in held {
            switch requests[request] {
            case .write(_, _, nil):
                // Not admitted yet: it goes to the local disk now.
                primary.parked.removeAll { $0 == request }
                submitToPrimary(node, request)
            case .write(_, _, _?):
                // Admitted: if its local write is still in flight, answer when it completes.
                answerWhenLocalDone.insert(request)
            case .flush:
                primary.parked.removeAll { $0 == request }
                submitFlush(node, io: .standaloneFlush(request))
            default:
                break
            }
        }
        finishDetached(node, primary)
    }

    /// Answers the held writes whose local write completed (the rest: at their completion).
    func finishDetached(_ node: SimNode, _ primary: PrimarySide) {
        guard primary.standalone else { return }
        for request in answerWhenLocalDone.sorted() {
            guard let sequence = primary.sequenceOfRequest[request], outstanding.contains(where: { $0.request == request })
            else { answerWhenLocalDone.remove(request); continue }
            let inFlight = node.io.values.contains {
                if case let .primaryWrite(inFlight) = $0 { return inFlight == sequence }
                return false
            }
            if !inFlight {
                answerWhenLocalDone.remove(request)
                answer(request, errno: node.diskFailed || primary.failedSequences.contains(sequence) ? EIO : 0)
            }
        }
    }

    func primaryDiskFailed(_ node: SimNode, operation: String, errno: Int32) {
        guard !node.diskFailed else { return }
        trace("\(node.name) disk failed: \(operation) \(errno)")
        node.diskFailed = true
    }

    // MARK: Full copy

    private func copyWantsChunk(_ node: SimNode, _ primary: PrimarySide) -> Bool {
        primary.copyWanted && !node.diskFailed && !primary.copyReadInFlight && primary.machine.isPeerReady
            && link?.primary == node.index && primary.copyCursor < scenario.blockCount && !primary.machine.isBlocked
    }

    /// Reads the next chunk once no local write is in flight, so that it carries the newest
    /// data of its region and is sequenced after every write that touched it.
    private func continueCopy(_ node: SimNode, _ primary: PrimarySide) {
        guard copyWantsChunk(node, primary), primary.localIOInFlight == 0 else { return }
        let end = min(primary.copyCursor + scenario.copyChunkBlocks, scenario.blockCount)
        primary.copyReadInFlight = true
        events.schedule(.copyReadDone(node: node.index, incarnation: node.incarnation, blocks: primary.copyCursor..<end),
                        atNs: nowNs + random.between(10_000, 200_000))
    }

    func copyReadCompleted(_ node: SimNode, _ primary: PrimarySide, blocks: Range<Int>) {
        primary.copyReadInFlight = false
        let (values, errno) = node.disk.read(blocks)
        guard errno == 0 else {
            // The copy stays wanted and unfinished: the peer's copy stays Inconsistent.
            primaryDiskFailed(node, operation: "read", errno: errno)
            return afterPrimaryBatch(node, primary)
        }
        guard primary.copyCursor == blocks.lowerBound, primary.machine.isPeerReady else {
            // The link dropped while the chunk was read: the copy starts over.
            primary.copyCursor = 0
            return afterPrimaryBatch(node, primary)
        }
        primary.copyCursor = blocks.upperBound
        primary.copyChunksOutstanding += 1
        let request = nextRequest
        nextRequest += 1
        requests[request] = .copyChunk(blocks: blocks, values: values)
        // A chunk must end its epoch: in sync mode it stays unacknowledged until the peer
        // applied it, and a write admitted after it would join its epoch and be applied
        // concurrently with it on the peer (the older chunk data could land last). FUA ends
        // the epoch. (The daemon sends chunks without it: docs/replication.md "The
        // simulator", findings.)
        drivePrimary(node, .writeSubmitted(
            request: request, offsetBytes: UInt64(blocks.lowerBound) * SimulationScenario.blockSizeBytes,
            lengthBytes: UInt32(UInt64(blocks.count) * SimulationScenario.blockSizeBytes), fua: scenario.mode == .sync))
    }

    /// Once the last chunk's epoch is durable on the peer, the peer holds everything.
    private func checkCopyDone(_ node: SimNode, _ primary: PrimarySide) {
        guard primary.copyWanted, primary.copyCursor >= scenario.blockCount, !primary.copyReadInFlight,
            primary.copyChunksOutstanding == 0, primary.copyLastSequence != 0,
            primary.machine.epoch(ofSequence: primary.copyLastSequence) == nil,
            let link, link.primary == node.index, primary.machine.isPeerReady
        else { return }
        primary.copyWanted = false
        primary.peerSynced = true
        primary.confirmedOnLink = primary.copyLastSequence
        copiesCompleted += 1
        sendToSecondary(.syncComplete(throughSequence: primary.copyLastSequence))
    }

    /// SyncComplete whenever the peer holds every acknowledged write: in sync mode once per
    /// connection, in async mode each time the lag returns to 0 after new writes.
    private func confirmPeerIfInSync(_ node: SimNode, _ primary: PrimarySide) {
        guard let link, link.primary == node.index, primary.machine.isPeerReady, primary.peerSynced, !primary.copyWanted
        else { return }
        let sync = scenario.mode == .sync
        guard sync || primary.machine.lagBytes == 0 else { return }
        // Through the newest write that every earlier one is acknowledged with: a write
        // admitted but not yet acknowledged must undo the confirmation when it arrives (the
        // daemon confirms through `lastSequence`, which lets an async secondary say UpToDate
        // before it holds such a write: docs/replication.md "Known gaps").
        let unanswered = primary.sequenceOfRequest.values.min()
        let through = unanswered.map { $0 - 1 } ?? primary.machine.lastSequence
        if primary.confirmedOnLink == nil || (!sync && primary.confirmedOnLink != through) {
            primary.confirmedOnLink = through
            sendToSecondary(.syncComplete(throughSequence: through))
        }
    }

    func checkDrained(_ node: SimNode) {
        guard let primary = node.primary, primary.draining else { return }
        guard primary.machine.writesInFlight == 0, primary.parked.isEmpty, primary.localIOInFlight == 0,
            !primary.copyReadInFlight, primary.peerSynced, link?.primary == node.index
        else { return }
        trace("\(node.name) drained: hands over")
        handOver(from: node)
    }

    // MARK: Disk states

    /// What the primary says about its peer's copy (status `peer_disk_state`).
    func peerDiskState(_ node: SimNode) -> DiskState {
        guard let primary = node.primary else { return .unknown }
        if primary.standalone { return .failed }
        let peerReady = link?.primary == node.index && primary.machine.isPeerReady
        var copying = primary.copyWanted && !primary.peerSynced
        if let through = primary.peerInconsistentThrough {
            if through == 0 || primary.machine.epoch(ofSequence: through) == nil {
                primary.peerInconsistentThrough = nil
            } else {
                copying = true
            }
        }
        return DiskState.ofPeer(heard: primary.peerHeard, peerReady: peerReady, copying: copying,
                                sync: scenario.mode == .sync, lagBytes: primary.machine.lagBytes)
    }
}
