import Glibc
import TandemCore

// Simulation+SplitBrain: a split brain run for real in the node simulator (issue 14, *The
// simulator grows up*). In the seeds with an `after_split_brain` policy
// (SimulationScenario.splitBrainPolicy), a forced failover whose old primary still runs does
// not fence it: the old primary keeps running its PrimaryNode behind the partition, and an
// application of its own (the *far side*) keeps writing to it, while the promoted node serves
// the run's workload. Both are primaries side by side; each one's dials fail (its peer is no
// secondary). When the partition heals the two compare Hellos with TandemCore's
// PeerHelloCheck, each with its own facts (generations, bytes changed since parting, the
// policy), as both daemons do. A split brain stops both replicators (StandAlone: each keeps
// serving its own volume alone) and is carried out as the verdicts say; with `disconnect`
// (or a policy that falls back to it) the operator's `resolve` names the survivor a little
// later. Then the loser demotes (C := 0, B kept: `Generations.discardedForUnion`) and becomes
// secondary with an unsynced record, and the survivor starts a session with the
// `peer-lacks-writes` flag (PrimaryStart: a full copy) whose copy SplitBrainResync.plan
// decides: the union of both sides' changes since parting (`PrimaryNode.restrictCopy` and
// `unitePeerBitmap`, as Resource+SplitBrainUnion calls them), or the whole volume, for the
// plan's reason. The copy is the node's ordinary copy path; the victim's Inconsistent,
// SyncComplete and UpToDate are its SecondaryNode's.
//
// Re-implemented here (the daemon's glue, checked only as this copy): the parted bitmap (every
// region either side wrote since the cut, plus — where B moved for a write the peer will not
// get — the bitmap the old primary's stop sealed, or no set at all where it sealed none:
// Resource+SplitBrainResync's `needsTracked`), the order of the carrying out (both stopped,
// the application quiet, then the loser demoted before the survivor starts), the bitmap
// exchange (the victim's set is handed to the survivor before its copy starts instead of
// BitmapChunk frames), and the operator.
//
// Checked after every step, by this file rather than by the code under test:
// - guarantee 4: until a verdict names a loser or the operator resolved, neither volume holds a
//   write the other side made since the cut (nothing merged without a policy or an operator);
// - the survivor's acknowledged history: the promoted node's is the GuaranteeChecker's lineage
//   (checked every step as always); the old primary's far-side acknowledged writes are checked
//   on its volume every step, and become the lineage when it survives;
// - at the end (checkSettled) the victim holds exactly the survivor's blocks, both UpToDate.
//
// The survivor's `.union-resync` file (checkpoints, a stop's seal, the resume after a restart)
// is Simulation+UnionCheckpoint's. Not modelled: a crash of the old primary behind the
// partition (the faults aim at the promoted one), a second split brain in one run, and
// periodic mode seeds (no split brains are run in them).
//
// Random choices come from a generator of their own, so a seed without a split brain runs as
// before.

/// One split brain of a run.
final class SplitBrainRun {
    enum Phase: Equatable {
        /// The partition: the old primary writes behind it.
        case apart
        /// Found when the partition healed; waiting for the operator (`disconnect`).
        case awaitingOperator
        /// A survivor is named (by the verdicts or the operator): carried out once both sides
        /// are stopped and quiet.
        case resolving(survivor: Int, byOperator: Bool)
        /// The loser demoted and the survivor's resync started.
        case carriedOut
    }

    let old: Int
    let promoted: Int
    var phase = Phase.apart
    /// The far side's requests to the old primary.
    var farRequests: Set<RequestID> = []
    /// Far-side writes still to issue.
    var farWritesLeft: Int
    /// A far-side write was submitted after the cut (the run's requests still in flight at the
    /// cut were submitted before it: the daemon moves B for them only if the link's loss left
    /// writes unconfirmed, PrimaryReplicator's `noteWriteWithoutPeer`).
    var submittedAfterCut = false
    /// Per block, the newest far-side write the old primary acknowledged.
    var farAcked: [UInt64]
    /// Every write value the promoted node had received at the cut, and the bytes of the
    /// far-side writes acknowledged that it had not (Simulation+WithoutPeer's check).
    var receivedByPromoted: Set<UInt64> = []
    var farAckedUnreceivedBytes: UInt64 = 0
    /// Per node, the writes it made since the cut (guarantee 4), the bytes, and its parted set.
    var written: [Set<UInt64>] = [[], []]
    var changedBytes: [UInt64] = [0, 0]
    /// Whether a verdict named a loser or the operator resolved (the checker's own record).
    var authorised = false
    var verdicts: [SplitBrainVerdict?] = [nil, nil]

    init(old: Int, promoted: Int, farWrites: Int, blockCount: Int) {
        self.old = old
        self.promoted = promoted
        farWritesLeft = farWrites
        farAcked = Array(repeating: 0, count: blockCount)
    }

    /// The old primary while it runs behind the partition, apart from the run's workload.
    var farIndex: Int? {
        // (Until the loser demoted, the run's workload and requests are the promoted node's.)
        phase == .carriedOut ? nil : old
    }
}

/// Steps of a split brain (Simulation.Event.splitBrain).
enum SplitBrainStep {
    case farWrite
    case heal
    case operatorResolves
    /// Simulation+SplitBrainStandAlone: a write of a StandAlone primary, and its crash.
    case standAloneWrite(node: Int)
    case standAloneCrash(node: Int, powerLoss: Bool, restartInNs: UInt64)
}

extension Simulation {
    private var volumeSizeBytes: UInt64 { UInt64(scenario.blockCount) * SimulationScenario.blockSizeBytes }

    /// Whether a forced failover now leaves the old primary running behind a partition.
    func splitBrainStarts(old: SimNode) -> Bool {
        guard scenario.splitBrainPolicy != nil, splitBrain == nil, splitBrainsRun == 0, old.alive, old.isPrimary,
            let primary = old.primary, !primary.standalone, !primary.handingOver, !primary.node.stopping, !old.diskFailed
        else { return false }
        return true
    }

    /// The forced failover promoted `promoted` while `old` runs on: the far side starts writing
    /// to it, and the partition heals later.
    /// `inFlight`: the run's requests the old primary has not answered yet (the far side's now).
    func beginSplitBrain(old: SimNode, promoted: SimNode, inFlight: [RequestID]) {
        splitBrainsRun += 1
        let farWrites = splitBrainRandom.chance(perMille: 150) ? 0 : Int(splitBrainRandom.between(1, 12))
        let run = SplitBrainRun(old: old.index, promoted: promoted.index, farWrites: farWrites, blockCount: scenario.blockCount)
        run.farRequests = Set(inFlight)
        run.receivedByPromoted = Set(received.values.lazy.flatMap(\.extent.values))
        farWritesIssued += inFlight.count
        splitBrain = run
        let apartNs = splitBrainRandom.between(500_000, 6_000_000)
        for _ in 0..<farWrites {
            events.schedule(.splitBrain(.farWrite), atNs: nowNs + splitBrainRandom.below(apartNs))
        }
        events.schedule(.splitBrain(.heal), atNs: nowNs + apartNs)
        trace("split brain: \(old.name) runs on behind the partition (\(farWrites) far writes), \(promoted.name) promoted")
    }

    func handleSplitBrain(_ step: SplitBrainStep) {
        guard let run = splitBrain else { return }
        switch step {
        case .farWrite: issueFarWrite(run)
        case .heal: heal(run)
        case .operatorResolves:
            guard run.phase == .awaitingOperator else { return }
            let survivor = splitBrainRandom.chance(perMille: 500) ? run.old : run.promoted
            trace("the operator resolves the split brain: \(nodes[survivor].name) survives")
            splitBrainsResolvedByOperator += 1
            run.authorised = true
            run.phase = .resolving(survivor: survivor, byOperator: true)
            tryCarryOutSplitBrain()
        case let .standAloneWrite(node): standAloneWrite(run, nodes[node])
        case let .standAloneCrash(node, powerLoss, restartInNs): standAloneCrash(nodes[node], powerLoss: powerLoss, restartInNs: restartInNs)
        }
    }

    /// The node's application is the far side (the old primary behind the partition).
    func isFarPrimary(_ node: SimNode) -> Bool { splitBrain?.farIndex == node.index }

    /// The run's workload waits while a split brain is found and not yet carried out.
    var splitBrainHoldsApplication: Bool {
        guard let run = splitBrain else { return false }
        switch run.phase {
        case .awaitingOperator, .resolving: return true
        case .apart, .carriedOut: return false
        }
    }

    private func issueFarWrite(_ run: SplitBrainRun) {
        let node = nodes[run.old]
        guard run.phase == .apart, run.farWritesLeft > 0, node.alive, node.primary != nil else { return }
        let first = Int(splitBrainRandom.below(UInt64(scenario.blockCount)))
        let range = first..<min(scenario.blockCount, first + Int(splitBrainRandom.between(1, 3)))
        guard !outstanding.contains(where: { run.farRequests.contains($0.request) && $0.blocks.overlaps(range) }) else { return }
        run.farWritesLeft -= 1
        run.submittedAfterCut = true
        let request = nextRequest
        nextRequest += 1
        run.farRequests.insert(request)
        requests[request] = .write(blocks: range, fua: splitBrainRandom.chance(perMille: 200), value: nil)
        outstanding.append((request, range))
        farWritesIssued += 1
        submitToPrimary(node, request)
    }

    /// A write a primary admitted (or wrote alone) while the two are apart.
    /// (Also the daemon's parted tracking, Resource+Generations: every write of a primary
    /// while its B is set — a superset of the daemon's regions; its bytes are counted as the
    /// daemon counts them, Simulation+WithoutPeer.)
    func noteSplitBrainWrite(_ node: SimNode, value: UInt64, blocks: Range<Int>) {
        let size = SimulationScenario.blockSizeBytes
        if node.parted != nil {
            _ = node.parted!.setRange(offsetBytes: UInt64(blocks.lowerBound) * size, lengthBytes: UInt64(blocks.count) * size)
        }
        notePartedFileWrite(node, blocks: blocks)
        guard let run = splitBrain, run.phase != .carriedOut else { return }
        run.written[node.index].insert(value)
    }

    /// A node's set of changes since parting as the daemon would hand it to the plan
    /// (Resource.ownChangesSinceParting): its parted bitmap, with — where B moved for a write
    /// the peer will not get — the bitmap its replicator's stop sealed (the writes unconfirmed
    /// at the link's loss and every one since: `foldTrackedIntoParted`). nil: lost, none
    /// tracked, or a stop that sealed none (a failed disk's: the unconfirmed writes are not
    /// known, so the plan copies the whole volume; seed 3216 found the model joining the
    /// node's bitmap there, which lacked the writes its stop then answered).
    func partedSet(_ node: SimNode) -> DirtyBitmap? {
        guard !node.partedLost, let set = node.parted else { return nil }
        guard node.partedNeedsTracked else { return set }
        guard let tracked = node.trackedInMemory, !tracked.bases.isEmpty else { return nil }
        return SplitBrainResync.union(survivor: set, victim: tracked.bitmap).bitmap
    }

    /// A far-side request was answered (not the run's workload: the checker's lineage is the
    /// promoted node's). Returns false if the request is not the far side's.
    func answerFarRequest(_ request: RequestID, errno: Int32) -> Bool {
        guard let run = splitBrain, run.farRequests.remove(request) != nil else { return false }
        outstanding.removeAll { $0.request == request }
        requestsAnswered += 1
        if case let .write(blocks, _, value?) = requests.removeValue(forKey: request), errno == 0 {
            farWritesAcked += 1
            for block in blocks { run.farAcked[block] = max(run.farAcked[block], value) }
            if !run.receivedByPromoted.contains(value) {
                run.farAckedUnreceivedBytes += UInt64(blocks.count) * SimulationScenario.blockSizeBytes
            }
        }
        return true
    }

    // MARK: Healing

    private func hello(_ node: SimNode, _ run: SplitBrainRun, policy: AfterSplitBrain) -> (OwnHelloFacts, WireHello) {
        let facts = OwnHelloFacts(resourceName: "r0", volumeSizeBytes: 1, role: .primary, generations: node.generations,
                                  changedBytes: node.generations.bitmap != 0 ? node.changedBytes : 0, afterSplitBrain: policy)
        return (facts, Self.hello(facts, from: node.name))
    }

    /// The partition heals: both primaries judge each other's Hello (once both are up).
    private func heal(_ run: SplitBrainRun) {
        guard run.phase == .apart else { return }
        let old = nodes[run.old]
        let promoted = nodes[run.promoted]
        guard old.alive, promoted.alive, promoted.isPrimary, promoted.primary != nil else {
            return events.schedule(.splitBrain(.heal), atNs: nowNs + 1_000_000)
        }
        partitionsHealed += 1
        let policy = scenario.splitBrainPolicy ?? .disconnect
        let (oldFacts, oldHello) = hello(old, run, policy: policy)
        let (newFacts, newHello) = hello(promoted, run, policy: policy)
        if let problem = checkChangedBytes(run, old: old, saysChangedBytes: oldFacts.changedBytes) { return fail(problem) }
        let seenByOld = PeerHelloCheck.judge(own: oldFacts, hello: newHello)
        let seenByNew = PeerHelloCheck.judge(own: newFacts, hello: oldHello)
        trace("partition heals: \(old.name) (\(old.generations)) sees \(seenByOld); \(promoted.name) (\(promoted.generations)) sees \(seenByNew)")
        // It wrote after the cut: a write submitted since, or one acknowledged since (submitted
        // before the cut, answered after it: the "B stays 0" hole, PrimaryNotice.acknowledgedWithoutPeer).
        let oldWrote = run.submittedAfterCut || run.farAcked.contains { $0 != 0 }
        guard case let .splitBrain(oldReport) = seenByOld, case let .splitBrain(newReport) = seenByNew else {
            if case .splitBrain = seenByOld {
                return fail("guarantee 4: two primaries disagree whether they are in a split brain: \(old.name) \(seenByOld), \(promoted.name) \(seenByNew)")
            }
            if case .splitBrain = seenByNew {
                return fail("guarantee 4: two primaries disagree whether they are in a split brain: \(old.name) \(seenByOld), \(promoted.name) \(seenByNew)")
            }
            if oldWrote {
                return fail("guarantee 4: \(old.name) wrote after the cut, but meeting the promoted \(promoted.name) is not a split brain (\(seenByOld) / \(seenByNew)): its writes would be dropped or merged without a policy or an operator")
            }
            // Not a split brain: the old primary is stopped by the promotion and fenced, as before.
            // (Writes it made after the cut and never acknowledged are dropped with it: counted.)
            trace("no split brain: \(old.name) is fenced")
            if !run.written[run.old].isEmpty { writtenAfterCutWithoutSplitBrain += 1 }
            run.authorised = true
            fenceOldPrimary(old)
            run.phase = .carriedOut
            return
        }
        splitBrainsFound += 1
        run.verdicts = [nil, nil]
        run.verdicts[run.old] = oldReport.verdict
        run.verdicts[run.promoted] = newReport.verdict
        let survivor: Int?
        switch (oldReport.verdict, newReport.verdict) {
        case (.disconnect, .disconnect): survivor = nil
        case (.discardLocal, .discardPeer): survivor = run.promoted
        case (.discardPeer, .discardLocal): survivor = run.old
        default:
            return fail("guarantee 4: the verdicts do not mirror each other: \(old.name) \(oldReport.verdict), \(promoted.name) \(newReport.verdict)")
        }
        // StandAlone: both replicators stop (the unconfirmed set joins the parted one).
        for node in [old, promoted] { stopForSplitBrain(node) }
        if survivor == nil, scenario.testingFault == .splitBrainResolvedWithoutVerdict {
            // The seeded fault: carried out with no verdict naming a loser (not authorised).
            run.phase = .resolving(survivor: run.promoted, byOperator: false)
            return tryCarryOutSplitBrain()
        }
        if let survivor {
            splitBrainsResolvedByPolicy += 1
            run.authorised = true
            run.phase = .resolving(survivor: survivor, byOperator: false)
            trace("split brain verdict (\(policy.rawValue)): \(nodes[survivor].name) survives")
            tryCarryOutSplitBrain()
        } else {
            run.phase = .awaitingOperator
            trace("split brain verdict (\(policy.rawValue)): disconnect, the operator resolves")
            let resolveInNs = splitBrainRandom.between(500_000, 5_000_000)
            events.schedule(.splitBrain(.operatorResolves), atNs: nowNs + resolveInNs)
            scheduleStandAloneSteps(run, resolveInNs: resolveInNs)
        }
    }

    /// StandAlone: the replicator stops (its stop seals the bitmap the old primary's set
    /// folds in, `partedSet`); the promoted node's set is what it wrote since its promotion
    /// (its session's copy bitmap is not a change of its own).
    func stopForSplitBrain(_ node: SimNode) {
        guard let primary = node.primary else { return }
        if !primary.standalone && !primary.node.stopping { drivePrimary(node, .stop) }
    }

    /// On every tick, and when a survivor is named: carried out once both nodes are up,
    /// stopped (StandAlone) and quiet (no request unanswered, no I/O in flight).
    func tryCarryOutSplitBrain() {
        guard let run = splitBrain, case let .resolving(survivorIndex, _) = run.phase, failure == nil else { return }
        let survivor = nodes[survivorIndex]
        let loser = nodes[1 - survivorIndex]
        for node in [survivor, loser] {
            guard node.alive, node.isPrimary, let primary = node.primary else { return }
            if !primary.standalone {
                // Restarted meanwhile (a crash of the promoted node): StandAlone again.
                if !primary.node.stopping { stopForSplitBrain(node) }
                return
            }
            guard node.io.isEmpty else { return }
        }
        guard outstanding.isEmpty else { return }
        carryOut(run, survivor: survivor, loser: loser)
    }

    private func carryOut(_ run: SplitBrainRun, survivor: SimNode, loser: SimNode) {
        if survivor.index == run.old {
            // The far side's acknowledged writes are the truth from now on.
            if let problem = checkFarAcknowledged(run) { return fail(problem) }
            checker.startLineage(content: survivor.disk.cache, keepsSyncPromises: false)
            survivor.lineage = checker.lineage
        }
        let survivorSet = partedSet(survivor)
        let victimSet = partedSet(loser)
        let survivorChanges = PartedChanges(partingGeneration: survivor.generations.bitmap, bitmap: survivorSet,
                                            lostReason: "a crash since the nodes parted")
        let plan = SplitBrainResync.plan(survivor: survivorChanges, peerHelloVersion: WireFormat.helloVersion,
                                         victimPartingGeneration: victimSet == nil ? 0 : loser.generations.bitmap)
        // The loser: C := 0 (B kept: its set is the survivor's to unite), then secondary.
        loser.generations.discardedForUnion()
        loser.primary = nil
        loser.isPrimary = false
        loser.crashedPrimary = false
        loser.sealedBitmap = nil
        loser.trackedInMemory = nil
        loser.record = loser.record.demoted()
        loser.record.synced = false
        loser.record.generation += 1
        loser.historySession = nil
        run.phase = .carriedOut
        startSecondary(loser, handedOver: false)
        let empty = DirtyBitmap(volumeSizeBytes: volumeSizeBytes, blockBytes: SimulationScenario.blockSizeBytes)
        let victimChanges = victimSet ?? empty
        let survivorParted = survivorSet ?? empty
        let unitesVictim = scenario.testingFault != .splitBrainUnionOmitsVictimChanges
        trace("split brain carried out: \(loser.name) discarded, \(survivor.name) resyncs it (\(plan.word))")
        if plan == .union { unionResyncs += 1 } else { splitBrainFullCopies += 1 }
        if plan == .union && standAloneSetsRestored > 0 { standAloneUnionsAfterCrash += 1 }
        if plan == .union, SplitBrainResync.union(survivor: survivorParted, victim: victimChanges).unionBytes
            > survivorParted.outOfSyncBytes {
            unionsWithVictimOnlyBlocks += 1
        }
        if getenv("TANDEM_SIM_VERBOSE") != nil {
            print("split brain seed \(scenario.seed): \(plan) survivor \(survivor.name) (\(survivor.index == run.old ? "old" : "promoted")) parted \(survivorParted.outOfSyncBytes) victim \(victimChanges.outOfSyncBytes) of \(volumeSizeBytes)")
        }
        // The loser keeps its set for the survivor's Hello (its parted-bitmap file), which gets
        // it as BitmapChunk / BitmapDone after the loser accepted it (Simulation+UnionCheckpoint).
        if plan == .union { loser.keptVictimSet = unitesVictim ? victimChanges : empty }
        startPrimary(survivor, peerLacksWrites: true) { node in
            guard plan == .union else { return }
            node.restrictCopy(to: survivorParted)
        }
        if plan == .union {
            survivor.primary?.awaitsVictimSet = survivorParted
            startUnionCheckpoints(survivor)
            armUnionCrash()
        } else {
            if let copy = survivor.primary?.node.bitmap { unionBytesCopied += copy.outOfSyncBytes }
            survivor.unionLeft = nil
        }
    }

    /// The old primary wrote nothing the promoted one lacks: fenced (killed, demoted at rest),
    /// as the forced failover's path does without a split brain.
    func fenceOldPrimary(_ old: SimNode) {
        if old.alive && old.isPrimary {
            crash(old, powerLoss: false)
            events.schedule(.restart(node: old.index), atNs: nowNs + random.between(100_000, 5_000_000))
        }
        // The operator demotes it before it runs again (ResourceRoles: demote at rest): the
        // role and the record change as a hand-over's `.recordDemotion` changes them.
        if old.isPrimary { recordDemotion(old) }
    }

    // MARK: Checks

    /// After every step while the two are apart: nothing merged without a verdict or the
    /// operator, and the old primary holds what its far side had acknowledged.
    func checkSplitBrain() {
        guard let run = splitBrain else { return }
        if !run.authorised {
            for (index, other) in [(run.old, run.promoted), (run.promoted, run.old)] {
                let node = nodes[index]
                for (block, value) in node.disk.cache.enumerated() where run.written[other].contains(value) {
                    return fail("guarantee 4: \(node.name)'s block \(block) holds write \(value), which \(nodes[other].name) made after the cut, but no verdict or operator resolved the split brain")
                }
            }
        }
        if run.farIndex != nil, nodes[run.old].alive, let problem = checkFarAcknowledged(run) { fail(problem) }
    }

    private func checkFarAcknowledged(_ run: SplitBrainRun) -> String? {
        let node = nodes[run.old]
        for (block, value) in run.farAcked.enumerated() where value != 0 && node.disk.cache[block] < value {
            return "the old primary \(node.name) acknowledged write \(value) to block \(block) behind the partition, but holds \(node.disk.cache[block])"
        }
        return nil
    }
}
