import Glibc
import TandemCore

// The secondary's side of a simulated node: TandemCore's SecondaryNode, the machine the daemon
// runs (SecondaryReplicator only carries out its actions). This file does what that driver
// does: it turns the simulated network, disk and record store into the node's events and
// carries out its actions.

extension Simulation {
    static let resourceName = "sim"

    func secondaryConfig(for node: SimNode) -> SecondaryNodeConfig {
        SecondaryNodeConfig(
            machine: scenario.secondaryConfig, resourceName: Self.resourceName, nodeName: node.name,
            peerName: nodes[1 - node.index].name,
            volumeSizeBytes: UInt64(scenario.blockCount) * SimulationScenario.blockSizeBytes,
            alignment: Int(SimulationScenario.blockSizeBytes), initialSync: scenario.initialSync,
            stagingBytesMax: scenario.stagingBytesMax)
    }

    /// A node starts as secondary from its record (`handedOver`: it just demoted and holds
    /// every write, so it is not "restarted").
    func startSecondary(_ node: SimNode, handedOver: Bool) {
        node.isPrimary = false
        node.crashedPrimary = false
        node.sealedBitmap = nil
        node.trackedInMemory = nil
        node.unionLeft = nil  // Resource.loadUnionLeftAtOpen: a secondary resumes no union
        node.secondary = SecondaryNode(config: secondaryConfig(for: node), record: node.record, handedOver: handedOver,
                                       nowNs: nowNs)
        trace("\(node.name) starts as secondary (record session \(node.record.session), synced \(node.record.synced))")
    }

    func driveSecondary(_ node: SimNode, _ event: SecondaryNodeEvent) {
        guard node.secondary != nil else { return }
        secondaryActions.removeAll(keepingCapacity: true)
        node.secondary!.handle(event, nowNs: nowNs, into: &secondaryActions)
        let actions = secondaryActions
        for action in actions {
            trace("\(node.name) secondary: \(action)")
            perform(action, node: node)
            if failure != nil || node.secondary == nil { return }
        }
    }

    private func perform(_ action: SecondaryNodeAction, node: SimNode) {
        guard let secondary = node.secondary else { return }
        switch action {
        case .acceptLink:
            // The handshake finishes (TLS, the HelloReply): the link is established.
            guard let link, link.secondary == node.index else { return }
            if let primaryIndex = link.primary {
                nodes[primaryIndex].primary?.peerAccepted = true
                // A session in sync (no copy): the secondary holds the primary's generation.
                if let basis = nodes[primaryIndex].primary?.node.helloBasis, !basis.isCatchUp, basis != .fullCopy {
                    generationsAdopt(node, from: nodes[primaryIndex])
                }
            }
            sendToPrimary(.accepted)
            driveSecondary(node, .linkEstablished)
        case let .refuseLink(code, reason):
            sendToPrimary(.refused(reason, code))
            if let link, link.impostor { disconnect("\(node.name) refused an impostor: \(reason)", notifySecondary: false) }
        case let .closeLink(reason):
            // (A close on a cut link reaches nobody: the other side waits for its timeout.)
            guard !isAwareSideOfCut(node) else { return }
            disconnect("\(node.name) closes: \(reason)", notifySecondary: false)
        case let .closeForViolation(reason):
            guard let link, link.secondary == node.index else { return }
            if !link.impostor { return fail("secondary \(node.name) closes the real primary's link: \(reason)") }
            trace("\(node.name) drops the impostor: \(reason)")
            disconnect("protocol violation by an impostor: \(reason)", notifySecondary: true)
        case .releasePayloads:
            break  // payloads are kept by (session, sequence)
        case let .submitWrite(write):
            guard let extent = payloadToWrite(write, node: node, session: secondary.session) else { return }
            submitWrite(node, extent, fua: false, io: .secondaryWrite(write.sequence))
        case .submitFlush:
            submitFlush(node, io: .secondaryFlush)
        case let .writeRecord(record):
            storeRecord(node, record)
        case let .send(message):
            guard let link, link.secondary == node.index else { return }
            sendToPrimary(.message(message))
        case .sendFailoverRequest:
            sendToPrimary(.failoverRequest)
        case let .sendCaughtUp(session):
            guard let link, link.secondary == node.index else { return }
            sendToPrimary(.caughtUp(session: session))
        case let .failoverAnswered(demoted):
            failoverAnswered(node, demoted: demoted)
        case .probe, .endProbe:
            break
        case let .beginStaging(session, journalBytes):
            guard scenario.stagingBytesMax > 0 else { return fail("\(node.name) stages a catch-up with staging off") }
            beginStaging(node, session: session, journalBytes: journalBytes)
        case let .stageWrite(write, offset):
            guard let extent = payloadToWrite(write, node: node, session: secondary.session) else { return }
            stageWrite(node, write, offsetBytes: offset, extent: extent)
        case .flushStaging:
            flushStaging(node)
        case let .commitStaging(record):
            commitStaging(node, record)
        case let .applyStaging(journalBytes):
            applyStaging(node, journalBytes: journalBytes)
        case .flushForDigests:
            submitFlush(node, io: .secondaryDigestFlush)
        case let .readForDigest(offset, length):
            events.schedule(.verifyReadDone(node: node.index, incarnation: node.incarnation, primary: false,
                                            blocks: blocks(offsetBytes: offset, lengthBytes: UInt32(length))),
                            atNs: nowNs + stalled(random.between(10_000, 200_000)))
        case let .sendDigest(offset, length, digest):
            guard let link, link.secondary == node.index else { return }
            sendToPrimary(.digests(offsetBytes: offset, lengthBytes: length, digest: digest))
        case let .notice(notice):
            if case .diskError = notice { diskErrors += 1 }
            if case .peerDemoted = notice {
                // A demote nobody here asked for (the request's link is gone): the operator
                // promotes this node.
                events.schedule(.operatorCheck, atNs: nowNs + random.between(100_000, 2_000_000))
            }
        }
    }

    /// The payload a `.submitWrite` or `.stageWrite` writes: what arrived on the wire, which
    /// must be what the primary sent, at the blocks it names.
    private func payloadToWrite(_ write: SecondaryWrite, node: SimNode, session: UInt64) -> FakeDisk.Extent? {
        let key = PayloadKey(session: session, sequence: write.sequence)
        guard let sent = payloads[key] else {
            fail("\(node.name) applies write \(write.sequence) of session \(session), which was never sent")
            return nil
        }
        guard let extent = received[key]?.extent else {
            fail("\(node.name) applies write \(write.sequence) of session \(session), which never arrived")
            return nil
        }
        guard extent.values == sent.values else {
            fail("a corrupted write reached \(node.name)'s volume: write \(write.sequence) holds \(extent.values), the primary sent \(sent.values)")
            return nil
        }
        guard extent.blocks == blocks(offsetBytes: write.offsetBytes, lengthBytes: write.lengthBytes) else {
            fail("write \(write.sequence) applied at the wrong blocks")
            return nil
        }
        return extent
    }

    /// `.writeRecord` (and the commit's record): the store writes records in order; each is
    /// crash-atomic.
    func storeRecord(_ node: SimNode, _ record: ReplicationRecord) {
        node.recordsInFlight.append(record)
        node.lastRecordDoneNs = max(node.lastRecordDoneNs, nowNs) + stalled(random.between(10_000, 150_000))
        // Queued behind a stalled one (of this process or the one before it), it ends after
        // that stall: the run waits for it as `stalled` does for its own.
        // (Periodic mode writes a record every cycle, to the end: there only a record queued
        // behind a stall moves the end, or the run would never end.)
        if scenario.periodNs == nil || node.lastRecordDoneNs > nowNs + 150_000 {
            runEndNs = max(runEndNs, node.lastRecordDoneNs + scenario.runEndNs - scenario.workloadEndNs)
        }
        events.schedule(.recordDone(node: node.index, incarnation: node.incarnation), atNs: node.lastRecordDoneNs)
    }

    func secondaryLinkDown(_ node: SimNode) {
        driveSecondary(node, .linkClosed)
    }

    /// A decoded frame other than a Hello or Data (those arrive through Simulation+Wire).
    func secondaryReceived(_ message: ToSecondary, node: SimNode) {
        guard node.alive, !node.isPrimary, node.secondary != nil else { return }
        switch message {
        case .hello, .garbage, .message(.data), .readRequest:
            fail("\(message) reaches the secondary only through Simulation+Wire")
        case let .digestRequest(offset, length):
            driveSecondary(node, .digestRequested(offsetBytes: offset, lengthBytes: length))
        case .verifyEnd:
            driveSecondary(node, .verifyEnded)
        case let .message(message):
            driveSecondary(node, .message(message))
        case let .syncComplete(through):
            driveSecondary(node, .syncComplete(through: through))
        case .demoted:
            driveSecondary(node, .demoted)
        }
    }

    /// The record store finished the oldest record write.
    func recordDone(_ node: SimNode) {
        guard !node.recordsInFlight.isEmpty else { return }
        let stored = node.recordsInFlight.removeFirst()
        let errno = node.disk.metadataWriteResult()
        guard errno == 0 else {
            // Not stored; nothing after it is either.
            node.recordsInFlight.removeAll()
            return driveSecondary(node, .recordFailed(errno: errno))
        }
        node.record = stored
        driveSecondary(node, .recorded(stored))
    }

    /// What the secondary says about its own copy (status `disk_state`): the daemon's
    /// decision (`ReportedDiskStates`) over what this driver knows. (A secondary's disk
    /// failure is its node's `diskFault`, so its node says `Failed` itself.)
    func secondaryDiskState(_ node: SimNode) -> DiskState {
        let view = node.secondary.map {
            SecondaryCopyView(diskState: $0.diskState, peerDiskState: $0.peerDiskState, redundant: $0.isRedundant)
        }
        // The simulator stops a secondary's replicator only cleanly (a crash takes the whole
        // node down, and a restarted node runs its replicator again), so a copy at rest here
        // was stopped cleanly.
        let atRest = DiskState.ofSecondaryAtRest(record: node.record, initialSync: scenario.initialSync,
                                                 stoppedCleanly: true)
        return ReportedDiskStates.decide(.secondary(atRest: atRest, replicator: view),
                                         ownDiskFailed: false, peerDiskFailed: false).diskState
    }

    /// The session whose history this secondary's content is a state of: its recorded
    /// session (an unproven new one has written nothing), or, with none recorded, what it was
    /// when it last changed role.
    func contentSession(_ node: SimNode) -> UInt64? {
        let recorded = node.secondary?.record.session ?? node.record.session
        return recorded != 0 ? recorded : node.historySession
    }
}
