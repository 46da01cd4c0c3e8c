import Glibc
import Testing
import TandemCore

// Seeded simulation runs. TANDEM_SIM_SEEDS sets how many seeds (default 3 800, about 3.3
// million simulated steps, split over shards that run in parallel); TANDEM_SIM_SEED=<n> runs
// just that seed. The total of simulated steps is printed at the end.

enum SimulationSeeds {
    static let shardCount = 4

    static var single: UInt64? {
        guard let text = getenv("TANDEM_SIM_SEED") else { return nil }
        return UInt64(String(cString: text))
    }

    static var count: UInt64 {
        guard let text = getenv("TANDEM_SIM_SEEDS"), let count = UInt64(String(cString: text)) else {
            return 3_800
        }
        return count
    }

    static func seeds(shard: Int) -> [UInt64] {
        if let single { return shard == 0 ? [single] : [] }
        return (1...count).filter { Int($0 % UInt64(shardCount)) == shard }
    }
}

/// Steps simulated by the seeded runs of this process, over all shards (printed at the end).
enum StepTotals {
    nonisolated(unsafe) static var steps = 0
    nonisolated(unsafe) static var seeds = 0
    nonisolated(unsafe) static var shardsDone = 0
    static let lock = NSLockLike()

    static func add(steps: Int, seeds: Int) -> (steps: Int, seeds: Int, allDone: Bool) {
        lock.withLock {
            self.steps += steps
            self.seeds += seeds
            shardsDone += 1
            return (self.steps, self.seeds, shardsDone == SimulationSeeds.shardCount)
        }
    }
}

/// A pthread mutex (the simulation target depends on TandemCore alone).
final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

@Suite struct SimulationTests {
    @Test(arguments: 0..<SimulationSeeds.shardCount)
    func guaranteesHoldUnderSeededFaults(shard: Int) {
        CrashReporter.install()
        var steps = 0
        var seeds = 0
        for seed in SimulationSeeds.seeds(shard: shard) {
            CrashReporter.running(seed, shard: shard)
            let simulation = Simulation(scenario: SimulationScenario(seed: seed))
            let failure = simulation.run()
            steps += simulation.step
            seeds += 1
            if getenv("TANDEM_SIM_VERBOSE") != nil { print(simulation.summary) }
            #expect(failure == nil, "\(failure!)")
            if failure != nil { break }
        }
        CrashReporter.running(0, shard: shard)
        let total = StepTotals.add(steps: steps, seeds: seeds)
        print("simulation shard \(shard): \(seeds) seeds, \(steps) steps")
        if total.allDone {
            print("simulation: \(total.seeds) seeds, \(total.steps) simulated steps in total")
        }
    }

    @Test func checkerCatchesASecondaryThatAppliesEpochsOutOfOrder() {
        let caught = firstFailure(with: .secondary(.appliesEpochsOutOfOrder)) { $0.message.contains("not crash-consistent") }
        #expect(caught != nil, "the checker never noticed out-of-order application in \(Self.faultSeeds) seeds")
    }

    /// PrimaryStartFault.restartForgetsUnconfirmedWrites: a restarted primary that says "in
    /// sync" after an unclean stop.
    @Test func checkerCatchesAPrimaryRestartThatForgetsUnconfirmedWrites() {
        let caught = firstFailure(with: .restartForgetsUnconfirmedWrites) { _ in true }
        #expect(caught != nil, "the checker never noticed a restart that forgot unconfirmed writes in \(Self.faultSeeds) seeds")
    }

    /// SecondaryTestingFault.claimsUpToDateBeforeConfirmed.
    @Test func checkerCatchesAWrongUpToDateClaim() {
        let caught = firstFailure(with: .claimsUpToDateBeforeConfirmed) { $0.message.contains("says UpToDate") }
        #expect(caught != nil, "the checker never noticed a wrong UpToDate in \(Self.faultSeeds) seeds")
    }

    /// Torn writes: a disk that tears, at a power loss, writes it had reported durable (FUA,
    /// or covered by a flush). The checker must tell these tears from the ones it allows (of
    /// unacknowledged or unflushed writes); with torn writes switched off the same seeds show
    /// nothing, so the fault class is what finds it.
    @Test func checkerCatchesADiskThatTearsWritesItReportedDurable() {
        let caught = firstFailure(with: .diskTearsDurableWrites, tornWrites: true) { $0.message.contains("durably holds") }
        #expect(caught != nil, "the checker never noticed a torn durable write in \(Self.faultSeeds) seeds")
        guard let caught else { return }
        let untorn = firstFailure(with: .diskTearsDurableWrites, seeds: 1...max(caught.seed, Self.classOffSeeds),
                                  tornWrites: false) { _ in true }
        #expect(untorn == nil, "without torn writes the fault should be invisible: \(untorn!)")
    }

    /// Stuck I/O: a driver that stops waiting for a write after a timeout and reports it
    /// completed while the disk still has it. Without stalls no write takes that long, so the
    /// same seeds show nothing.
    @Test func checkerCatchesADriverThatCompletesStuckWritesAfterATimeout() {
        let caught = firstFailure(with: .completesStuckWritesAfterTimeout, stalls: true) { _ in true }
        #expect(caught != nil, "the checker never noticed writes completed at a timeout in \(Self.faultSeeds) seeds")
        guard let caught else { return }
        let unstalled = firstFailure(with: .completesStuckWritesAfterTimeout, seeds: 1...max(caught.seed, Self.classOffSeeds),
                                     stalls: false) { _ in true }
        #expect(unstalled == nil, "without stalls the fault should be invisible: \(unstalled!)")
    }

    /// Split brain (Simulation+Generations): an old primary that wrote behind a partition must
    /// be told split brain when it meets the promoted node; a promotion that keeps the
    /// generations hides it.
    @Test func checkerCatchesAPromotionThatHidesASplitBrain() {
        let caught = firstFailure(with: .promotionKeepsGeneration) { $0.message.contains("guarantee 4") }
        #expect(caught != nil, "the checker never noticed a hidden split brain in \(Self.faultSeeds) seeds")
    }

    /// Bytes on the wire (Simulation+Wire): a secondary that writes a Data frame's payload
    /// without checking its CRC32C lets a bit flipped on the wire reach its volume. Every
    /// run of the fault flips payload bits; the control runs (same seeds, the check in place)
    /// refuse every flip.
    @Test func checkerCatchesASecondaryThatSkipsThePayloadChecksum() {
        let caught = firstFailure(with: .payloadChecksumSkipped) { $0.message.contains("accepted a frame although a payload bit flips") }
        #expect(caught != nil, "the checker never noticed a payload written without its checksum in \(Self.faultSeeds) seeds")
        // Without the check at delivery, the corrupted payload is seen where it is written.
        var written: SimulationFailure?
        for seed in UInt64(1)...Self.faultSeeds where written == nil {
            let simulation = Simulation(scenario: SimulationScenario(seed: seed, testingFault: .payloadChecksumSkipped))
            simulation.checksRefusal = false
            written = simulation.run().flatMap { $0.message.contains("a corrupted write reached") ? $0 : nil }
        }
        #expect(written != nil, "no corrupted payload reached a volume in \(Self.faultSeeds) seeds")
        if getenv("TANDEM_SIM_VERBOSE") != nil, let written { print(written) }
    }

    /// Every wire fault class is injected and refused: with wire faults in every seed, each
    /// kind changes frames, and every changed frame is refused by its receiver (or, a Data
    /// frame the node ignored, never restored), with every guarantee holding.
    @Test func wireFaultsAreRefused() {
        var tampered = 0
        var delivered = 0
        var refused = 0
        var notRestored = 0
        var compressed = 0
        var kinds: Set<WireTamper> = []
        for seed in UInt64(1)...Self.wireSeeds {
            let simulation = Simulation(scenario: SimulationScenario(seed: seed, wireFaults: true))
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { break }
            tampered += simulation.wireTampered
            delivered += simulation.wireTamperedDelivered
            refused += simulation.wireRefused
            notRestored += simulation.wireNotRestored
            compressed += simulation.wireCompressedFrames
            kinds.formUnion(simulation.wireKindsRefused)
        }
        print("simulation: \(tampered) frames tampered in \(Self.wireSeeds) seeds, \(delivered) arrived: \(refused) refused, \(notRestored) never restored; \(compressed) LZ4 frames")
        #expect(delivered > 50, "too few tampered frames arrived: \(delivered)")
        #expect(refused + notRestored == delivered, "\(delivered) tampered frames arrived, \(refused) refused, \(notRestored) never restored")
        #expect(compressed > 0, "no Data frame was compressed")
        #expect(kinds == Set(WireTamper.allCases), "wire faults never refused: \(Set(WireTamper.allCases).subtracting(kinds))")
    }

    static let wireSeeds: UInt64 = 200

    /// Asymmetric partitions and promotion races (Simulation+Partition), in every seed: one
    /// side sees the cut, the other only at its liveness timeout; forced failovers while the
    /// link is half up, sometimes two in a row. Every guarantee holds after every step
    /// (guarantee 4 where two primaries meet), and the races do happen.
    @Test func guaranteesHoldThroughAsymmetricPartitionsAndPromotionRaces() {
        var cuts = 0
        var timeouts = 0
        var races = 0
        var splitBrains = 0
        let only = getenv("TANDEM_SIM_SEED").flatMap { UInt64(String(cString: $0)) }
        for seed in only.map({ $0...$0 }) ?? UInt64(1)...Self.partitionSeeds {
            let simulation = Simulation(scenario: SimulationScenario(seed: seed, partitions: true))
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { break }
            cuts += simulation.partitionsCut
            timeouts += simulation.partitionTimeouts
            races += simulation.promotionRaces
            splitBrains += simulation.splitBrainsFound
        }
        print("simulation: \(cuts) asymmetric cuts in \(Self.partitionSeeds) seeds, \(timeouts) ended by liveness, \(races) promotion races, \(splitBrains) split brains found")
        #expect(cuts > 100 && timeouts > 30 && races > 20, "too few partitions or races: \(cuts) cuts, \(timeouts) timeouts, \(races) races")
    }

    /// A side that never times out its silent peer after an asymmetric cut (its liveness not
    /// checked) keeps the pair apart: the checker sees it at the end of the run.
    @Test func checkerCatchesASideThatNeverNoticesAnAsymmetricCut() {
        let caught = firstFailure(with: .livenessNeverChecked) {
            $0.message.contains("settl") || $0.message.contains("did not reconnect")
        }
        #expect(caught != nil, "the checker never noticed a cut that was never timed out in \(Self.faultSeeds) seeds")
        if let caught { print("caught: \(caught.message)") }
    }

    static let partitionSeeds: UInt64 = 200

    static let faultSeeds: UInt64 = 400
    /// Seeds at least that a seeded fault runs with its fault class switched off.
    static let classOffSeeds: UInt64 = 100

    /// disk_timeout_ms: with stalls and a disk timeout in every seed, writes and flushes
    /// stalled past the bound fail their node's disk (DiskTimeout, as production decides it)
    /// and complete later; every guarantee holds through that, late completions included.
    @Test func guaranteesHoldWhenStalledDisksTimeOut() {
        var timeouts = 0
        let only = getenv("TANDEM_SIM_SEED").flatMap { UInt64(String(cString: $0)) }
        for seed in only.map({ $0...$0 }) ?? UInt64(1)...Self.timeoutSeeds {
            let simulation = Simulation(scenario: SimulationScenario(seed: seed, stalls: true, diskTimeout: true))
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { break }
            timeouts += simulation.diskTimeouts
        }
        print("simulation: \(timeouts) writes and flushes outlasted disk_timeout_ms in \(Self.timeoutSeeds) stalling seeds")
        #expect(timeouts > 0, "no write or flush outlasted the disk timeout in \(Self.timeoutSeeds) seeds")
    }

    static let timeoutSeeds: UInt64 = 300

    /// The first failure of a deliberately wrong system that `matches`, within 400 seeds,
    /// whose control run (the same scenario without the fault) passes: the fault, not the
    /// scenario, is what the checker caught.
    func firstFailure(with fault: SimulationFault, overlapping: Bool? = nil, seeds: ClosedRange<UInt64>? = nil,
                              tornWrites: Bool? = nil, stalls: Bool? = nil, staging: Bool? = nil,
                              stagingFault: StagingFault? = nil, adaptive: Bool? = nil, periodic: Bool? = nil,
                              matches: (SimulationFailure) -> Bool) -> SimulationFailure? {
        let restart = Self.restartsPrimary(fault)
        for seed in seeds ?? UInt64(1)...Self.faultSeeds {
            let scenario = SimulationScenario(seed: seed, testingFault: fault, overlapping: overlapping, primaryRestart: restart,
                                              tornWrites: tornWrites, stalls: stalls, staging: staging, stagingFault: stagingFault,
                                              adaptive: adaptive, periodic: periodic)
            guard let failure = Simulation(scenario: scenario).run(), matches(failure) else { continue }
            let control = SimulationScenario(seed: seed, testingFault: nil, overlapping: overlapping, primaryRestart: restart,
                                             tornWrites: tornWrites, stalls: stalls, staging: staging, stagingFault: stagingFault,
                                             adaptive: adaptive, periodic: periodic)
            if let controlFailure = Simulation(scenario: control).run() {
                Issue.record("seed \(seed) fails without the fault too: \(controlFailure)")
                return nil
            }
            if getenv("TANDEM_SIM_VERBOSE") != nil { print(failure) }
            return failure
        }
        return nil
    }

    @Test func aSeedReplaysExactly() {
        // The first 20 seeds as drawn, and 8 with periodic mode where it can run (async).
        let runs = (UInt64(1)...20).map { ($0, false) } + (UInt64(1)...8).map { ($0, true) }
        for (seed, periodic) in runs {
            let first = Simulation(scenario: SimulationScenario(seed: seed, periodic: periodic ? true : nil))
            let second = Simulation(scenario: SimulationScenario(seed: seed, periodic: periodic ? true : nil))
            let firstFailure = first.run()
            let secondFailure = second.run()
            #expect(firstFailure == nil)
            #expect(secondFailure == nil)
            #expect(first.step == second.step)
            #expect(first.nowNs == second.nowNs)
            #expect(first.nodes.map(\.disk.durable) == second.nodes.map(\.disk.durable))
            #expect(first.nodes.map(\.disk.cache) == second.nodes.map(\.disk.cache))
            #expect(first.nodes.map(\.record) == second.nodes.map(\.record))
        }
    }

    /// A failure names the seed and how to replay it: the command for a seeded run, the test
    /// for a seeded-fault run.
    @Test func aFailureGivesTheReplayCommand() {
        guard let failure = firstFailure(with: .secondary(.appliesEpochsOutOfOrder), matches: { _ in true }) else {
            Issue.record("no failure to look at")
            return
        }
        #expect(failure.description.contains("seed \(failure.seed)"))
        #expect(failure.description.contains("checkerCatches"))
        let replay = Simulation(scenario: SimulationScenario(seed: 4711)).replayCommand
        #expect(replay.hasPrefix("TANDEM_SIM_SEED=4711 "))
        #expect(replay.contains("swift test --filter TandemSimulationTests.SimulationTests/guaranteesHoldUnderSeededFaults"))
    }
}
