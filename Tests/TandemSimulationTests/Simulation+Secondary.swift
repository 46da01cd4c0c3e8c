import Glibc
import TandemCore

// The secondary's side of a simulated node: the state machine (ReplicationSecondary) and what
// the daemon's SecondaryReplicator decides around it today — validating a primary's Hello
// (SecondarySessionVerdict), the unproven session kept apart until its first Data, the
// record, SyncComplete and the disk state — as the driver does them. These rules move into
// TandemCore's SecondaryNode (issue 8); this file then only maps its actions.

final class SecondarySide {
    var machine: ReplicationSecondary
    let session: UInt64
    let synced: Bool
    let continuedFrom: UInt64
    var connected = false
    var confirmedThrough: WriteSequence?
    var newestAsyncReceived: WriteSequence = 0

    init(machine: ReplicationSecondary, session: UInt64, synced: Bool, continuedFrom: UInt64) {
        self.machine = machine
        self.session = session
        self.synced = synced
        self.continuedFrom = continuedFrom
    }
}

extension Simulation {
    /// A node starts as secondary from its record (`handedOver`: it just demoted and holds
    /// every write, so it is not "restarted").
    func startSecondary(_ node: SimNode, handedOver: Bool) {
        node.isPrimary = false
        let machine = ReplicationSecondary(
            config: scenario.secondaryConfig, durableThroughEpoch: node.record.durableThroughEpoch,
            restarted: node.record.generation > 0 && !handedOver)
        node.secondary = SecondarySide(machine: machine, session: node.record.session, synced: node.record.synced,
                                       continuedFrom: node.record.continuedFrom)
        node.pending = nil
        trace("\(node.name) starts as secondary (record session \(node.record.session), synced \(node.record.synced))")
        scheduleDial(afterNs: random.between(10_000, 1_000_000))
    }

    /// The machine this connection's messages go to: the unproven new session's, if any.
    private func activeSide(_ node: SimNode) -> SecondarySide? { node.pending ?? node.secondary }

    func driveSecondary(_ node: SimNode, _ event: SecondaryEvent) {
        guard let side = node.secondary else { return }
        drive(side, node: node, event, pending: false)
    }

    func drivePending(_ node: SimNode, _ event: SecondaryEvent) {
        guard let side = node.pending else { return }
        drive(side, node: node, event, pending: true)
    }

    private func drive(_ side: SecondarySide, node: SimNode, _ event: SecondaryEvent, pending: Bool) {
        secondaryActions.removeAll(keepingCapacity: true)
        side.machine.handle(event, nowNs: nowNs, into: &secondaryActions)
        let actions = secondaryActions
        for action in actions {
            trace("\(node.name) secondary\(pending ? " (unproven session)" : ""): \(action)")
            perform(action, node: node, side: side, pending: pending)
            if failure != nil { return }
        }
    }

    private func perform(_ action: SecondaryAction, node: SimNode, side: SecondarySide, pending: Bool) {
        switch action {
        case let .submitWrite(write):
            // The session's writes wait until its record is stable: an unproven session writes
            // nothing (its first Data commits it before this runs).
            guard !pending else { return fail("an unproven session submitted a write") }
            guard !node.diskFailed else { return }
            guard let extent = payloads[PayloadKey(session: side.session, sequence: write.sequence)] else {
                return fail("\(node.name) applies write \(write.sequence) of session \(side.session), which was never sent")
            }
            let range = blocks(offsetBytes: write.offsetBytes, lengthBytes: write.lengthBytes)
            guard extent.blocks == range else { return fail("write \(write.sequence) applied at the wrong blocks") }
            submitWrite(node, extent, fua: false, io: .secondaryWrite(write.sequence))
        case .submitFlush:
            guard !pending else { return fail("an unproven session flushed") }
            guard !node.diskFailed else { return }
            submitFlush(node, io: .secondaryFlush)
        case let .recordDurableEpoch(epoch):
            guard !pending, !node.diskFailed else { return }
            node.recordInFlight = epoch
            events.schedule(.recordDone(node: node.index, epoch: epoch, incarnation: node.incarnation),
                            atNs: nowNs + random.between(10_000, 150_000))
        case let .send(message):
            guard let link, link.secondary == node.index, side.connected else { return }
            sendToPrimary(.message(message))
        case let .protocolViolation(reason):
            if let link, link.impostor {
                trace("\(node.name) drops the impostor: \(reason)")
                return disconnect("protocol violation by an impostor: \(reason)")
            }
            fail("secondary \(node.name) reports a protocol violation by the real primary: \(reason)")
        }
    }

    func secondaryLinkDown(_ node: SimNode) {
        if let pending = node.pending {
            // An unproven session ends with its connection: nothing of it was recorded.
            pending.connected = false
            node.pending = nil
        }
        if let side = node.secondary, side.connected {
            side.connected = false
            side.confirmedThrough = nil
            driveSecondary(node, .connectionDown)
        }
    }

    func secondaryDiskFailed(_ node: SimNode, operation: String, errno: Int32) {
        guard !node.diskFailed else { return }
        trace("\(node.name) disk failed: \(operation) \(errno)")
        node.diskFailed = true
        if let link, link.secondary == node.index, !link.impostor {
            // The refusal reaches the primary, which then closes the link.
            sendToPrimary(.refused("disk-failed: \(operation)", .diskFailed))
        }
    }

    func secondaryReceived(_ message: ToSecondary, node: SimNode) {
        guard node.alive, !node.isPrimary else { return }
        switch message {
        case let .hello(session, basis):
            if node.diskFailed {
                return sendToPrimary(.refused("disk-failed", .diskFailed))
            }
            let verdict = SecondarySessionVerdict.decide(
                recordSession: node.record.session, recordContinuedFrom: node.record.continuedFrom,
                recordSynced: node.record.synced, fresh: node.record.generation == 0, session: session, basis: basis)
            trace("\(node.name) hello for session \(session) (\(basis)): \(verdict)")
            switch verdict {
            case .sameSession:
                guard let side = node.secondary else { return }
                side.connected = true
                side.confirmedThrough = nil
                side.newestAsyncReceived = 0
                driveSecondary(node, .connectionUp)
            case let .newSession(synced, continuedFrom):
                let machine = ReplicationSecondary(config: scenario.secondaryConfig)
                let side = SecondarySide(machine: machine, session: session, synced: synced, continuedFrom: continuedFrom)
                side.connected = true
                node.pending = side
                drivePending(node, .connectionUp)
            case let .refuse(reason):
                sendToPrimary(.refused("unrelated-data: \(reason)", .unrelatedData))
            }
        case let .message(message):
            guard let side = activeSide(node), side.connected else { return }
            if case let .data(data) = message {
                if node.pending != nil { commitPendingSession(node) }
                if !data.flags.contains(.acknowledgedAfterApply) {
                    side.newestAsyncReceived = max(side.newestAsyncReceived, data.sequence)
                }
            }
            if node.secondary === side { driveSecondary(node, .message(message)) } else { drivePending(node, .message(message)) }
        case let .syncComplete(through):
            guard activeSide(node)?.connected == true else { return }
            if node.pending != nil { commitPendingSession(node) }
            guard let side = node.secondary else { return }
            side.confirmedThrough = through
            if !node.record.synced {
                // The full copy is complete: the record says so from now on.
                node.writeRecord { $0.synced = true }
            }
            node.historySession = side.session
            node.lineage = checker.lineage
        case .garbage:
            // Undecodable bytes close the link, whatever state the session is in.
            guard let link, link.impostor else { return fail("the real primary sent garbage") }
            disconnect("garbage from an impostor")
        }
    }

    /// The new session proved itself (its first Data, or SyncComplete): record it, and the
    /// previous state machine goes.
    private func commitPendingSession(_ node: SimNode) {
        guard let side = node.pending else { return }
        if let link, link.impostor { return }
        node.pending = nil
        // The previous session's writes must not land after the new session's.
        drainSecondaryIO(node)
        node.writeRecord {
            $0.session = side.session
            $0.synced = side.synced
            $0.continuedFrom = side.continuedFrom
            $0.durableThroughEpoch = 0
        }
        node.recordInFlight = nil
        node.secondary = side
        node.historySession = side.session
        if side.synced { node.lineage = checker.lineage }
        trace("\(node.name) records session \(side.session) (synced \(side.synced))")
    }

    /// What the secondary says about its own copy (status `disk_state`).
    func secondaryDiskState(_ node: SimNode) -> DiskState {
        if node.diskFailed { return .failed }
        let initialSyncNone = node.record.generation == 0 && scenario.initialSync == .none
        guard let side = node.secondary else {
            return DiskState.ofSecondary(synced: node.record.synced || initialSyncNone, consistent: true,
                                         connected: false, confirmed: false)
        }
        let connected = side.connected && link?.secondary == node.index && link?.impostor == false
        var confirmed = side.confirmedThrough.map { side.newestAsyncReceived <= $0 } ?? false
        if scenario.testingFault == .claimsUpToDateBeforeConfirmed { confirmed = true }
        return DiskState.ofSecondary(synced: node.record.synced || initialSyncNone, consistent: side.machine.isConsistent,
                                     connected: connected, confirmed: confirmed)
    }
}
