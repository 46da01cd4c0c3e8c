import Glibc
import TandemCore

// Roles: planned and forced failovers, the hand-over (the order production keeps in its
// drivers, re-implemented here), promotion.

extension Simulation {
    func roleFacts(_ node: SimNode) -> ResourceRoleFacts {
        ResourceRoleFacts(name: Self.resourceName, role: node.isPrimary ? .primary : .secondary, enabled: true,
                          transitioning: false)
    }

    /// The operator runs `failover` on the secondary, which asks the connected primary to
    /// drain and demote (ResourceRoles.failover, SecondaryNode.requestFailover).
    func plannedFailover() {
        guard let candidate = liveSecondary, let secondary = candidate.secondary else { return }
        let diskFailure = secondary.diskFault?.summary
        switch ResourceRoles.failover(roleFacts(candidate), force: false, allowInconsistent: false,
                                      diskFailure: diskFailure, peerConnected: secondary.isConnected,
                                      ownDiskState: secondary.diskState) {
        case let .failure(refusal):
            trace("planned failover refused: \(refusal.message)")
        case .success(.askPeerToDemote):
            trace("planned failover: \(candidate.name) asks its primary to demote")
            driveSecondary(candidate, .requestFailover)
        case .success(.promote):
            fail("a planned failover promoted at once")
        }
    }

    /// The primary was asked to hand over (FailoverRequest): it drains (ResourceRoles.demote).
    func failoverRequested(_ node: SimNode) {
        guard let primary = node.primary else { return }
        let drained = primary.node.isDrained
        switch ResourceRoles.demote(roleFacts(node), replicating: !primary.standalone, drained: drained,
                                    peerConnected: primaryConnected(node)) {
        case let .failure(refusal):
            trace("demote refused: \(refusal.message)")
        case .success(.becomeSecondaryNow):
            trace("demote: not replicating")
        case .success(.drainThenHandOver):
            trace("planned failover: \(node.name) drains")
            drivePrimary(node, .drain)
        }
    }

    /// The drained primary hands over as PrimaryNode's `.handOver` says (the daemon's
    /// ResourceReplication.demote does the same): it stops with the link kept and flushes
    /// its disk, the demotion is recorded (role secondary, the demoted record: synced, no
    /// session), and only then is the peer told Demoted (it promotes itself) and the link
    /// closed. A crash before the record leaves it primary and the peer secondary.
    func handOver(from oldPrimary: SimNode) {
        guard primaryConnected(oldPrimary), let primary = oldPrimary.primary else { return }
        primary.handingOver = true
        drivePrimary(oldPrimary, .handOver)
    }

    /// `.recordDemotion`: the role and the record change at once (the daemon writes both
    /// synchronously before it feeds `.demotionRecorded`).
    func recordDemotion(_ oldPrimary: SimNode) {
        oldPrimary.isPrimary = false
        oldPrimary.crashedPrimary = false
        oldPrimary.sealedBitmap = nil
        oldPrimary.trackedInMemory = nil
        oldPrimary.record = oldPrimary.record.demoted()
        oldPrimary.record.generation += 1
    }

    /// The old primary stopped after a hand-over (its disk flushed, its demotion recorded,
    /// Demoted sent): it becomes secondary.
    func finishHandOver(_ oldPrimary: SimNode, session: UInt64) {
        oldPrimary.historySession = session
        startSecondary(oldPrimary, handedOver: true)
        if oldPrimary.diskFailed {
            // The resource's disk failed while it was primary: the secondary knows it.
            driveSecondary(oldPrimary, .diskFailed(SecondaryDiskFault(operation: "write", errno: EIO)))
        }
    }

    /// The answer to the secondary's failover request.
    func failoverAnswered(_ node: SimNode, demoted: Bool) {
        if demoted {
            let state = secondaryDiskState(node)
            let promotable: Bool
            if case .success = ResourceRoles.promotion(.planned, ownDiskState: state) { promotable = true } else { promotable = false }
            disconnect("planned failover", notifySecondary: !promotable)
            guard promotable else {
                // The old primary demoted, but this copy may not be promoted (it asked while
                // Inconsistent): no node is primary until the operator acts.
                plannedFailoversStranded += 1
                trace("planned failover: \(node.name) is \(state.rawValue) and refuses to promote after its peer demoted")
                events.schedule(.operatorCheck, atNs: nowNs + random.between(100_000, 2_000_000))
                return
            }
            failovers += 1
            promote(node, .planned)
        } else {
            // The old primary may have demoted with the link gone before Demoted arrived.
            events.schedule(.operatorCheck, atNs: nowNs + random.between(100_000, 2_000_000))
        }
    }

    func forcedFailover(allowInconsistent: Bool) {
        // With both nodes secondary, the operator picks the better copy.
        func rank(_ node: SimNode) -> Int {
            switch node.secondary?.diskState {
            case .upToDate?: 0
            case .consistent?, .outdated?: 1
            case .inconsistent?: 2
            default: 3
            }
        }
        let candidates = nodes.filter { $0.alive && !$0.isPrimary && $0.secondary != nil }
        guard let candidate = candidates.min(by: { rank($0) < rank($1) }), let secondary = candidate.secondary else { return }
        let step = ResourceRoles.failover(roleFacts(candidate), force: true, allowInconsistent: allowInconsistent,
                                          diskFailure: secondary.diskFault?.summary, peerConnected: secondary.isConnected,
                                          ownDiskState: secondary.diskState)
        guard case let .success(.promote(kind)) = step else {
            if case let .failure(refusal) = step { trace("forced failover refused: \(refusal.message)") }
            return
        }
        guard case let .success(promotion) = ResourceRoles.promotion(kind, ownDiskState: secondary.diskState) else {
            return trace("forced failover refused: \(candidate.name) is \(secondary.diskState.rawValue)")
        }
        failovers += 1
        let oldPrimary = nodes[1 - candidate.index]
        // A running old primary is first taken to be behind a partition, where it may keep writing
        // (Simulation+Generations): it meets the promoted node once the partition heals.
        var partition: (generations: Generations, wrote: Bool)?
        // In the seeds with a split-brain policy it runs on for real (Simulation+SplitBrain).
        let runsOn = splitBrainStarts(old: oldPrimary)
        if runsOn {
            disconnect("partition")
        } else if oldPrimary.alive && oldPrimary.isPrimary && oldPrimary.primary != nil {
            disconnect("partition")
            let wrote = generationRandom.chance(perMille: 700)
            if wrote { generationsWriteWithoutPeer(oldPrimary) }
            partition = (oldPrimary.generations, wrote)
        }
        // Fencing: the old primary is stopped (killed if it runs) and comes back as secondary.
        if !runsOn { fenceOldPrimary(oldPrimary) }
        disconnect("forced failover")
        // Decision (a): a copy staging a catch-up is promoted as Consistent/Outdated, never
        // UpToDate; the sync writes its dropped journal held are not claimed of it.
        if stagesACatchUp(candidate), secondary.diskState == .upToDate {
            return fail("\(candidate.name) is promoted as UpToDate while it stages a catch-up")
        }
        let discardsBefore = stagingDiscards
        drainSecondaryIO(candidate)
        if failure != nil { return }
        checker.startLineage(content: candidate.disk.cache,
                             keepsSyncPromises: candidate.record.synced && !promotion.inconsistent
                                 && stagingDiscards == discardsBefore)
        if runsOn {
            // The application's requests still with the old primary are the far side's now.
            beginSplitBrain(old: oldPrimary, promoted: candidate, inFlight: outstanding.map(\.request))
        }
        promote(candidate, kind, inconsistent: promotion.inconsistent)
        if let partition {
            primariesMeet(old: oldPrimary, oldGenerations: partition.generations, oldWrote: partition.wrote,
                          promoted: candidate)
        }
    }

    /// The secondary's state machine stops (a promotion): its writes and flush in flight
    /// finish first, and the records it asked for are stored.
    func drainSecondaryIO(_ node: SimNode) {
        driveSecondary(node, .stop)
        drainStagingIO(node)
        for (tag, io) in node.io.sorted(by: { $0.key < $1.key }) {
            switch io {
            case .secondaryWrite: _ = node.disk.completeWrite(tag)
            case .secondaryFlush, .secondaryDigestFlush: _ = node.disk.completeFlush(tag)
            default: continue
            }
            node.io[tag] = nil
        }
        if let last = node.recordsInFlight.last { node.record = last }
        node.recordsInFlight.removeAll()
        // Resource+Staging: the journal is settled before the role changes.
        // (A no-room commit is of part of the catch-up: that copy is Inconsistent.)
        let committed = node.record.staging?.committed == true && node.record.synced ? node.record.session : nil
        let confirmed = node.secondary?.confirmedThrough
        settleStaging(node, promoting: true)
        if let committed, failure == nil { checkPromotedAfterCommit(node, committedSession: committed, confirmedThrough: confirmed) }
    }

    func promote(_ node: SimNode, _ kind: PromotionKind, inconsistent: Bool = false) {
        drainSecondaryIO(node)
        node.secondary = nil
        node.isPrimary = true
        node.record = node.record.promoted(inconsistent: inconsistent)
        node.record.generation += 1
        generationsPromoted(node, planned: kind == .planned)
        startPrimary(node, handedOver: kind == .planned)
    }
}
