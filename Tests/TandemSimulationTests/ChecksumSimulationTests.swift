// The crash restart's digest compare of the activity log's extents (ChecksumResync), run by
// the node simulator's crash restarts as production runs it (Simulation+Primary,
// `trackedAfterCrash`). Seed 18: the secondary resumes a staged journal of an earlier session
// holding a write the crashed primary lost; its volume's digests agreed with the primary's,
// the region was cleared, and the commit wrote the lost write onto a copy said to be in sync.
import TandemCore
import Testing

@Suite struct ChecksumSimulationTests {
    /// Seed 675: the primary killed -9 with a write not flushed, the restart's compare found it
    /// equal on both copies and cleared it, then a power loss took it from the primary while
    /// the peer kept it. The restart flushes the volume before it compares.
    @Test func seed675TheRestartFlushesBeforeItComparesSoAPowerLossKeepsWhatWasFoundTheSame() {
        var scenario = SimulationScenario(seed: 675)
        scenario.checksumCompare = true
        let simulation = Simulation(scenario: scenario)
        let failure = simulation.run()
        #expect(failure == nil, "\(failure!)")
        #expect(simulation.checksumResyncsEnded > 0, "seed 675 no longer compares: \(simulation.summary)")
    }

    @Test func seed18AResumedJournalVouchesForNoRegionOfTheCrashRestartsCompare() {
        var scenario = SimulationScenario(seed: 18)
        scenario.checksumCompare = true
        let simulation = Simulation(scenario: scenario)
        let failure = simulation.run()
        #expect(failure == nil, "\(failure!)")
        #expect(simulation.checksumResyncsEnded > 0 && simulation.checksumBytesDiffering > 0,
                "seed 18 no longer compares against a resumed journal: \(simulation.summary)")
    }
}
