import Glibc
import Testing
import TandemCore

// RPO-target pacing in the node simulator (Simulation+Pacing, SimulationScenario+Pacing): the
// guarantees under each class of its shaped scenarios, what the runs exercised, a replay, and
// the seeded faults its checks catch (listed in the survey, SeededFaultSurvey.swift).
// TANDEM_SIM_SEED=<n> runs one seed of each class; TANDEM_SIM_PACING_NODE_SEEDS=<n> sets how
// many (default 16 a class).

extension SeededFaultCheck {
    /// The pacing checks run 8–48 seeds, not 100: a pacing run is seconds of simulated time
    /// (seeds 1–24 each caught the early miss and the understated age: 8 suffice).
    static let pacingSeeds: ClosedRange<UInt64> = 1...8

    /// The holdable classes' link steps are ones a pacer that follows the drain can hold; the
    /// descending class's steps add up to 4–7.6 ×, so a pacer that keeps the first rate it
    /// measured lets a burst in at it and the lag outgrows the target. (The holdable class
    /// alone never brought the stream's age near the target with this fault: its steps down
    /// are 1.5 × at most in all but few seeds.)
    static let pacingIgnoresSlowerWindows = SeededFaultCheck(
        name: "checkerCatchesAPacerThatKeepsTheRateOfALinkThatSlowed",
        fault: .pacing(.ignoresSlowerWindows), overlapping: nil, shape: .pacing(.descending),
        matches: { $0.message.contains("the link carries the writes' average") }, seedRange: pacingSeeds)

    static let pacingDelayUncapped = SeededFaultCheck(
        name: "checkerCatchesANodeHoldingAWritePastTheMaximumPacingDelay",
        fault: .pacing(.delayUncapped), overlapping: nil, shape: .pacing(.stressed),
        matches: { $0.message.contains("above rpo_pacing_max_ms") }, seedRange: 1...48)

    static let pacingMissesEarly = SeededFaultCheck(
        name: "checkerCatchesANodeGivingUpOnTheTargetBeforeTheMaximumDelay",
        fault: .pacing(.missesWithoutWaiting), overlapping: nil, shape: .pacing(.cannotHold),
        matches: { $0.message.contains("before rpo_pacing_max_ms") }, seedRange: pacingSeeds)

    static let rpoAgeUnderstated = SeededFaultCheck(
        name: "checkerCatchesAnRPOAgeBelowTheTruth",
        fault: .rpoAgeFromNewestWrite, overlapping: nil, shape: .pacing(.holdable),
        matches: { $0.message.contains("reports an RPO age") }, seedRange: pacingSeeds)

    /// The catchUp class: a catch-up longer than the target on the link it runs on.
    static let pacingCopyCountsAsApplication = SeededFaultCheck(
        name: "checkerCatchesACatchUpThatMissesTheTargetAgainAndAgain",
        fault: .pacing(.copyCountsAsApplication), overlapping: nil, shape: .pacing(.catchUp),
        matches: { $0.message.contains("cannot be held") }, seedRange: pacingSeeds)

    static let pacingChecks = [pacingDelayUncapped, pacingMissesEarly, rpoAgeUnderstated, pacingIgnoresSlowerWindows,
                               pacingCopyCountsAsApplication]
}

@Suite struct PacingNodeSimulationTests {
    static let seeds: ClosedRange<UInt64> = SimulationSeeds.single.map { $0...$0 }
        ?? 1...(getenv("TANDEM_SIM_PACING_NODE_SEEDS").flatMap { UInt64(String(cString: $0)) } ?? 16)

    static func shaped(_ seed: UInt64, _ kind: PacingPlan.Kind) -> SimulationScenario {
        var scenario = SimulationScenario(seed: seed)
        scenario.shape(.pacing(kind))
        return scenario
    }

    /// Every guarantee the simulator checks holds with `rpo_target_ms` set on a link whose rate
    /// steps down and up and stalls under bursts of writes, and pacing keeps its promises:
    /// no write held past `rpo_pacing_max_ms`, the target held where the link carries the
    /// average (holdable), a target that cannot be held said and followed by Ahead (never
    /// silently, never early), and `rpo_ms` never below the truth.
    @Test(arguments: PacingPlan.Kind.allCases)
    func theRPOTargetHoldsOrIsSaidToFailOnALinkWhoseRateChanges(kind: PacingPlan.Kind) {
        var runs: [PacingRun] = []
        var steps = 0, simulatedNs: UInt64 = 0, aheads = 0, catchUps = 0, restarts = 0
        for seed in Self.seeds {
            let simulation = Simulation(scenario: Self.shaped(seed, kind))
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { return }
            runs.append(simulation.pacingRun!)
            steps += simulation.step
            simulatedNs += simulation.nowNs
            aheads += simulation.aheadEntered
            catchUps += simulation.catchUpsStarted
            restarts += simulation.restarts
        }
        let paced = runs.filter { $0.admissionsHeldByPacing > 0 }.count
        let worst = runs.map { Double($0.maxStreamAgeNs) / Double($0.plan.settings.targetNs) }.max() ?? 0
        let longestWait = runs.map { Double($0.longestWaitNs) / Double($0.plan.settings.delayMaxNs) }.max() ?? 0
        print("pacing in the node simulator, \(kind.rawValue): \(runs.count) seeds, \(steps) steps, \(simulatedNs / 1_000_000) ms "
            + "simulated; \(paced) seeds paced, \(runs.map(\.admissionsChecked).reduce(0, +)) admissions checked "
            + "(\(runs.map(\.admissionsHeldByPacing).reduce(0, +)) held by pacing, \(runs.map(\.admissionsExempt).reduce(0, +)) "
            + "exempt), longest wait \(Int(longestWait * 100)) % of rpo_pacing_max_ms, worst stream RPO age "
            + "\(Int(worst * 100)) % of the target; \(runs.map(\.misses).reduce(0, +)) misses said, "
            + "\(runs.map(\.aheadAfterMiss).reduce(0, +)) followed by Ahead, \(aheads) Ahead in all, \(catchUps) catch-ups, "
            + "\(restarts) restarts; \(runs.map(\.truthChecks).reduce(0, +)) truth checks (oldest lacked write up to "
            + "\((runs.map(\.maxTrueAgeNs).max() ?? 0) / 1_000_000) ms), \(runs.map(\.wakes).reduce(0, +)) pacer wakes, "
            + "\(runs.map(\.stalledFrames).reduce(0, +)) frames behind a stall")
        guard SimulationSeeds.single == nil else { return }
        #expect(paced >= runs.count / 2, "pacing held writes in only \(paced) of \(runs.count) seeds: the class does not exercise it")
        if kind == .holdable || kind == .descending {
            #expect(worst > 0.25, "the \(kind.rawValue) seeds never came near the target: \(worst)")
        }
        if kind == .catchUp {
            // The class is about catch-ups longer than the target on the link they run on.
            let long = runs.filter { $0.longestCatchUpLinkNs > $0.plan.settings.targetNs }.count
            print("pacing in the node simulator, catchUp: \(long) of \(runs.count) seeds caught up more than the target's "
                + "worth of the link")
            #expect(long >= runs.count / 2, "only \(long) of \(runs.count) catch-ups outlasted the target on their link")
        }
    }

    @Test func aPacingSeedReplaysExactly() {
        for seed in UInt64(1)...4 {
            for kind in PacingPlan.Kind.allCases {
                let first = Simulation(scenario: Self.shaped(seed, kind))
                let second = Simulation(scenario: Self.shaped(seed, kind))
                #expect(first.run() == nil)
                #expect(second.run() == nil)
                #expect(first.step == second.step)
                #expect(first.nowNs == second.nowNs)
                #expect(first.pacingRun!.admissionsChecked == second.pacingRun!.admissionsChecked)
                #expect(first.nodes.map(\.disk.durable) == second.nodes.map(\.disk.durable))
            }
        }
    }

    @Test func checkerCatchesANodeHoldingAWritePastTheMaximumPacingDelay() {
        _ = SimulationTests().firstFailure(.pacingDelayUncapped)
    }

    @Test func checkerCatchesANodeGivingUpOnTheTargetBeforeTheMaximumDelay() {
        _ = SimulationTests().firstFailure(.pacingMissesEarly)
    }

    @Test func checkerCatchesAnRPOAgeBelowTheTruth() {
        _ = SimulationTests().firstFailure(.rpoAgeUnderstated)
    }

    @Test func checkerCatchesAPacerThatKeepsTheRateOfALinkThatSlowed() {
        _ = SimulationTests().firstFailure(.pacingIgnoresSlowerWindows)
    }

    @Test func checkerCatchesACatchUpThatMissesTheTargetAgainAndAgain() {
        _ = SimulationTests().firstFailure(.pacingCopyCountsAsApplication)
    }
}
