import TandemCore

// Simulation+Generations: each node's generation identifiers, changed at the points where
// the daemon changes them (Resource+Generations, docs/replication.md *Split brain and
// promotion numbers*), and the meeting of two primaries after a partition. A forced failover
// whose old primary still runs takes it to be behind a partition: it may keep writing (7 in
// 10), and when the partition heals (at once, in simulated time) the two primaries compare
// their Hellos with TandemCore's PeerHelloCheck, as both daemons do. Guarantee 4 (DESIGN.md:
// no split brain is merged without a policy or an operator) is checked there: an old primary
// that wrote after the cut must be told split brain on both sides, with mirrored verdicts.
// The operator then discards the old primary's data (it is demoted and copied, as before).
//
// The identifiers are drawn from their own generator, so that adding them changed no other
// random choice of a seed's run.

extension Simulation {
    private func newGeneration(for node: SimNode) -> UInt64 {
        while true {
            let candidate = generationRandom.between(1, UInt64.max - 1)
            let held = node.generations
            if candidate != held.current && candidate != held.bitmap && !held.historyContains(candidate) { return candidate }
        }
    }

    /// A primary's first session gets a generation.
    func generationsAtPrimaryStart(_ node: SimNode) {
        guard node.generations.current == 0 else { return }
        node.generations.beginInSync(generation: newGeneration(for: node))
    }

    /// A write the peer will not get: tracking starts against the shared generation, once.
    func generationsWriteWithoutPeer(_ node: SimNode) {
        guard node.generations.bitmap == 0, node.generations.current != 0 else { return }
        node.generations.startTracking(newGeneration: newGeneration(for: node))
        startParted(node)
        node.partedNeedsTracked = true  // Resource.startTrackingGeneration: startPartedTracking(inFlight: true)
    }

    /// The peer caught up (a full copy or a catch-up ended).
    func generationsPeerCaughtUp(_ node: SimNode) {
        node.changedBytes = 0
        guard node.generations.bitmap != 0 else { return }
        node.generations.resyncDoneAsSource()
        node.parted = nil
        node.partedFile = nil
        node.partedLost = false
        node.partedNeedsTracked = false
    }

    /// A secondary UpToDate with its connected primary holds the primary's generation, and
    /// the primary, seeing its peer UpToDate, stops tracking (B := 0).
    func generationsAdoptedWhenUpToDate() {
        guard let link, let primaryIndex = link.primary else { return }
        let primary = nodes[primaryIndex]
        let secondary = nodes[link.secondary]
        if primary.alive, primary.primary?.node.isPeerReady == true, peerDiskState(primary) == .upToDate {
            generationsPeerCaughtUp(primary)
        }
        guard secondary.alive, secondary.secondary?.diskState == .upToDate else { return }
        generationsAdopt(secondary, from: primary)
    }

    func generationsAdopt(_ secondary: SimNode, from primary: SimNode) {
        guard primary.generations.current != 0,
              secondary.generations.current != primary.generations.current || secondary.generations.bitmap != 0
                || secondary.generations.promotion < primary.generations.promotion
        else { return }
        secondary.generations.resyncDoneAsTarget(sourceCurrent: primary.generations.current)
        secondary.parted = nil
        secondary.keptVictimSet = nil  // a split brain's loser drops its set once UpToDate
        secondary.partedLost = false
        secondary.generations.sawPromotion(primary.generations.promotion)
    }

    /// Promotion (Resource.promoteGeneration). The seeded fault `promotionKeepsGeneration`
    /// forgets it: the promoted node then looks like the old primary's stale copy.
    func generationsPromoted(_ node: SimNode, planned: Bool) {
        if scenario.testingFault == .promotionKeepsGeneration { return }
        let fresh = newGeneration(for: node)
        let tracking = node.generations.bitmap != 0
        node.changedBytes = 0
        node.keptVictimSet = nil
        node.generations.promote(newGeneration: fresh, peerPromotion: node.generations.promotion)
        if !tracking && node.generations.bitmap != 0 { startParted(node) }
        if planned {
            node.generations.resyncDoneAsSource()
            node.parted = nil
        }
    }

    /// B was just set: the parted set and `changed bytes` start empty.
    private func startParted(_ node: SimNode) {
        node.parted = DirtyBitmap(volumeSizeBytes: UInt64(scenario.blockCount) * SimulationScenario.blockSizeBytes,
                                  blockBytes: SimulationScenario.blockSizeBytes)
        node.changedBytes = 0
        node.partedLost = false
        node.partedNeedsTracked = false
        node.partedFile = nil
    }

    /// The partition heals: the old primary (its generations as they were when the operator
    /// stepped in, `oldWrote`: it wrote after the cut) meets the promoted one. Both judge the
    /// other's Hello; guarantee 4 is checked on the answers.
    func primariesMeet(old: SimNode, oldGenerations: Generations, oldWrote: Bool, promoted: SimNode) {
        partitionsHealed += 1
        let oldFacts = OwnHelloFacts(resourceName: "r0", volumeSizeBytes: 1, role: .primary,
                                     generations: oldGenerations, changedBytes: oldWrote ? 1 : 0)
        let newFacts = OwnHelloFacts(resourceName: "r0", volumeSizeBytes: 1, role: .primary,
                                     generations: promoted.generations)
        let seenByOld = PeerHelloCheck.judge(own: oldFacts, hello: Self.hello(newFacts, from: promoted.name))
        let seenByNew = PeerHelloCheck.judge(own: newFacts, hello: Self.hello(oldFacts, from: old.name))
        trace("partition heals: \(old.name) (\(oldGenerations)) sees \(seenByOld); \(promoted.name) (\(promoted.generations)) sees \(seenByNew)")
        let splitOld = Self.isSplitBrain(seenByOld)
        let splitNew = Self.isSplitBrain(seenByNew)
        if splitOld != splitNew {
            return fail("guarantee 4: two primaries disagree whether they are in a split brain: \(old.name) \(seenByOld), \(promoted.name) \(seenByNew)")
        }
        if oldWrote && !splitOld {
            return fail("guarantee 4: \(old.name) wrote after the cut, but meeting the promoted \(promoted.name) is not a split brain (\(seenByOld) / \(seenByNew)): its writes would be dropped or merged without a policy or an operator")
        }
        if splitOld { splitBrainsFound += 1 }
        guard !splitOld else { return }
        switch seenByOld {
        case .demotedByPromotion: break
        case .yieldToPromoted:
            // Protocol 8: the old primary yields and the promoted one resyncs it (both must say so).
            guard case .resyncReturnedPrimary = seenByNew else {
                return fail("\(old.name) yields to \(promoted.name), which does not resync it: \(seenByNew)")
            }
        default:
            return fail("\(old.name) wrote nothing after the cut but is not stopped by \(promoted.name)'s promotion: \(seenByOld)")
        }
    }

    static func hello(_ facts: OwnHelloFacts, from name: String) -> WireHello {
        WireHello(role: .primary, nodeName: name, resourceName: facts.resourceName, volumeSizeBytes: facts.volumeSizeBytes,
                  generations: WireGenerations(current: 0, bitmap: 0), promotionNumber: facts.generations.promotion,
                  node: WireNodeGenerations(current: facts.generations.current, bitmap: facts.generations.bitmap,
                                            changedBytes: facts.changedBytes, afterSplitBrain: facts.afterSplitBrain))
    }

    private static func isSplitBrain(_ outcome: PeerHelloOutcome) -> Bool {
        if case .splitBrain = outcome { return true }
        return false
    }
}
