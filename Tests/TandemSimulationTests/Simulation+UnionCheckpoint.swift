import TandemCore

// The split-brain survivor's `.union-resync` file across a stop or a crash, as the daemon's
// Resource+SplitBrainUnion keeps it (docs/replication.md, *Across a crash of the survivor*):
// - a running union resync with an activity log keeps a checkpoint of what is left of it
//   (`PrimaryNode.copyLeftWithHeld`: the copy's blocks not yet admitted and every write and
//   chunk the peer has not confirmed durable): taken when the union is known and when a
//   resumed one starts, then at each tick at which the copy moved (its copied or unconfirmed
//   bytes changed); one durable, atomic write here as there. Without a log it keeps none and
//   the file is removed;
// - a stop that seals a bitmap keeps that bitmap as the file (keepUnionLeft); a stop that
//   seals nothing removes the file before its record clears `crashed-primary`;
// - a restart that finds the file, the node primary and still parted from the same
//   generation, resumes the union from it: after a crash (`crashed-primary`) with the regions
//   of the activity log's newest transaction added (a ring that proves nothing: the whole
//   volume), the file rewritten with them; after a stop as it is. The session is
//   `peer-lacks-writes` (a full copy for the victim) restricted to that set
//   (`PrimaryNode.restrictCopy`, as PrimaryReplicator.resumeSplitBrainResync calls it);
// - the resync's end (the copy done) removes the file; a node that becomes secondary has none.
// The guarantees then check the resumed union as any: the victim's UpToDate, and at the end
// the victim equal to the survivor. The seeded fault `unionResumesWithoutActivityLogExtents`
// resumes after a crash from the checkpoint alone.
// In the split-brain seeds, half the union resyncs arm a crash of the survivor (kill -9 or
// power loss) 0.1–3 ms after they start, from the split brain's own random stream.

/// A union resync's checkpoints on its session (in memory: lost with the process).
struct UnionCheckpoints {
    var session: UInt64
    var progress: (copied: UInt64, unconfirmed: UInt64)?
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
    }

    /// On every tick, and at the start: a checkpoint when the copy moved.
    func checkpointUnion(_ node: SimNode) {
        guard let primary = node.primary, let checkpoints = primary.unionCheckpoints, !checkpoints.sealed,
            primary.session == checkpoints.session, node.generations.bitmap != 0
        else { return }
        let progress = (copied: primary.node.copiedBytes, unconfirmed: primary.machine.unconfirmedBytes)
        if let last = checkpoints.progress, last.copied == progress.copied, last.unconfirmed == progress.unconfirmed { return }
        primary.unionCheckpoints!.progress = progress
        node.unionLeft = (node.generations.bitmap, primary.node.copyLeftWithHeld)
        unionCheckpointsTaken += 1
    }

    /// `.persistBitmap`: the stop sealed what is left of the copy (Resource.keepUnionLeft).
    func keepUnionLeft(_ node: SimNode, _ primary: PrimarySide) {
        guard primary.unionCheckpoints != nil, node.generations.bitmap != 0 else { return }
        primary.unionCheckpoints!.sealed = true
        node.unionLeft = (node.generations.bitmap, primary.node.bitmap)
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
    /// when it resumed a union from its file.
    func resumeUnionAtRestart(_ node: SimNode) -> Bool {
        guard var left = node.unionLeft else { return false }
        node.unionLeft = nil
        guard left.partingGeneration == node.generations.bitmap, node.generations.bitmap != 0 else {
            trace("\(node.name): what is left of the union resync no longer applies: the whole volume is copied")
            return false
        }
        let afterCrash = node.crashedPrimary
        if afterCrash && scenario.testingFault != .unionResumesWithoutActivityLogExtents {
            guard let log = scenario.activityLog, let transaction = node.activityLogDurable else {
                trace("\(node.name): the union's activity log proves nothing after a crash: the whole volume is copied")
                return false
            }
            let volumeSizeBytes = UInt64(scenario.blockCount) * SimulationScenario.blockSizeBytes
            for region in ActivityLog.dirtyRegions(afterCrash: transaction.extents, extentBytes: log.extentBytes,
                                                   volumeSizeBytes: volumeSizeBytes) {
                _ = left.bitmap.setRange(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes)
            }
        }
        node.unionLeft = left  // rewritten with the extents before the session's first transaction
        unionsResumed += 1
        if afterCrash { unionsResumedAfterCrash += 1 }
        trace("\(node.name) resumes its union resync \(afterCrash ? "after a crash" : "after a stop"): \(left.bitmap.outOfSyncBytes) bytes left")
        startPrimary(node, peerLacksWrites: true) { primaryNode in primaryNode.restrictCopy(to: left.bitmap) }
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
