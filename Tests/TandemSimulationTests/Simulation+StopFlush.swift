import Testing
import TandemCore

// The FLUSH rule at a stop (docs/replication.md, *Fencing*; PrimaryNode+Stop), run by the node
// simulator. A sync FLUSH answered 0 promises that every write acknowledged before it is
// durable on both copies, so the checker takes it at its word: the secondary's stable storage
// must hold the FLUSH's snapshot from the answer on (GuaranteeChecker.checkSecondaryDurable,
// after every step, across the secondary's power losses), and a forced promotion carries the
// promise to the promoted node (`startLineage` keeps the sync promises, checked against its
// stable storage as the new primary's) — an acknowledged write survives any later crash or
// failover. A stop answers a FLUSH still waiting for the peer as it answers a held write: EIO
// where the node serves nothing after it (a clean restart's SIGTERM, a split brain's stop), 0
// after `acknowledgedWithoutPeer` only where it serves alone (`fencing: dont-care`, the peer's
// disk failed): a promise of this copy only, which `flushAnswerCoversPeer` reads so.
//
// The application sends a FLUSH right before a clean restart's stop (`stopFlushPerMille` of
// them, half by default, drawn apart from the seed's stream): it is admitted, its FlushRequest
// may or may not reach the peer, and the stop hangs up before the peer confirms it — the FLUSH
// is held at the stop. The seeded fault `stopAnswersFlushFromLocalFlush` answers it 0 once the
// local flush succeeded (the daemon's rule before); SeededFaultShape.flushHeldAtStop makes its
// scenarios meet it, and the checker must catch it in at least 5 of seeds 1–100.

extension Simulation {
    /// The application sends a FLUSH: it covers every write acknowledged so far.
    func issueFlush(_ node: SimNode) {
        let request = nextRequest
        requestsIssued += 1
        nextRequest += 1
        requests[request] = .flush(snapshot: checker.ackedRequired)
        outstanding.append((request, 0..<0))
        submitToPrimary(node, request)
    }

    /// A clean restart's SIGTERM comes right after a FLUSH the application sent, in
    /// `stopFlushPerMille` of them (a draw of its own: the seed's stream is left as it was
    /// until the FLUSH is sent).
    func issueFlushBeforeStop(_ node: SimNode) {
        var draws = SimRandom(seed: scenario.seed ^ 0x57F1_05E0_0000_0000 ^ nowNs)
        guard draws.chance(perMille: scenario.stopFlushPerMille) else { return }
        trace("the application sends a FLUSH right before \(node.name)'s stop")
        issueFlush(node)
    }

    /// Whether a FLUSH answered 0 now promises its snapshot on the peer as well: the primary
    /// replicates to a peer that needs no copy, neither Ahead nor detached after the peer's
    /// disk failed. A stop's answers (a hand-over's are the drained stream's) promise both
    /// copies too unless the stop serves alone (`fencing: dont-care`, the peer's disk failed),
    /// the only stops that may answer a FLUSH the peer never confirmed.
    var flushAnswerCoversPeer: Bool {
        guard let node = livePrimary, let primary = node.primary, primary.node.peerSynced else { return false }
        guard primary.node.stopping && !primary.handingOver else { return !isDetached }
        return !scenario.fencingDontCare && !primary.standalone && !pendingDetach.contains(node.index)
            && !primary.node.isAhead && !primary.batchAhead
    }
}

extension SimulationScenario {
    /// SeededFaultShape.flushHeldAtStop: sync under `fencing: suspend-io` (neither adaptive nor
    /// periodic), room for 64 blocks and 32 writes in flight (a FLUSH behind a blocked write is
    /// never admitted: the stop fails it from the queue), a secondary whose group commit waits
    /// 5–10 ms or 64 blocks (writes it applied, and so the primary acknowledged, stay volatile
    /// there until a FLUSH or FUA asks), 120–160 requests with 4–8 outstanding, and 4–8 clean
    /// restarts in the later four fifths of the workload, each right behind a FLUSH. (Not
    /// after a link cut: a suspend-io primary admits nothing then, so the FLUSH would wait in
    /// its queue, not for the peer.)
    mutating func shapeForStopFlush(_ draws: inout SimRandom) {
        mode = .sync
        primaryConfig.mode = .sync
        primaryConfig.bufferBytesMax = 64 * Self.blockSizeBytes
        primaryConfig.writesInFlightMax = 32
        fencingDontCare = false
        adaptive = nil
        periodNs = nil
        stopFlushPerMille = 1000
        if testingFault == .stopAnswersFlushFromLocalFlush { primaryConfig.testingFault = .stopAnswersFlushFromLocalFlush }
        secondaryConfig.queuedBytesMax = 64 * Self.blockSizeBytes
        secondaryConfig.queuedWritesMax = 32
        secondaryConfig.groupCommitIntervalNs = draws.between(5_000_000, 10_000_000)
        secondaryConfig.groupCommitBytesMax = 64 * Self.blockSizeBytes
        operationCount = Int(draws.between(120, 160))
        requestsOutstandingMax = Int(draws.between(4, 8))
        workloadEndNs = UInt64(operationCount) * 60_000
        runEndNs = workloadEndNs + 150_000_000
        for _ in 0..<draws.between(4, 8) { faults.append((draws.between(workloadEndNs / 5, workloadEndNs), .cleanRestart)) }
    }
}

extension SeededFaultCheck {
    static let flushFromLocalFlushAtStop = SeededFaultCheck(
        name: "checkerCatchesAStopThatAnswersAHeldFlushFromItsLocalFlush",
        fault: .stopAnswersFlushFromLocalFlush, overlapping: nil, shape: .flushHeldAtStop,
        matches: { $0.message.contains("durably holds") })
}

extension SimulationTests {
    /// PrimaryStreamTestingFault.stopAnswersFlushFromLocalFlush: a suspend-io stop after which
    /// the node serves nothing answers a FLUSH the peer never confirmed 0 from its local flush;
    /// the writes acknowledged before it were applied on the peer but not yet durable there.
    @Test func checkerCatchesAStopThatAnswersAHeldFlushFromItsLocalFlush() {
        let check = SeededFaultCheck.flushFromLocalFlushAtStop
        let caught = firstFailure(check)
        #expect(caught != nil, "the checker never noticed a FLUSH answered 0 at a stop without its peer in seeds \(check.seedsNow)")
    }
}
