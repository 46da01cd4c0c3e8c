import TandemCore

// Simulation+SplitBrainStandAlone: a split brain's primaries write while StandAlone (found,
// the operator's resolve not yet come), and one of them crashes before the resolve — kill -9,
// or power loss of the promoted node, whose acknowledged writes are the checker's lineage
// (issue 13; docs/replication.md *Split brain*, the union resync). No activity log runs while
// StandAlone, so the daemon writes its parted set to `<name>.parted-bitmap` when the
// detection's stop ends and, before each write the file does not cover goes to the volume,
// extends the file durably with the write's extents (TandemCore's PartedCover,
// Resource.notePartedWriteAlone). A restart takes the file's set (loadPartedBitmapAtOpen) and
// the resolve stays a union. Modelled as the daemon does it: `partedFile` survives every
// crash, extended in the step that submits the write; a write through a replicator removes it
// (notePartedWrite), as does a new parting.
//
// The union checker (checkSettled: the victim ends equal to the survivor, both UpToDate) fails
// a restored set that misses a write: the seeded fault `standAloneWriteSkipsPartedFile` keeps
// the file without the write. Random choices come from a generator of their own, drawn once
// per split brain, so that a seed's other draws do not move.

extension Simulation {
    /// The daemon's extent for PartedCover: the activity log's (4 MiB by default), here the
    /// scenario's activity-log extent or four blocks.
    private var partedCoverExtentBytes: UInt64 {
        scenario.activityLog?.extentBytes ?? 4 * SimulationScenario.blockSizeBytes
    }

    /// The node is one of a found split brain's primaries, before it is carried out.
    private func inStandAloneSplitBrain(_ node: SimNode) -> Bool {
        guard let run = splitBrain, node.index == run.old || node.index == run.promoted else { return false }
        switch run.phase {
        case .awaitingOperator, .resolving: return true
        case .apart, .carriedOut: return false
        }
    }

    /// A split-brain primary's replicator stopped (StandAlone): the daemon's stop writes its set
    /// (persistPartedBitmap), if it knows it whole.
    func persistPartedAtStandAlone(_ node: SimNode) {
        guard inStandAloneSplitBrain(node), node.generations.bitmap != 0 else { return }
        node.partedFile = partedSet(node).map { PartedBitmap(partingGeneration: node.generations.bitmap, bitmap: $0) }
    }

    /// A write of a parted primary (after noteSplitBrainWrite marked it): with no replicator
    /// (StandAlone in a split brain, or replication stopped otherwise) the file is extended
    /// first (PartedCover), made if there is none, as the daemon does for every write with no
    /// replicator (Resource.notePartedWriteAlone; its batching per loop turn changes nothing
    /// here: the file covers the write before the write is submitted); through a
    /// replicator, it is removed first.
    func notePartedFileWrite(_ node: SimNode, blocks: Range<Int>) {
        guard node.primary?.standalone == true, node.generations.bitmap != 0, let known = partedSet(node) else {
            node.partedFile = nil
            return
        }
        if scenario.testingFault == .standAloneWriteSkipsPartedFile { return }
        let size = SimulationScenario.blockSizeBytes
        guard let cover = PartedCover.recordBefore(writeOffsetBytes: UInt64(blocks.lowerBound) * size,
                                                   lengthBytes: UInt64(blocks.count) * size, cover: node.partedFile?.bitmap,
                                                   known: known, extentBytes: partedCoverExtentBytes)
        else { return }
        node.partedFile = PartedBitmap(partingGeneration: node.generations.bitmap, bitmap: cover)
    }

    /// A crash: the set in memory is lost; a primary whose file speaks for its parting
    /// restarts with the file's set (loadPartedBitmapAtOpen), any other has none.
    func partedAfterCrash(_ node: SimNode) {
        guard node.generations.bitmap != 0 else { return }
        guard node.isPrimary, let file = node.partedFile, file.partingGeneration == node.generations.bitmap else {
            node.partedLost = true
            return
        }
        node.parted = file.bitmap
        node.partedLost = false
        node.partedNeedsTracked = false
        if inStandAloneSplitBrain(node) { standAloneSetsRestored += 1 }
    }

    /// A split brain waits for the operator, who resolves in `resolveInNs`: in most runs both
    /// primaries write a little while StandAlone, and one of them crashes before the resolve.
    func scheduleStandAloneSteps(_ run: SplitBrainRun, resolveInNs: UInt64) {
        var draws = SimRandom(seed: scenario.seed ^ 0x57A4_D410_0000_0000)
        guard draws.chance(perMille: standAlonePerMille) else { return }
        for _ in 0..<draws.between(1, 6) {
            let node = draws.chance(perMille: 500) ? run.old : run.promoted
            events.schedule(.splitBrain(.standAloneWrite(node: node)), atNs: nowNs + draws.below(resolveInNs + 2_000_000))
        }
        guard draws.chance(perMille: 700) else { return }
        let node = draws.chance(perMille: 500) ? run.old : run.promoted
        // Power loss only of the promoted node: the old primary's far-side writes are checked
        // on its volume as acknowledged, flushed or not (Simulation+SplitBrain).
        let powerLoss = node == run.promoted && draws.chance(perMille: 400)
        events.schedule(.splitBrain(.standAloneCrash(node: node, powerLoss: powerLoss, restartInNs: draws.between(100_000, 2_000_000))),
                        atNs: nowNs + draws.below(resolveInNs))
    }

    /// A write of the application of a StandAlone primary (the far side's, for the old one).
    /// A node restarted meanwhile runs StandAlone again first (the daemon's restart does not
    /// replicate in a split brain); the write comes a little later.
    func standAloneWrite(_ run: SplitBrainRun, _ node: SimNode) {
        guard inStandAloneSplitBrain(node), node.alive, node.isPrimary, let primary = node.primary else { return }
        guard primary.standalone else {
            if !primary.node.stopping { stopForSplitBrain(node) }
            return events.schedule(.splitBrain(.standAloneWrite(node: node.index)), atNs: nowNs + 300_000)
        }
        var draws = SimRandom(seed: scenario.seed ^ 0x57A4_D411_0000_0000 ^ UInt64(standAloneWrites))
        let first = Int(draws.below(UInt64(scenario.blockCount)))
        let range = first..<min(scenario.blockCount, first + Int(draws.between(1, 3)))
        guard !outstanding.contains(where: { $0.blocks.overlaps(range) }) else { return }
        standAloneWrites += 1
        let request = nextRequest
        nextRequest += 1
        if node.index == run.old { run.farRequests.insert(request) }
        requests[request] = .write(blocks: range, fua: draws.chance(perMille: 300), value: nil)
        outstanding.append((request, range))
        trace("split brain: \(node.name) writes \(range) while StandAlone")
        submitToPrimary(node, request)
    }

    /// A StandAlone primary dies before the resolve; it comes back StandAlone.
    func standAloneCrash(_ node: SimNode, powerLoss: Bool, restartInNs: UInt64) {
        guard inStandAloneSplitBrain(node), node.alive, node.isPrimary else { return }
        standAloneCrashes += 1
        crash(node, powerLoss: powerLoss)
        events.schedule(.restart(node: node.index), atNs: nowNs + restartInNs)
    }
}
