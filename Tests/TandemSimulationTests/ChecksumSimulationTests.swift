// The crash restart's digest compare of the activity log's extents (ChecksumResync), run by
// the node simulator's crash restarts as production runs it (Simulation+Primary,
// `trackedAfterCrash`). Seed 18: the secondary resumes a staged journal of an earlier session
// holding a write the crashed primary lost; its volume's digests agreed with the primary's,
// the region was cleared, and the commit wrote the lost write onto a copy said to be in sync.
import TandemCore
import Testing

@Suite struct ChecksumSimulationTests {
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
