import Glibc
import TandemCore

// The scenario's faults injected: crashes (kill -9, power loss) and restarts, disk errors,
// failovers, impostors, verify, clean restarts, partitions, wire faults.

extension Simulation {
    func inject(_ fault: SimulationScenario.Fault) {
        trace("fault: \(fault)")
        switch fault {
        case .disconnect:
            disconnect("injected disconnect")
        case let .crash(role, powerLoss):
            guard let node = role == .primary ? livePrimary : liveSecondary else { return }
            crash(node, powerLoss: powerLoss)
            events.schedule(.restart(node: node.index), atNs: nowNs + random.between(100_000, 5_000_000))
        case .plannedFailover:
            plannedFailover()
        case let .forcedFailover(allowInconsistent):
            let halfUp = link?.unaware != nil
            let before = failovers
            forcedFailover(allowInconsistent: allowInconsistent)
            if halfUp && failovers > before { promotionRaces += 1 }
        case let .impostor(helloFirst):
            impostorSession(helloFirst: helloFirst)
        case let .verify(attempts):
            guard let node = livePrimary, let primary = node.primary, !primary.standalone else { return }
            guard primary.node.verifyRefusal == nil else {
                if attempts > 1 { events.schedule(.fault(.verify(attempts: attempts - 1)), atNs: nowNs + random.between(200_000, 2_000_000)) }
                return
            }
            verifiesStarted += 1
            drivePrimary(node, .startVerify)
        case .cleanRestart:
            guard let node = livePrimary, let primary = node.primary, !primary.standalone, !primary.handingOver,
                !primary.node.stopping
            else { return }
            // A diskless primary's stop drains its peer first (Simulation+Diskless).
            primary.restartWhenStopped = true
            issueFlushBeforeStop(node)
            drivePrimary(node, .stop)
        case let .diskErrors(role, errno):
            guard let node = role == .primary ? livePrimary : liveSecondary else { return }
            node.disk.errorPlan = FakeDisk.ErrorPlan(
                afterOperations: node.disk.operations + Int(random.between(1, 20)), errno: errno)
        case let .asymmetricPartition(primarySees):
            cutAsymmetrically(primarySees: primarySees)
        case let .wire(tamper, toSecondary):
            // Armed for the next frame it fits on that direction of the connection up now.
            guard link != nil, link?.impostor == false else { return }
            if toSecondary { link!.toSecondary.armed = tamper } else { link!.toPrimary.armed = tamper }
        case let .whileStaging(fault):
            // Armed until a while after the workload, so that the pair still settles.
            armedStagingFault = (fault, scenario.workloadEndNs + 50_000_000)
        case let .whileComparing(fault):
            armedCompareFault = (fault, scenario.workloadEndNs + 50_000_000)
        }
    }

    func crash(_ node: SimNode, powerLoss: Bool) {
        guard node.alive else { return }
        node.stoppedCleanly = false  // a clean stop's exit says so after this
        if isAwareSideOfCut(node) {
            // Across the partition nobody learns of it: the other side still waits for its timeout.
        } else if link?.primary == node.index || link?.secondary == node.index {
            disconnect("\(node.name) crashed")
        }
        node.alive = false
        node.incarnation += 1
        if powerLoss { node.disk.powerLoss(&random) } else { node.disk.processCrash(&random) }
        // The record writes in flight: a prefix of them lands (each is crash-atomic).
        let landing = Int(random.below(UInt64(node.recordsInFlight.count + 1)))
        if landing > 0 { node.record = node.recordsInFlight[landing - 1] }
        node.recordsInFlight.removeAll()
        // Each activity-log write in flight lands or not, whatever their order.
        for transaction in node.activityLogInFlight where random.chance(perMille: 500) { node.activityLogLanded(transaction) }
        node.activityLogInFlight.removeAll()
        // Each bitmap page in flight lands or not (one 4 KiB write is atomic here).
        for write in node.pageWritesInFlight {
            for page in write.pages where random.chance(perMille: 500) { landPage(node, page.page, setBlocks: page.setBlocks) }
        }
        node.pageWritesInFlight.removeAll()
        crashJournal(node, powerLoss: powerLoss)
        node.io.removeAll()
        node.peerReadsInFlight = 0
        node.timedOutWrites.removeAll()
        node.ioSubmittedNs.removeAll()
        if node.isPrimary {
            // The application's requests die with the primary: nothing more is answered. (With
            // a split brain, the far side's are the old primary's, the run's the other's.)
            let far = splitBrain?.farRequests ?? []
            let ownsFar = splitBrain?.old == node.index
            let servesWorkload = !isFarPrimary(node)
            outstanding.removeAll { far.contains($0.request) ? ownsFar : servesWorkload }
            requests = requests.filter { far.contains($0.key) ? !ownsFar : !servesWorkload }
            if ownsFar { splitBrain?.farRequests.removeAll() }

            if powerLoss && node.lineage == checker.lineage && !node.localLacksWrites {
                checker.primaryLostItsCache(content: node.disk.cache)
                if let problem = checker.checkPrimary(node.disk, name: node.name) { return fail("after power loss: \(problem)") }
            }
            node.historySession = nil
        }
        if powerLoss { disklessCacheLost(node) }
        node.primary = nil
        node.secondary = nil
        node.trackedInMemory = nil
        // The parted set lives in memory (its file is removed before the first write through a
        // replicator it would not cover): a crash loses it, unless a split brain's StandAlone
        // primary kept its file (Simulation+SplitBrainStandAlone). Otherwise taken whenever B
        // is set: at most a full copy more than the daemon's, which keeps the file of any stop
        // with no write since.
        partedAfterCrash(node)
        trace("\(node.name) \(powerLoss ? "lost power" : "was killed")")
    }

    /// A node comes back with what its disk and record kept.
    func restart(_ node: SimNode) {
        guard !node.alive else { return }
        restarts += 1
        node.alive = true
        node.diskFailed = false
        node.disk.errorPlan = nil
        if node.isPrimary {
            if !resumeUnionAtRestart(node) { startPrimary(node) }
        } else {
            settleStaging(node, promoting: false)
            if failure != nil { return }
            // disk_drain: flush never has two epochs unflushed, so what survived a crash is still
            // a prefix: a forced promotion right now would expose a consistent volume. (A staged
            // catch-up resumed: the staging checks look at its image.)
            if scenario.diskDrain == .flush, node.record.synced, node.record.staging == nil, let session = contentSession(node),
                let problem = checker.histories[session]?.prefixViolation(node.disk.cache) {
                return fail("disk_drain flush, after \(node.name)'s restart: \(problem)")
            }
            startSecondary(node, handedOver: false)
            if let primaryNode = livePrimary { reenableIfPeerRecovered(primaryNode) }
        }
    }

    /// The operator re-enables a detached primary once its peer's disk works again (the peer
    /// restarted): the peer-failed marker makes the new session a full copy.
    func reenableIfPeerRecovered(_ primaryNode: SimNode) {
        let peer = nodes[1 - primaryNode.index]
        guard primaryNode.primary?.standalone == true, peer.alive, !peer.isPrimary, let secondary = peer.secondary,
            secondary.diskFault == nil
        else { return }
        trace("\(primaryNode.name) re-enabled after the peer's disk failure")
        // Enabling waits for the local I/O of the detached primary.
        for (tag, io) in primaryNode.io.sorted(by: { $0.key < $1.key }) {
            primaryNode.io[tag] = nil
            switch io {
            case .standaloneWrite, .primaryWrite:
                ioCompleted(primaryNode, io, result: primaryNode.disk.completeWrite(tag) ?? EIO)
            case .standaloneFlush, .primaryFlush:
                ioCompleted(primaryNode, io, result: primaryNode.disk.completeFlush(tag) ?? EIO)
            default:
                break
            }
        }
        startPrimary(primaryNode, peerLacksWrites: true)
    }
}
