import TandemCore

// Simulation+Periodic: `mode: periodic` (PrimaryNode+Periodic) in the seeds that draw it. The
// node is production's with `periodNs` set, as the daemon configures it (the stream async):
// between cycles it is Ahead on purpose (writes marked, acknowledged locally, no link); when a
// cycle is due it dials, and the link carries a catch-up session whose copy reads each dirty
// region as it is then. The simulator's ticks (every 50–500 µs) stand in for the daemon's
// cycle timer. Every other check runs as in async mode (the secondary's claims: a
// crash-consistent prefix of its session, or, staging, the untouched image); this file adds
// what periodic mode promises on top:
//
// - **Only the last write to a region ships.** An application write's Data frame goes out only
//   while a cycle runs (or a drain asks for the peer at once): a write admitted between cycles
//   reaches the peer only through the copy that reads its region as the cycle finds it.
// - **A completed cycle is a boundary.** When the node says a cycle completed, the peer's
//   durable image (its volume, or with a staged catch-up the journal's records written over
//   it) holds every write acknowledged before that cycle started (a lower bound per block:
//   write identities grow in admission order, and the copy may carry newer data).
// - **Settled**: the pair need not be connected at the end (between cycles there is no link,
//   during one a catch-up in place is Inconsistent): a cycle completed once the workload was
//   answered and left the peer's durable image equal to the primary's content, and nothing is
//   dirty outside a running cycle.

extension Simulation {
    /// Periodic mode's cycle started on this primary: what was acknowledged so far must be on
    /// the peer once the cycle completes.
    func periodicCycleStarted(_ node: SimNode, _ primary: PrimarySide) {
        cycleStart = (primary, checker.ackedRequired, checker.lineage)
        cyclesStarted += 1
    }

    /// Periodic mode's cycle completed: the peer's durable image holds every write
    /// acknowledged before it started.
    func periodicCycleCompleted(_ node: SimNode, _ primary: PrimarySide) {
        cyclesCompleted += 1
        if scenario.testingFault == .cycleCopiesStaleRegions { staleCycleImage = node.disk.cache }
        let start = cycleStart
        cycleStart = nil
        let peer = nodes[1 - node.index]
        guard !peer.isPrimary, !peer.diskFailed, peer.secondary?.diskFault == nil else { return }
        let staged = peer.record.staging != nil || peer.secondary?.record.staging != nil
        let image = staged ? journalImage(peer) : peer.disk.durable
        // A staging peer holds the cycle in its journal; its consistent image gains it with
        // the commit. A cycle completes on the peer's CaughtUp, after the commit, unless a
        // link was lost after the SyncComplete and the next one completed it: counted.
        if staged, peer.record.staging?.committed != true { cyclesAheadOfCommit += 1 }
        // A cycle that completes once the workload is over and everything is answered leaves
        // the peer holding exactly this disk's content (checked when the run settles).
        if nowNs > scenario.workloadEndNs && outstanding.isEmpty {
            lastQuietCycle = (nowNs, image == node.disk.cache ? nil : "\(staged ? "volume with its journal" : "durable volume") \(image), primary \(node.disk.cache)")
        }
        guard let start, start.primary === primary, start.lineage == checker.lineage else { return }
        for block in 0..<image.count where image[block] < start.acked[block] {
            return fail("periodic cycle of \(node.name) completed, but its peer \(peer.name)'s \(staged ? "volume with its journal" : "durable volume") holds \(image[block]) at block \(block), where write \(start.acked[block]) was acknowledged before the cycle started")
        }
        cyclesChecked += 1
    }

    /// `.send` in periodic mode: an application write ships only while a cycle runs (or a
    /// drain or hand-over wants the peer at once); between cycles it is tracked.
    func checkPeriodicSend(_ message: PrimaryMessage, _ node: SimNode, _ primary: PrimarySide) {
        guard scenario.periodNs != nil, case let .data(data) = message,
            checker.histories[primary.session]?.valueOfSequence[data.sequence] != nil
        else { return }
        if primary.batchInCycle || primary.node.draining || primary.handingOver {
            cycleWritesStreamed += 1
            return
        }
        fail("primary \(node.name) in periodic mode ships application write \(data.sequence) between cycles")
    }

    /// The copy's read of a dirty region (the seeded fault `cycleCopiesStaleRegions` reads the
    /// region as the previous cycle left it).
    func copyValues(_ node: SimNode, _ primary: PrimarySide, _ values: [UInt64], blocks: Range<Int>) -> [UInt64] {
        guard scenario.testingFault == .cycleCopiesStaleRegions, primary.node.periodic.running, let stale = staleCycleImage
        else { return values }
        return Array(stale[blocks])
    }

    /// At the end, periodic mode: a cycle completed, nothing is dirty outside a running cycle,
    /// and the secondary holds the primary's content as a consistent copy (the pair may be
    /// between cycles, with no link).
    func checkSettledPeriodic(_ primaryNode: SimNode, _ primary: PrimarySide) {
        guard primary.node.periodic.completed > 0 else {
            return fail("periodic mode: no cycle completed in the primary's run of \(nowNs / 1_000_000) ms")
        }
        if !primary.node.periodic.running, primary.node.bitmap.outOfSyncBytes > 0 {
            return fail("periodic mode settled between cycles with \(primary.node.bitmap.outOfSyncBytes) bytes still dirty")
        }
        guard let (atNs, difference) = lastQuietCycle else {
            return fail("periodic mode: no cycle completed after the workload was answered")
        }
        if let difference {
            return fail("periodic mode: the cycle completed at \(atNs / 1000) µs after the workload left the peer's \(difference)")
        }
        // (What the secondary says is checked after every step as in async mode. It may say
        // Inconsistent between cycles where a link was lost after the cycle's SyncComplete:
        // the simulated close drops what is in flight, and the next link's cycle completes
        // without the peer's CaughtUp (PrimaryNode+Periodic), so an in-place catch-up's copy
        // may end without it until the next cycle's Hello.)
    }
}
