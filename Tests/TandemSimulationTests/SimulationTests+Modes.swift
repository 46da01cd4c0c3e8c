import Glibc
import Testing
import TandemCore

// The seeded runs of one class in every seed (adaptive, periodic, staged catch-up) and the
// seeded faults of those classes.

extension SimulationTests {
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
}
