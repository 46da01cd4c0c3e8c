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

    // MARK: Adaptive mode (Simulation+Adaptive)

    /// Adaptive mode in every async seed: the controller switches both ways, writes are
    /// acknowledged while admitted sync, and every guarantee holds — none of them is lost by
    /// a later switch to async and a crash or failover.
    @Test func guaranteesHoldInAdaptiveMode() {
        var switches = 0
        var syncAcks = 0
        var seeds = 0
        let only = getenv("TANDEM_SIM_SEED").flatMap { UInt64(String(cString: $0)) }
        for seed in only.map({ $0...$0 }) ?? UInt64(1)...Self.adaptiveSeeds {
            let scenario = SimulationScenario(seed: seed, adaptive: true)
            guard scenario.adaptive != nil else { continue }  // sync seeds
            let simulation = Simulation(scenario: scenario)
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { break }
            seeds += 1
            switches += simulation.modeSwitches
            syncAcks += simulation.syncAdmittedAcks
        }
        print("simulation: \(seeds) adaptive seeds: \(switches) mode switches, \(syncAcks) writes acknowledged while admitted sync")
        #expect(switches > 100 && syncAcks > 300, "adaptive mode too rarely exercised: \(switches) switches, \(syncAcks) sync acks")
    }

    static let adaptiveSeeds: UInt64 = 300

    // MARK: Periodic mode (Simulation+Periodic)

    /// Periodic mode in every async seed that is not adaptive: cycles start and complete, each
    /// completed cycle leaves the peer holding what was acknowledged before it started, writes
    /// between cycles ship only through the copy, and every async guarantee holds throughout.
    @Test func guaranteesHoldInPeriodicMode() {
        var counts = (seeds: 0, started: 0, completed: 0, checked: 0, streamed: 0, catchUps: 0, aheadOfCommit: 0)
        let only = getenv("TANDEM_SIM_SEED").flatMap { UInt64(String(cString: $0)) }
        for seed in only.map({ $0...$0 }) ?? UInt64(1)...Self.periodicSeeds {
            let scenario = SimulationScenario(seed: seed, periodic: true)
            guard scenario.periodNs != nil else { continue }  // sync or adaptive seeds
            let simulation = Simulation(scenario: scenario)
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { break }
            counts.seeds += 1
            counts.started += simulation.cyclesStarted
            counts.completed += simulation.cyclesCompleted
            counts.checked += simulation.cyclesChecked
            counts.streamed += simulation.cycleWritesStreamed
            counts.catchUps += simulation.catchUpsStarted
            counts.aheadOfCommit += simulation.cyclesAheadOfCommit
        }
        print("simulation: \(counts.seeds) periodic seeds: \(counts.started) cycles started, \(counts.completed) completed (\(counts.checked) checked as boundaries, \(counts.aheadOfCommit) of them before the staging peer's commit), \(counts.streamed) writes streamed during cycles, \(counts.catchUps) catch-ups")
        if only == nil {
            #expect(counts.checked > 200, "periodic mode too rarely exercised: \(counts)")
        }
    }

    static let periodicSeeds: UInt64 = 300

    /// A cycle that copies each dirty region as the previous cycle left it completes without
    /// the writes acknowledged since: the boundary check sees it, or — since a cycle waits for
    /// the peer's CaughtUp, so that the primary names the peer's point longer — the check of
    /// the primary's `peer_consistent_as_of` sees it first.
    @Test func checkerCatchesACycleThatCopiesStaleRegions() {
        let caught = firstFailure(with: .cycleCopiesStaleRegions, periodic: true) {
            $0.message.contains("was acknowledged before the cycle started")
                || $0.message.contains("is consistent as of") && $0.message.contains("where that point has")
        }
        #expect(caught != nil, "the checker never noticed a cycle copying stale regions in \(Self.faultSeeds) seeds")
        if let caught { print("stale cycle fault caught: \(caught.message)") }
    }

    /// A switch to async that releases the sync writes still waiting for the peer: they are
    /// acknowledged at their local completion, and a copy claimed Consistent lacks them.
    @Test func checkerCatchesASwitchToAsyncThatReleasesSyncWrites() {
        let caught = firstFailure(with: .switchToAsyncReleasesSyncWrites, adaptive: true) {
            $0.message.contains("acknowledged while admitted sync is missing")
        }
        #expect(caught != nil, "the checker never noticed sync writes released by a switch in \(Self.faultSeeds) seeds")
    }

    /// Simulation+PeerPoint: a primary whose `peer_consistent_as_of` names the epoch it sent
    /// rather than the one its peer confirmed durable claims writes the peer's disk lacks.
    @Test func checkerCatchesAPeerPointAheadOfWhatThePeerConfirmed() {
        let caught = firstFailure(with: .peerPointNamesSentEpoch) {
            $0.message.contains("is consistent as of session") && $0.message.contains("where that point has")
        }
        #expect(caught != nil, "the checker never noticed a peer_consistent_as_of ahead of the peer in \(Self.faultSeeds) seeds")
        if let caught { print("peer point fault caught: \(caught.message)") }
    }

    // MARK: Staged catch-up (Simulation+Staging)

    /// With the staging journal in every seed and a crash or forced failover timed to each
    /// phase of a staged catch-up in half of them, every guarantee and staging check holds,
    /// and the journal is committed, applied, replayed after crashes and dropped at promotions.
    @Test func guaranteesHoldThroughStagedCatchUps() {
        var counts = (staged: 0, commits: 0, applies: 0, replays: 0, discards: 0, faults: 0)
        let only = getenv("TANDEM_SIM_SEED").flatMap { UInt64(String(cString: $0)) }
        for seed in only.map({ $0...$0 }) ?? UInt64(1)...Self.stagingSeeds {
            let simulation = Simulation(scenario: SimulationScenario(seed: seed, staging: true))
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { break }
            counts.staged += simulation.stagedWrites
            counts.commits += simulation.commitsStored
            counts.applies += simulation.appliesCompleted
            counts.replays += simulation.stagingReplays
            counts.discards += simulation.stagingDiscards
            counts.faults += simulation.stagingFaultsFired
        }
        print("simulation: \(Self.stagingSeeds) staging seeds: \(counts.staged) staged writes, \(counts.commits) commits, \(counts.applies) applies, \(counts.replays) replays, \(counts.discards) journals dropped at a promotion, \(counts.faults) faults timed to a staging phase")
        #expect(counts.commits > 50 && counts.applies > 50 && counts.replays > 5 && counts.discards > 5 && counts.faults > 20,
                "staged catch-ups too rarely exercised: \(counts)")
    }

    static let stagingSeeds: UInt64 = 300

    /// A driver that writes staged writes through to the volume: the volume changes under an
    /// uncommitted catch-up (a promotion or crash now would expose a half-caught-up image).
    @Test func checkerCatchesStagedWritesThatReachTheVolume() {
        let caught = firstFailure(with: .stagedWritesReachTheVolume, staging: true) {
            $0.message.contains("changed while its catch-up is staged")
        }
        #expect(caught != nil, "the checker never noticed staged writes on the volume in \(Self.faultSeeds) seeds")
    }

    /// Decision (b): the primary called the peer UpToDate at SyncComplete; a promotion after
    /// the commit that drops the journal loses the catch-up.
    @Test func checkerCatchesAPromotionThatDropsACommittedJournal() {
        let caught = firstFailure(with: .promotionDropsCommittedJournal, staging: true,
                                  stagingFault: StagingFault(phase: .commit, action: .forcedFailover)) {
            $0.message.contains("promoted after its journal's commit")
        }
        #expect(caught != nil, "the checker never noticed a promotion that dropped a committed journal in \(Self.faultSeeds) seeds")
    }

    /// A commit whose record is stored before the journal is synced: a power loss then loses
    /// records the committed record names, and the replay finds them missing.
    @Test func checkerCatchesACommitThatSkipsTheJournalSync() {
        let caught = firstFailure(with: .commitSkipsJournalSync, staging: true,
                                  stagingFault: StagingFault(phase: .apply, action: .crash(powerLoss: true))) {
            $0.message.contains("journal bytes its staging journal does not hold")
        }
        #expect(caught != nil, "the checker never noticed a commit without the journal's sync in \(Self.faultSeeds) seeds")
    }

    static let faultSeeds: UInt64 = 400
    /// Seeds at least that a seeded fault runs with its fault class switched off.
    static let classOffSeeds: UInt64 = 100

    /// The first failure of a deliberately wrong system that `matches`, within 400 seeds,
    /// whose control run (the same scenario without the fault) passes: the fault, not the
    /// scenario, is what the checker caught.
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

/// A precondition failure inside the state machines kills the test process; this prints the
/// seeds that were running so the crash can be replayed.
enum CrashReporter {
    nonisolated(unsafe) static let slots: UnsafeMutablePointer<UInt64> = {
        let slots = UnsafeMutablePointer<UInt64>.allocate(capacity: SimulationSeeds.shardCount)
        slots.initialize(repeating: 0, count: SimulationSeeds.shardCount)
        return slots
    }()
    nonisolated(unsafe) static var installed = false

    static func running(_ seed: UInt64, shard: Int) { slots[shard] = seed }

    static func install() {
        _ = slots
        guard !installed else { return }
        installed = true
        for signalNumber in [SIGILL, SIGTRAP, SIGABRT, SIGSEGV] {
            signal(signalNumber) { signalNumber in
                CrashReporter.writeText("\nsimulation crashed; seeds running:")
                for shard in 0..<SimulationSeeds.shardCount where CrashReporter.slots[shard] != 0 {
                    CrashReporter.writeText(" ")
                    CrashReporter.writeNumber(CrashReporter.slots[shard])
                }
                CrashReporter.writeText("\nreplay: TANDEM_SIM_SEED=<seed> swift test --filter TandemSimulationTests\n")
                signal(signalNumber, SIG_DFL)
                raise(signalNumber)
            }
        }
    }

    static func writeText(_ text: StaticString) {
        _ = write(2, text.utf8Start, text.utf8CodeUnitCount)
    }

    static func writeNumber(_ value: UInt64) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var position = buffer.count
            var remaining = value
            repeat {
                position -= 1
                buffer[position] = UInt8(48 + remaining % 10)
                remaining /= 10
            } while remaining > 0
            _ = write(2, buffer.baseAddress! + position, buffer.count - position)
        }
    }
}

extension Simulation {
    /// One line about what a run exercised (TANDEM_SIM_VERBOSE=1).
    var summary: String {
        "seed \(scenario.seed): \(step) steps, \(requestsIssued) requests (\(requestsAnswered) answered), "
            + "\(sessionsStarted) primary sessions, \(restarts) restarts, \(failovers) failovers, \(copiesCompleted) copies (\(copiesInterrupted) interrupted), \(aheadEntered) times Ahead, \(catchUpsStarted) catch-ups (\(catchUpsFromSealedBitmap) restarts from a sealed bitmap, \(catchUpsFromActivityLog) crash restarts from the activity log, \(catchUpsFromBitmapPages) counting bitmap pages; \(checksumResyncsEnded) digest compares, \(checksumBytesChecked / SimulationScenario.blockSizeBytes) blocks compared, \(checksumBytesDiffering / SimulationScenario.blockSizeBytes) differing; \(compareFaultsFired) crashes mid-compare, \(comparesResumed) compares resumed, \(compareBytesResumed / SimulationScenario.blockSizeBytes) blocks compared again), \(verifiesStarted) verifies (\(verifyBytesChecked / SimulationScenario.blockSizeBytes) blocks compared), \(plannedFailoversStranded) stranded planned failovers, "
            + "\(impostors) impostors, \(partitionsHealed) partitions healed (\(splitBrainsFound) split brains), \(partitionsCut) asymmetric cuts (\(partitionTimeouts) ended by liveness, \(promotionRaces) promotion races), \(diskErrors) disk errors, \(diskStalls) disk stalls (\(diskTimeouts) timed out), \(nodes.map(\.disk.tornWriteCount).reduce(0, +)) torn writes, \(linkCount) connections, \(wireTampered) frames tampered (\(wireRefused) refused, \(wireNotRestored) never restored), \(wireCompressedFrames) LZ4 frames, \(stagedWrites) staged writes (\(commitsStored) commits, \(appliesCompleted) applies, \(stagingReplays) replays, \(stagingDiscards) dropped, \(stagingFaultsFired) staging faults), \(modeSwitches) mode switches (\(syncAdmittedAcks) sync-admitted acks), \(cyclesCompleted) periodic cycles (\(cyclesChecked) checked, \(cyclesAheadOfCommit) ahead of a staged commit, \(cycleWritesStreamed) writes streamed), \(peerPointsChecked) peer points checked (\(peerPointsAheadOfCommit) ahead of a staged commit, \(peerPointsOfIncompleteCopies) of an incomplete copy, \(peerPointsSuperseded) superseded, \(stagedPeerClaimsChecked) staged claims through them, \(stagedPeerClaimsUnchecked) without one), \(stepsInSync) steps in sync; \(scenario)"
    }
}
