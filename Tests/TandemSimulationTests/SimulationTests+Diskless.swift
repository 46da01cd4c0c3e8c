import Testing
import TandemCore

// The diskless primary in the node simulator (Simulation+Diskless, Simulation+Reads): the
// guarantees under its shaped scenario (SeededFaultShape.disklessPrimary), what the runs
// exercised, and the seeded faults its checkers catch.

extension SeededFaultCheck {
    static let disklessAnswersEarly = SeededFaultCheck(
        name: "checkerCatchesADisklessPrimaryAcknowledgingBeforeThePeerApplied",
        fault: .disklessAnswersBeforePeerApplied, overlapping: nil, shape: .disklessPrimary, matches: { _ in true })

    static let disklessReadsLackingDisk = SeededFaultCheck(
        name: "checkerCatchesADisklessPrimaryReadingTheDiskThatLacksTheWrites",
        fault: .disklessReadsLackingDisk, overlapping: nil, shape: .disklessPrimary,
        matches: { $0.message.contains("a read of blocks") })

    static let disklessStopSkipsDrain = SeededFaultCheck(
        name: "checkerCatchesADisklessStopThatDoesNotDrainItsPeer",
        fault: .disklessStopSkipsPeerDrain, overlapping: nil, shape: .disklessStop, matches: { _ in true })
}

extension SimulationScenario {
    /// SeededFaultShape.disklessStop: `shapeDiskless`, with a peer whose group commit waits
    /// 5–10 ms or 64 blocks (writes acknowledged through it stay in its cache until a flush),
    /// no FLUSH before a stop, and 3–5 clean restarts (SIGTERM) after the disk failed, each
    /// followed 0.2–3 ms later by the peer's power loss: a stop that did not drain the peer
    /// loses what it acknowledged through it, and the restarted primary takes the peer as in sync.
    mutating func shapeDisklessStop(_ draws: inout SimRandom) {
        shapeDiskless(&draws)
        if testingFault == .disklessStopSkipsPeerDrain { primaryConfig.testingFault = .disklessStopSkipsPeerDrain }
        secondaryConfig.groupCommitIntervalNs = draws.between(5_000_000, 10_000_000)
        secondaryConfig.groupCommitBytesMax = 64 * Self.blockSizeBytes
        stopFlushPerMille = 0
        let failsAtNs = faults.first?.atNs ?? workloadEndNs / 4
        for _ in 0..<draws.between(3, 5) {
            let atNs = draws.between(failsAtNs + 200_000, workloadEndNs)
            faults.append((atNs, .cleanRestart))
            faults.append((atNs + draws.between(200_000, 3_000_000), .crash(.secondary, powerLoss: true)))
        }
    }
}

@Suite struct DisklessSimulationTests {
    /// TANDEM_SIM_SEED=<n> (with TANDEM_SIM_TRACE=1) replays one shaped seed.
    static let seeds: ClosedRange<UInt64> = SimulationSeeds.single.map { $0...$0 } ?? 1...100

    static func shaped(_ seed: UInt64) -> SimulationScenario {
        var scenario = SimulationScenario(seed: seed)
        scenario.shape(.disklessPrimary)
        return scenario
    }

    /// A sync primary whose disk fails writes through its peer, serves every read with the
    /// newest acknowledged data, and is resynced from the peer once its disk is replaced; the
    /// pair then settles with both volumes equal.
    @Test func aDisklessPrimaryServesThroughItsPeerAndIsResyncedFromIt() {
        var entered = 0, replaced = 0, resynced = 0, peerReads = 0, checked = 0, settledInSync = 0
        for seed in Self.seeds {
            let simulation = Simulation(scenario: Self.shaped(seed))
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { return }
            entered += simulation.disklessEntered > 0 ? 1 : 0
            replaced += simulation.disksReplaced
            resynced += simulation.localResyncsDone
            peerReads += simulation.readsServedByPeer
            checked += simulation.readsChecked
            if simulation.localResyncsDone > 0 && simulation.stepsInSync > 0 { settledInSync += 1 }
        }
        print("diskless: \(Self.seeds.count) seeds, \(entered) wrote through their peer, \(replaced) disks replaced, "
              + "\(resynced) resyncs from the peer done (\(settledInSync) seeds in sync after one), \(peerReads) reads "
              + "served by the peer, \(checked) reads checked")
        guard SimulationSeeds.single == nil else { return }
        #expect(entered >= Self.seeds.count / 2, "only \(entered) of \(Self.seeds.count) seeds wrote through the peer")
        #expect(resynced >= Self.seeds.count / 4, "only \(resynced) resyncs from the peer completed")
        #expect(peerReads > 0 && checked > peerReads)
        #expect(settledInSync > 0)
    }

    @Test func aDisklessSeedReplaysExactly() {
        for seed in UInt64(1)...8 {
            let first = Simulation(scenario: Self.shaped(seed))
            let second = Simulation(scenario: Self.shaped(seed))
            #expect(first.run() == nil)
            #expect(second.run() == nil)
            #expect(first.step == second.step)
            #expect(first.nowNs == second.nowNs)
            #expect(first.readsChecked == second.readsChecked)
            #expect(first.nodes.map(\.disk.durable) == second.nodes.map(\.disk.durable))
            #expect(first.nodes.map(\.record) == second.nodes.map(\.record))
            #expect(first.nodes.map(\.localLacksWrites) == second.nodes.map(\.localLacksWrites))
        }
    }

    @Test func checkerCatchesADisklessPrimaryAcknowledgingBeforeThePeerApplied() {
        _ = SimulationTests().firstFailure(.disklessAnswersEarly)
    }

    @Test func checkerCatchesADisklessPrimaryReadingTheDiskThatLacksTheWrites() {
        _ = SimulationTests().firstFailure(.disklessReadsLackingDisk)
    }

    /// PrimaryStreamTestingFault.disklessStopSkipsPeerDrain: a diskless primary's SIGTERM hangs
    /// up at once, its writes through the peer still in the peer's cache only; the peer's power
    /// loss then takes acknowledged writes that the restarted primary's peer claims to hold.
    /// Caught in 19 of seeds 1–100 (9, 18, 19, 32, 35, …), every control passing (2026-12-07;
    /// its odd seeds had not ended before a failed pull was asked again at the next event).
    @Test func checkerCatchesADisklessStopThatDoesNotDrainItsPeer() {
        _ = SimulationTests().firstFailure(.disklessStopSkipsDrain)
    }
}
