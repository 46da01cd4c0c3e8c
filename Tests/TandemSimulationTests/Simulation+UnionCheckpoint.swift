import TandemCore

// The split-brain survivor's `.union-resync` file across a stop or a crash, as the daemon's
// Resource+SplitBrainUnion keeps it (docs/replication.md, *Across a crash of the survivor*):
// - the survivor's session starts restricted to its own changes and waits for the victim's
//   set, which the victim keeps (`keptVictimSet`, its parted-bitmap file) and hands over once
//   it accepted the survivor's Hello (the daemon's BitmapChunk / BitmapDone, before the
//   ReplicaHello); a victim without one (or of another parting generation) refuses, and the
//   copy covers every block;
// - a running union resync with an activity log keeps a checkpoint of what is left of it
//   (`PrimaryNode.copyLeftWithHeld`: the copy's blocks not yet admitted and every write and
//   chunk the peer has not confirmed durable): taken when its session starts (before the
//   victim's set came: the file then says the set is still to come), again when the union is
//   known and when a resumed one starts, then at each tick at which the copy moved (its
//   copied, unconfirmed or out-of-sync bytes changed); one durable, atomic write here as
//   there. Without a log it keeps none and the file is removed;
// - a stop that seals a bitmap keeps that bitmap as the file (keepUnionLeft); a stop that
//   seals nothing removes the file before its record clears `crashed-primary`;
// - a restart decides with TandemCore's UnionResume, as the daemon's open does: the file, the
//   node primary and still parted from the same generation, resumes the union from it: after
//   a crash (`crashed-primary`) with the regions of the activity log's newest transaction
//   added (a ring that proves nothing: the whole volume), the file rewritten with them; after
//   a stop as it is. The session is `peer-lacks-writes` (a full copy for the victim)
//   restricted to that set (`PrimaryNode.restrictCopy`, as PrimaryReplicator calls it); a file
//   whose victim's set never came waits for it again;
// - the resync's end (the copy done) removes the file; a node that becomes secondary has none.
// The guarantees then check the resumed union as any: the victim's UpToDate, and at the end
// the victim equal to the survivor. The seeded fault `unionResumesWithoutActivityLogExtents`
// resumes after a crash from the checkpoint alone.
// In the split-brain seeds, half the union resyncs arm a crash of the survivor (kill -9 or
// power loss) 0.1–3 ms after they start, from the split brain's own random stream; the
// union checker's shape (`shapeUnionCrash`) crashes it right after its writes instead.

/// A union resync's checkpoints on its session (in memory: lost with the process).
struct UnionCheckpoints {
    var session: UInt64
    var progress: (copied: UInt64, unconfirmed: UInt64, outOfSync: UInt64)?
    /// The session's stop sealed a bitmap, which is now the file (keepUnionLeft).
    var sealed = false
}

extension Simulation {
    /// The union is known (the survivor's session was made with it) or a resumed one started.
    func startUnionCheckpoints(_ node: SimNode) {
        guard let primary = node.primary else { return }
        guard scenario.activityLog != nil else {
            node.unionLeft = nil
            return trace("\(node.name): the union resync keeps no checkpoint without an activity log")
        }
        primary.unionCheckpoints = UnionCheckpoints(session: primary.session)
        checkpointUnion(node)
        if primary.awaitsVictimSet != nil { armCrashBeforeVictimSet() }
    }

    /// On every tick, and at the start: a checkpoint when the copy moved.
    func checkpointUnion(_ node: SimNode) {
        guard let primary = node.primary, let checkpoints = primary.unionCheckpoints, !checkpoints.sealed,
            primary.session == checkpoints.session, node.generations.bitmap != 0
        else { return }
        let progress = (copied: primary.node.copiedBytes, unconfirmed: primary.machine.unconfirmedBytes,
                        outOfSync: primary.node.outOfSyncBytes)
        if let last = checkpoints.progress, last.copied == progress.copied, last.unconfirmed == progress.unconfirmed,
            last.outOfSync == progress.outOfSync { return }
        primary.unionCheckpoints!.progress = progress
        node.unionLeft = PartedBitmap(partingGeneration: node.generations.bitmap, bitmap: primary.node.copyLeftWithHeld,
                                      peerSetPending: primary.awaitsVictimSet != nil)
        unionCheckpointsTaken += 1
        if primary.awaitsVictimSet != nil { pendingUnionCheckpoints += 1 }
    }

    /// The victim accepted the survivor's Hello: its set comes before its ReplicaHello
    /// (PrimaryReplicator.receivedPeerBitmap), and the copy covers the union from here; a
    /// victim that keeps none for this parting refuses (`unrelated-data`): every block.
    func receiveVictimSet(_ node: SimNode, _ primary: PrimarySide, from victim: SimNode) {
        guard let own = primary.awaitsVictimSet else { return }
        primary.awaitsVictimSet = nil
        guard let set = victim.keptVictimSet, victim.generations.current == 0,
            victim.generations.bitmap == node.generations.bitmap
        else {
            trace("\(victim.name) keeps no set for this parting: \(node.name) copies the whole volume")
            primary.node.widenCopyToEveryBlock()
            primary.unionCheckpoints = nil
            node.unionLeft = nil
            return
        }
        let union = primary.node.unitePeerBitmap(set, survivorChanges: own)
        unionBytesCopied += union.unionBytes
        trace("\(node.name) unites \(victim.name)'s set: \(union.unionBytes) bytes to copy")
        guard primary.unionCheckpoints != nil else { return }
        primary.unionCheckpoints!.progress = nil  // checkpointed now with the union, before a chunk is read
        checkpointUnion(node)
    }

    /// `.persistBitmap`: the stop sealed what is left of the copy (Resource.keepUnionLeft).
    func keepUnionLeft(_ node: SimNode, _ primary: PrimarySide) {
        guard primary.unionCheckpoints != nil, node.generations.bitmap != 0 else { return }
        primary.unionCheckpoints!.sealed = true
        node.unionLeft = PartedBitmap(partingGeneration: node.generations.bitmap, bitmap: primary.node.bitmap,
                                      peerSetPending: primary.awaitsVictimSet != nil)
    }

    /// `.recordStop`: a stop that sealed nothing removes the file first, so that a restart
    /// never reads a running checkpoint as a stop's seal (without the extents).
    func unionStopRecorded(_ node: SimNode, _ primary: PrimarySide) {
        guard let checkpoints = primary.unionCheckpoints, !checkpoints.sealed else { return }
        primary.unionCheckpoints = nil
        node.unionLeft = nil
    }

    /// The copy is done: the resync is over.
    func unionResyncEnded(_ node: SimNode, _ primary: PrimarySide) {
        guard primary.unionCheckpoints != nil else { return }
        primary.unionCheckpoints = nil
        node.unionLeft = nil
    }

    /// A restarted primary (Resource.loadUnionLeftAtOpen, then resumeSurvivorResync): true
    /// when it resumed a union from its file, as UnionResume decides.
    func resumeUnionAtRestart(_ node: SimNode) -> Bool {
        guard let file = node.unionLeft else { return false }
        node.unionLeft = nil
        let afterCrash = node.crashedPrimary
        var regions: [ActivityLog.Region]?
        if afterCrash, let log = scenario.activityLog, let transaction = node.activityLogDurable {
            regions = scenario.testingFault == .unionResumesWithoutActivityLogExtents ? []
                : ActivityLog.dirtyRegions(afterCrash: transaction.extents, extentBytes: log.extentBytes,
                                           volumeSizeBytes: UInt64(scenario.blockCount) * SimulationScenario.blockSizeBytes)
        }
        // The simulator's survivor keeps `peer-lacks-writes` until the union ends and never
        // writes with replication off.
        let plan = UnionResume.decide(UnionResumeFacts(
            file: file, isPrimary: node.isPrimary, peerLacksWrites: true, writtenWhileDisabled: false,
            partingGeneration: node.generations.bitmap, crashed: afterCrash, activityLogRegions: regions,
            activityLogProblem: "no transaction is proven"))
        guard case let .resume(left, _, asksPeerSet, _) = plan else {
            if case let .fullCopy(reason) = plan { trace("\(node.name): \(reason)") }
            return false
        }
        // Rewritten with the extents before the session's first transaction.
        node.unionLeft = PartedBitmap(partingGeneration: file.partingGeneration, bitmap: left, peerSetPending: asksPeerSet)
        unionsResumed += 1
        if afterCrash { unionsResumedAfterCrash += 1 }
        if asksPeerSet { unionsResumedAskingVictim += 1 }
        trace("\(node.name) resumes its union resync \(afterCrash ? "after a crash" : "after a stop")"
            + "\(asksPeerSet ? ", asking the victim's set again" : ""): \(left.outOfSyncBytes) bytes left")
        startPrimary(node, peerLacksWrites: true) { primaryNode in primaryNode.restrictCopy(to: left) }
        if asksPeerSet { node.primary?.awaitsVictimSet = left }
        startUnionCheckpoints(node)
        return true
    }

    /// Half the union resyncs of the split-brain seeds: the survivor crashes during it.
    func armUnionCrash() {
        guard splitBrainRandom.chance(perMille: unionCrashPerMille) else { return }
        let powerLoss = splitBrainRandom.chance(perMille: 300)
        events.schedule(.fault(.crash(.primary, powerLoss: powerLoss)), atNs: nowNs + splitBrainRandom.between(100_000, 3_000_000))
    }
}

// The union checker's shape (`checkerCatchesAUnionResumedWithoutTheActivityLogsExtents`): with
// the default draws a union resync was resumed after a crash with a write its checkpoint
// lacked in about one seed of 900 (most split brains end in a full copy: a side crashed while
// parted and lost its set; half the unions arm no crash; a crash 0.1–3 ms after the start
// mostly finds the last checkpoint holding every write). The shape makes each seed meet the
// fault's window: sync (both part from the same generation), 32–64 blocks (the union leaves
// most of them), no fault but one forced failover early in a longer workload (one split
// brain, both sides' sets known), an activity log, `disconnect` (the operator names either
// survivor), no timed union crash; and the survivor is killed (kill -9) right after each of
// its first application writes lands on its disk during the union, before the next tick's
// checkpoint can hold it (`unionCrashAfterWrite`, up to three times a run).
extension SimulationScenario {
    mutating func shapeUnionCrash() {
        var draws = SimRandom(seed: seed ^ 0x0410_C4A5_5EED_0000)
        // Sync: the secondary holds the primary's generation when the failover comes, so both
        // part from the same one (async, a lagging secondary parts from an older one: a full copy).
        mode = .sync
        primaryConfig.mode = .sync
        adaptive = nil
        periodNs = nil
        // A volume the union leaves most of, so that a write after the last checkpoint is
        // mostly outside it.
        blockCount = Int(draws.between(32, 64))
        operationCount = Int(draws.between(160, 240))
        requestsOutstandingMax = max(requestsOutstandingMax, 2)
        workloadEndNs = UInt64(operationCount) * 60_000
        runEndNs = workloadEndNs + 150_000_000
        faults = [(draws.between(workloadEndNs / 10, workloadEndNs / 5), .forcedFailover(allowInconsistent: false))]
        if activityLog == nil {
            let writeBytesMax = 8 * Self.blockSizeBytes
            activityLog = ActivityLogSettings(
                extents: ActivityLogSettings.extentsPerWrite(writeBytesMax: writeBytesMax, extentBytes: Self.blockSizeBytes) + 1,
                extentBytes: Self.blockSizeBytes, writeBytesMax: writeBytesMax, lastTransaction: 0, testingFault: nil,
                batching: Self.activityLogBatching)
        }
    }
}

extension Simulation {
    /// A scenario's crash of the survivor before the victim's set came (its session waits for
    /// it: the Hello and its answer take two deliveries of 5 µs or more), up to twice a run.
    func armCrashBeforeVictimSet() {
        guard let powerLoss = unionCrashBeforeVictimSet, unionCrashesBeforeVictimSet < 2 else { return }
        unionCrashesBeforeVictimSet += 1
        events.schedule(.fault(.crash(.primary, powerLoss: powerLoss)), atNs: nowNs + splitBrainRandom.between(1_000, 9_000))
    }

    /// The shape's crash: an application write of the survivor's union landed on its disk.
    func crashAfterUnionWrite(_ node: SimNode) {
        guard unionCrashAfterWrite, unionCrashesAfterWrite < 3, node.alive, node.isPrimary,
            node.primary?.unionCheckpoints != nil
        else { return }
        unionCrashesAfterWrite += 1
        events.schedule(.fault(.crash(.primary, powerLoss: false)), atNs: nowNs + 1)
    }
}
