import TandemCore

// Simulation+Pacing: `rpo_target_ms` write pacing (RPOPacingController, PrimaryNode+Adaptive)
// in the node simulator, in the seeds SeededFaultShape.pacing shapes (SimulationScenario+Pacing).
// The primary is production's node with `rpoTarget` set as the daemon sets it; this file adds
// what the daemon has around it and the checks:
//
// - **A link with a rate.** Primary → secondary, every frame takes its bytes' time at the
//   rate of the phase it is sent in (a 4 KiB block costs 4 KiB whatever its simulated wire
//   bytes; other frames 64 bytes), behind the frames before it; a stall moves nothing until
//   it ends. A new connection starts with an empty pipe. The other direction is unlimited.
// - **The pacer's timer.** As PrimaryReplicator+Pacing arms a loop timer for the node's
//   `profileWakeAtNs` (and `resyncRetryAtNs`), a `.pacerWake` event feeds `.tick` then.
// - **A writer in bursts** (`nextIssueGapNs`): requests at the plan's rate while a burst is
//   on, none between; the application's queue depth bounds it (a real writer is slowed).
//
// Checked after every step and every batch of the node's actions:
// 1. **The maximum delay.** An async write (or zero chunk) waits for admission at most
//    `rpo_pacing_max_ms` after the later of its submission and the previous admission, when
//    nothing but pacing held it (a full buffer, an overlap, the activity log, a catch-up's
//    restart or a flush at the head exempt the write: the node says pacing holds the head only
//    through `profileWakeAtNs`).
// 2. **Said, never silent.** The stream's RPO age (what the pacer holds: `ReplicationPrimary.
//    rpoAgeNs`) is never above the target for longer than `rpo_pacing_max_ms` + 3 ms (a look at
//    most 1.5 ms apart, at both ends) without a `rpoTargetMissed`; a miss comes only once the age has
//    been above the target for `rpo_pacing_max_ms` (dips shorter than 2 ms, which the pacer may
//    not see, do not end that time); and with the miss the node is Ahead in the same batch
//    (the application is not stalled), unless it is stopping, its disk failed or it is not
//    enabled.
// 3. **Holdable** seeds: the stream's RPO age never exceeds the target, and no miss is said.
// 4. **Never below the truth.** The RPO age the node reports (`PrimaryNode.rpoAgeNs`, status
//    `rpo_ms`) is at least the age of the oldest write this node acknowledged whose blocks the
//    peer's durable volume does not hold (the simulator's truth: FakeDisk's durable image),
//    while that peer does not stage a catch-up (a journal is not the volume) and for writes of
//    this node's run (a restarted node's age from before is docs/replication.md's documented
//    gap, *RPO accounting*).
// 5. **cannotHold** seeds: by the end the node said so and went Ahead; every request was
//    answered (the settled checks).
// 6. **catchUp** seeds: the stall's miss is the only one, and the catch-up after it ends (its
//    copy done), once: a copy's chunks neither count as application writes nor hold them past
//    the target (the descending class is holdable: check 3).

/// What one pacing run keeps beside the nodes (one primary side at a time).
final class PacingRun {
    let plan: PacingPlan
    /// The link primary → secondary: busy until, on this connection.
    var busyUntilNs: UInt64 = 0
    var busyLinkID = 0
    /// Each node's pacer timer: the instant armed (0: none) and for which incarnation.
    var wakeArmed: [(atNs: UInt64, incarnation: Int)] = [(0, 0), (0, 0)]

    /// The primary side the checks follow; what they remember of it.
    weak var side: PrimarySide?
    var submittedNs: [RequestID: UInt64] = [:]
    var lastAdmissionNs: UInt64?
    var otherHold = false
    /// Since when the stream's RPO age has been above the target: at every step (strict), and
    /// across dips shorter than 2 ms (loose); when it last went under; a miss said since loose.
    var strictOverSinceNs: UInt64?
    var looseOverSinceNs: UInt64?
    var underSinceNs: UInt64?
    var missSaid = false
    /// Writes this side acknowledged, in the order it answered them, from the oldest the peer's
    /// durable volume may lack (`answeredHead`: a block there never returns to an older write).
    var answered: [(value: UInt64, blocks: Range<Int>, answeredNs: UInt64)] = []
    var answeredHead = 0

    // What the run did: admissions checked against the maximum delay, exempt (held by
    // something else, or Ahead), held by pacing, and the longest wait of those checked;
    var admissionsChecked = 0, admissionsExempt = 0, admissionsHeldByPacing = 0, longestWaitNs: UInt64 = 0
    // misses said, and followed by Ahead; the stream's highest RPO age;
    var misses = 0, aheadAfterMiss = 0, maxStreamAgeNs: UInt64 = 0
    // steps the truth was checked, and the oldest write the peer lacked then; the pacer's
    // timer's wake-ups; frames sent into a stall.
    var truthChecks = 0, maxTrueAgeNs: UInt64 = 0, wakes = 0, stalledFrames = 0
    // Catch-ups started and copies done, and the largest catch-up in link time (ns at the
    // link's rate when it started).
    var catchUpsStarted = 0, copiesDone = 0, longestCatchUpLinkNs: UInt64 = 0

    init(plan: PacingPlan) { self.plan = plan }

    func follow(_ primary: PrimarySide) {
        side = primary
        submittedNs = [:]
        lastAdmissionNs = nil
        otherHold = false
        strictOverSinceNs = nil
        looseOverSinceNs = nil
        underSinceNs = nil
        missSaid = false
        answered = []
        answeredHead = 0
    }

    /// The stream's age at a step: above the target or not.
    func track(over: Bool, nowNs: UInt64) {
        guard over else {
            strictOverSinceNs = nil
            if underSinceNs == nil { underSinceNs = nowNs }
            if let under = underSinceNs, nowNs - under >= 2_000_000 {
                looseOverSinceNs = nil
                missSaid = false
            }
            return
        }
        if let under = underSinceNs, nowNs - under >= 2_000_000 {
            looseOverSinceNs = nil
            missSaid = false
        }
        underSinceNs = nil
        if strictOverSinceNs == nil { strictOverSinceNs = nowNs }
        if looseOverSinceNs == nil { looseOverSinceNs = nowNs }
    }
}

extension Simulation {
    var pacingTargetNs: UInt64 { scenario.pacing!.settings.targetNs }
    var pacingDelayMaxNs: UInt64 { scenario.pacing!.settings.delayMaxNs }

    // MARK: The link, the timer, the writer

    /// When a frame sent now has left the pipe primary → secondary (now, without a rate).
    func linkDepartureNs(_ message: ToSecondary, linkID: Int) -> UInt64 {
        guard let run = pacingRun else { return nowNs }
        if run.busyLinkID != linkID {
            run.busyLinkID = linkID
            run.busyUntilNs = 0
        }
        var bytes = Double(PacingPlan.frameOverheadBytes)
        if case let .message(.data(data)) = message { bytes += Double(data.lengthBytes) }
        var atNs = max(nowNs, run.busyUntilNs)
        while true {
            let phase = run.plan.phases.first { atNs < $0.untilNs } ?? run.plan.phases[run.plan.phases.count - 1]
            guard phase.bytesPerSecond > 0 else {
                run.stalledFrames += 1
                atNs = phase.untilNs
                continue
            }
            let rate = Double(phase.bytesPerSecond)
            let room = Double(phase.untilNs - atNs) / 1e9 * rate
            if bytes <= room {
                atNs += UInt64((bytes / rate * 1e9).rounded(.up))
                break
            }
            bytes -= room
            atNs = phase.untilNs
        }
        run.busyUntilNs = atNs
        return atNs
    }

    /// The application's next request while the plan's burst is on; the burst's next start
    /// when it is off. Without a plan, the default seeds' draw.
    func nextIssueGapNs() -> UInt64 {
        guard let plan = scenario.pacing else { return random.between(1_000, 120_000) }
        let into = nowNs % plan.burstPeriodNs
        if into >= plan.burstOnNs { return plan.burstPeriodNs - into + 1_000 }
        let gapNs = PacingPlan.offeredBytesPerIssue * 1_000_000_000 / max(1, plan.burstBytesPerSecond)
        return max(1_000, random.between(gapNs / 2, gapNs * 3 / 2))
    }

    /// PrimaryReplicator+Pacing's timer fired: `.tick` at the instant the node named.
    func pacerWake(_ node: SimNode, incarnation: Int, atNs: UInt64) {
        guard let run = pacingRun, run.wakeArmed[node.index].atNs == atNs, run.wakeArmed[node.index].incarnation == incarnation
        else { return }
        run.wakeArmed[node.index].atNs = 0
        guard node.alive, node.incarnation == incarnation, let primary = node.primary, !primary.standalone else { return }
        run.wakes += 1
        drivePrimary(node, .tick)
    }

    private func armPacerWake(_ node: SimNode, _ primary: PrimarySide, _ run: PacingRun) {
        let candidates = [primary.node.resyncRetryAtNs, primary.node.profileWakeAtNs].compactMap { $0 }.filter { $0 > nowNs }
        let armed = run.wakeArmed[node.index]
        guard let wakeNs = candidates.min(), armed.incarnation != node.incarnation || armed.atNs <= nowNs || wakeNs < armed.atNs
        else { return }
        run.wakeArmed[node.index] = (wakeNs, node.incarnation)
        events.schedule(.pacerWake(node: node.index, incarnation: node.incarnation, atNs: wakeNs), atNs: wakeNs)
    }

    // MARK: After each batch of the node's actions

    /// Called with each batch the primary decided (before it is carried out): admissions are
    /// timed, acknowledgements remembered, a miss judged, and the timer armed.
    func observePacing(_ node: SimNode, _ primary: PrimarySide, _ event: PrimaryNodeEvent, _ actions: [PrimaryNodeAction]) {
        guard let run = pacingRun else { return }
        if run.side !== primary { run.follow(primary) }
        if case let .request(id, _) = event { run.submittedNs[id] = nowNs }
        for action in actions {
            switch action {
            case .writeLocal(let write), .holdLocalWrite(let write):
                switch write.source {
                case let .request(id): checkAdmissionWait(run, primary, request: id)
                case .zeroes: checkAdmissionWait(run, primary, request: write.request)
                case .copyChunk: break
                }
            case let .answer(id, errno) where errno == 0:
                rememberAnswered(run, primary, request: id)
            case .notice(.rpoTargetMissed):
                checkMiss(run, node, primary)
            case let .notice(.catchUpStarted(bytes)):
                run.catchUpsStarted += 1
                let rate = max(1, run.plan.bytesPerSecond(atNs: nowNs))
                run.longestCatchUpLinkNs = max(run.longestCatchUpLinkNs, bytes * 1_000_000_000 / rate)
            case .notice(.copyDone):
                run.copiesDone += 1
            default:
                break
            }
            if failure != nil { return }
        }
        checkPacingHold(run, node, primary)
        armPacerWake(node, primary, run)
    }

    /// The head of the queue waits: for pacing (the node names when it lets the head in, at
    /// most `rpo_pacing_max_ms` after the previous admission) or for something else.
    private func checkPacingHold(_ run: PacingRun, _ node: SimNode, _ primary: PrimarySide) {
        guard primary.node.queuedRequests > 0 else { return }
        guard let wakeNs = primary.node.profileWakeAtNs else { return run.otherHold = true }
        guard !run.otherHold, !primary.node.isAhead, let lastNs = run.lastAdmissionNs, wakeNs > lastNs + pacingDelayMaxNs
        else { return }
        fail("pacing holds primary \(node.name)'s next write until \((wakeNs - lastNs) / 1_000) µs after the previous "
            + "admission, above rpo_pacing_max_ms \(pacingDelayMaxNs / 1_000_000)")
    }

    private func checkAdmissionWait(_ run: PacingRun, _ primary: PrimarySide, request: RequestID) {
        defer {
            run.lastAdmissionNs = nowNs
            run.otherHold = false
        }
        guard !primary.batchAhead, primary.node.rpoPacer != nil, !primary.machine.admitsSync, !run.otherHold else {
            run.admissionsExempt += 1
            return
        }
        let eligibleNs = max(run.lastAdmissionNs ?? 0, run.submittedNs[request] ?? nowNs)
        let waitedNs = nowNs - min(eligibleNs, nowNs)
        run.admissionsChecked += 1
        if waitedNs > 0 { run.admissionsHeldByPacing += 1 }
        run.longestWaitNs = max(run.longestWaitNs, waitedNs)
        if waitedNs > pacingDelayMaxNs {
            fail("pacing held request \(request) \(waitedNs / 1_000) µs after it could go in (nothing else held it), "
                + "above rpo_pacing_max_ms \(pacingDelayMaxNs / 1_000_000)")
        }
    }

    private func rememberAnswered(_ run: PacingRun, _ primary: PrimarySide, request: RequestID) {
        run.submittedNs[request] = nil
        guard !primary.standalone, !primary.node.stopping else { return }
        switch requests[request] {
        case let .write(blocks, _, value?): run.answered.append((value, blocks, nowNs))
        case let .zeroes(_, _, chunks): for chunk in chunks { run.answered.append((chunk.value, chunk.blocks, nowNs)) }
        default: break
        }
    }

    private func checkMiss(_ run: PacingRun, _ node: SimNode, _ primary: PrimarySide) {
        run.misses += 1
        guard let since = run.looseOverSinceNs, nowNs - since >= pacingDelayMaxNs else {
            let over = run.looseOverSinceNs.map { "above the target for \((nowNs - $0) / 1_000) µs" } ?? "not above the target"
            return fail("primary \(node.name) said the RPO target cannot be held with the stream's RPO age \(over), "
                + "before rpo_pacing_max_ms \(pacingDelayMaxNs / 1_000_000) of pacing at its maximum")
        }
        if scenario.pacing!.holdsTarget {
            return fail("the link carries the writes' average, but primary \(node.name) said the RPO target cannot be held")
        }
        if scenario.pacing!.kind == .catchUp, run.misses > 1 {
            return fail("primary \(node.name) said the RPO target cannot be held a second time on a link that carries the "
                + "writes since its stall ended (\(run.catchUpsStarted) catch-ups started, \(run.copiesDone) done): the "
                + "catch-up's copy counted as application writes or held them past the target")
        }
        run.missSaid = true
        let mayStay = primary.node.stopping || primary.node.diskFailed || !primary.node.enabled || node.localLacksWrites
        if primary.node.isAhead {
            run.aheadAfterMiss += 1
        } else if !mayStay {
            fail("primary \(node.name) said the RPO target cannot be held but did not go Ahead: the application waits")
        }
    }

    // MARK: After every step

    func checkPacingStep() {
        guard let run = pacingRun, let node = livePrimary, let primary = node.primary, !primary.standalone else { return }
        if run.side !== primary { run.follow(primary) }
        let streaming = primary.node.rpoPacer != nil && !primary.node.isAhead && !primary.node.restartPending
            && primary.node.enabled && !primary.node.stopping
        let ageNs = streaming ? primary.machine.rpoAgeNs(nowNs: nowNs) : 0
        run.maxStreamAgeNs = max(run.maxStreamAgeNs, ageNs)
        run.track(over: ageNs > pacingTargetNs, nowNs: nowNs)
        // The pacer looks at an event at least 1 ms after its last look: with ticks at most
        // 0.5 ms apart, 1.5 ms apart at most, at the start of the time and at its end (past
        // the scenario's end the ticks come every 1–5 ms).
        let lookNs: UInt64 = nowNs > scenario.runEndNs ? 12_000_000 : 3_000_000
        if let since = run.strictOverSinceNs, !run.missSaid, nowNs - since > pacingDelayMaxNs + lookNs {
            return fail("the stream's RPO age (\(ageNs / 1_000_000) ms) has been above rpo_target_ms "
                + "\(pacingTargetNs / 1_000_000) for \((nowNs - since) / 1_000) µs and primary \(node.name) has not said "
                + "the target cannot be held")
        }
        if scenario.pacing!.holdsTarget, ageNs > pacingTargetNs {
            return fail("the link carries the writes' average, but the stream's RPO age reached \(ageNs / 1_000) µs, above "
                + "rpo_target_ms \(pacingTargetNs / 1_000_000) (lag \(primary.machine.lagBytes) bytes, drain measured "
                + "\(UInt64(primary.node.rpoPacer?.drainBytesPerSecond ?? 0)) B/s, link "
                + "\(scenario.pacing!.bytesPerSecond(atNs: nowNs)) B/s)")
        }
        checkRPOAgainstTruth(run, node, primary)
    }

    /// Check 4: the reported RPO age is never below the age of the oldest acknowledged write
    /// the peer's durable volume lacks.
    private func checkRPOAgainstTruth(_ run: PacingRun, _ node: SimNode, _ primary: PrimarySide) {
        let peer = nodes[1 - node.index]
        guard !peer.isPrimary, !peer.diskFailed, peer.secondary?.diskFault == nil, !stagesACatchUp(peer),
            !primary.node.stopping else { return }
        let durable = peer.disk.durable
        while run.answeredHead < run.answered.count,
            run.answered[run.answeredHead].blocks.allSatisfy({ durable[$0] >= run.answered[run.answeredHead].value }) {
            run.answeredHead += 1
        }
        if run.answeredHead > 1_024 {
            run.answered.removeFirst(run.answeredHead)
            run.answeredHead = 0
        }
        guard run.answeredHead < run.answered.count else { return }
        let oldestNs = run.answered[run.answeredHead].answeredNs
        let trueAgeNs = nowNs - oldestNs
        let reportedNs = primary.node.rpoAgeNs(nowNs: nowNs)
        run.truthChecks += 1
        run.maxTrueAgeNs = max(run.maxTrueAgeNs, trueAgeNs)
        if reportedNs < trueAgeNs {
            fail("primary \(node.name) reports an RPO age of \(reportedNs / 1_000) µs, but the peer's durable volume lacks "
                + "a write it acknowledged \(trueAgeNs / 1_000) µs ago")
        }
    }

    /// At the end: a cannotHold seed said so and went Ahead; a catchUp seed's one catch-up ended.
    func checkSettledPacing() {
        guard let run = pacingRun else { return }
        if run.plan.kind == .catchUp, run.misses != 1 || run.catchUpsStarted != 1 || run.copiesDone != 1 {
            fail("after the stall the link carries the writes, but the primary said the RPO target cannot be held "
                + "\(run.misses) times, started \(run.catchUpsStarted) catch-ups and finished \(run.copiesDone) copies "
                + "(one of each expected)")
        }
        guard run.plan.kind == .cannotHold else { return }
        if run.misses == 0 || run.aheadAfterMiss == 0 {
            fail("the link carries less than writes paced at rpo_pacing_max_ms, but the primary never said the RPO target "
                + "cannot be held and went Ahead (\(run.misses) misses)")
        }
    }
}
