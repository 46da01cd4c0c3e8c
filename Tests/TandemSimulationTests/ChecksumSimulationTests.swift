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

    /// A second crash (either node, kill -9 or power loss) while a crash restart's compare
    /// runs: the next crash restart compares again what the interrupted compare's record
    /// names and the durable pages still mark (Simulation+CompareCrash), and every guarantee
    /// holds through it; so does a clean restart mid-compare, whose next start compares what
    /// the stop's bitmap still marks of the record. The seeds must strike mid-compare and resume compares, or the test
    /// proves nothing.
    @Test func aCrashDuringTheCompareResumesItAndEveryGuaranteeHolds() {
        var fired = 0
        var resumed = 0
        var resumedBytes: UInt64 = 0
        var resumedAfterStop = 0
        for seed in UInt64(1)...300 {
            var scenario = SimulationScenario(seed: seed)
            scenario.checksumCompare = true
            let simulation = Simulation(scenario: scenario)
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { return }
            fired += simulation.compareFaultsFired
            resumed += simulation.comparesResumed
            resumedBytes += simulation.compareBytesResumed
            resumedAfterStop += simulation.comparesResumedAfterStop
        }
        print("300 seeds: \(fired) crashes mid-compare, \(resumed) compares resumed (\(resumedBytes) bytes compared again), "
            + "\(resumedAfterStop) resumed after a stop")
        #expect(fired >= 5 && resumed >= 3, "\(fired) crashes mid-compare, \(resumed) compares resumed")
        // A clean restart (a stop, then a start) that strikes mid-compare resumes it too
        // (Simulation+CompareCrash, compareRegionsForStart): 5 in seeds 1–300 when written.
        #expect(resumedAfterStop >= 3, "\(resumedAfterStop) compares resumed after a stop")
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

    /// Seed 98 of the eviction-flush check's shape, across turns: an application write
    /// overlapped the last two regions the compare had locked and not asked; giving up the
    /// first ended the compare, and the second found it gone (a crash of the primary). Every
    /// region given up is marked dirty before the compare may end.
    @Test(arguments: [true, false])
    func seed98AWriteOverTheLastUnaskedRegionsEndsTheCompareOnce(faulty: Bool) {
        var scenario = SimulationTests.scenario(seed: 98, check: .evictsWithoutFlushing, faulty: faulty)
        scenario.activityLog?.batching = .acrossTurns
        scenario.checksumCompare = true
        let simulation = Simulation(scenario: scenario)
        let failure = simulation.run()
        if !faulty { #expect(failure == nil, "\(failure!)") }
        #expect(simulation.checksumResyncsEnded > 0, "seed 98 no longer compares: \(simulation.summary)")
    }
}
