import Testing
import TandemCore

// A primary killed right after a catch-up ended restarts with a catch-up, never a full copy
// (issue 13 §4; Simulation+TrackedStart arms the kill). The node simulator runs the production
// decisions: Simulation+Primary's `trackedAfterCrash` keeps an empty bitmap as the daemon's
// `Resource.trackedForStart` does, and PrimaryStart decides what it is worth.

extension SimulationScenario {
    /// 16–24 blocks with a small activity log (`smallActivityLog`), and two primary
    /// crashes: one while the workload runs (its restart catches up extents the application
    /// keeps writing) and one just after it (its restart's session writes nothing, so its
    /// catch-up's end leaves a transaction with bases and no extent).
    mutating func shapeForCatchUpEndCrash() {
        var draws = SimRandom(seed: seed ^ 0x7EAC_E4D0_0000_0000)
        initialSync = draws.chance(perMille: 500) ? .full : .none
        blockCount = Int(draws.between(16, 24))
        activityLog = Self.smallActivityLog(&draws)
        faults = [
            (draws.below(workloadEndNs), .crash(.primary, powerLoss: draws.chance(perMille: 300))),
            (workloadEndNs + draws.below(5_000_000), .crash(.primary, powerLoss: false)),
        ]
    }
}

@Suite struct CatchUpEndCrashSimulationTests {
    static let seeds = UInt64(1)...200

    static func simulation(seed: UInt64) -> Simulation {
        var scenario = SimulationScenario(seed: seed)
        scenario.shapeForCatchUpEndCrash()
        let simulation = Simulation(scenario: scenario)
        var draws = SimRandom(seed: seed ^ 0x7EAC_5721_0000_0000)
        let strikes = Int(draws.between(2, 4))
        simulation.catchUpEndCrash = CatchUpEndCrash(random: draws, strikesLeft: strikes, delayMaxNs: 400_000,
                                                     untilNs: scenario.workloadEndNs + 60_000_000)
        return simulation
    }

    /// Every restart after such a kill is a catch-up, and every guarantee holds through it. On
    /// the code before, a restart whose log named no extent copied the whole volume: the
    /// armed check fails the run ("… not a catch-up") and none was a catch-up of nothing.
    @Test func aPrimaryKilledRightAfterACatchUpEndedRestartsWithACatchUpAndEveryGuaranteeHolds() {
        var struck = 0
        var checked = 0
        var ofNothing = 0
        for seed in Self.seeds {
            let simulation = Self.simulation(seed: seed)
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { return }
            struck += simulation.catchUpEndCrash?.struck ?? 0
            checked += simulation.catchUpEndCrash?.restartsChecked ?? 0
            ofNothing += simulation.catchUpsOfNothingAfterCrash
        }
        print("catch-up end crashes, seeds \(Self.seeds): \(struck) kills right after a catch-up ended, "
              + "\(checked) restarts checked, \(ofNothing) crash restarts caught up nothing")
        #expect(checked >= 100, "\(checked) restarts after a kill right after a catch-up ended")
        #expect(ofNothing >= 40, "\(ofNothing) crash restarts found nothing dirty (a catch-up of nothing)")
    }
}
