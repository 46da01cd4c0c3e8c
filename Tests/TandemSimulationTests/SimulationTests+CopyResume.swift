import Testing
import TandemCore

// A primary crash during a full copy resumes the copy (issue 13 §4; PrimaryNode+CopyCheckpoint):
// the copy's pages are written whole once, then the pages of the chunks the peer confirmed are
// written clear every `copyCheckpointBytes`, and a crash restart catches up the durable pages ∪
// the activity log's extents from the copy's session, which only the copy's own target accepts.
// The node simulator runs the production decisions (Simulation+Primary: `trackedAfterCrash`,
// the pages as `.persistBitmapPages` encodes them); these runs make the copy meet the crash.

extension SimulationScenario {
    /// The primaries' `copyCheckpointBytes` (PrimaryNodeConfig): 1–4 blocks, drawn from a stream
    /// of its own, so that the small simulated copies write their progress as they go (the
    /// daemon's default, a 64th of the volume and at least 16 MiB, would never write one here).
    var copyCheckpointBytes: UInt64 {
        var draws = SimRandom(seed: seed ^ 0xC0B7_C4EC_0000_0000)
        return draws.between(1, 4) * Self.blockSizeBytes
    }

    /// A log of 1- or 2-block extents with the fewest extents 8-block writes allow, plus 0–3.
    static func smallActivityLog(_ draws: inout SimRandom, fault: ActivityLogTestingFault? = nil) -> ActivityLogSettings {
        let writeBytesMax = 8 * blockSizeBytes
        let extentBytes = blockSizeBytes << draws.between(0, 1)
        return ActivityLogSettings(
            extents: ActivityLogSettings.extentsPerWrite(writeBytesMax: writeBytesMax, extentBytes: extentBytes)
                + Int(draws.between(0, 3)),
            extentBytes: extentBytes, writeBytesMax: writeBytesMax, lastTransaction: 0, testingFault: fault,
            batching: activityLogBatching)
    }

    /// A full copy (`initial_sync: full`) of 16–24 blocks with an activity log, and 2–5 times in the
    /// first half of the workload, when the copy runs, a secondary power loss (it loses the
    /// chunks it applied and had not made durable) followed within 100 µs by a primary kill -9
    /// (before the primary re-sends them): each restart resumes the copy from its pages.
    mutating func shapeForCopyResume(fault: ActivityLogTestingFault?) {
        var draws = SimRandom(seed: seed ^ 0xC0B7_5A9E_0000_0000)
        initialSync = .full
        blockCount = Int(draws.between(16, 24))
        activityLog = Self.smallActivityLog(&draws, fault: fault)
        faults = []
        for _ in 0..<draws.between(2, 5) {
            let atNs = draws.below(workloadEndNs / 2)
            faults.append((atNs, .crash(.secondary, powerLoss: true)))
            faults.append((atNs + draws.below(100_000), .crash(.primary, powerLoss: false)))
        }
    }
}

@Suite struct CopyResumeSimulationTests {
    static let seeds = UInt64(1)...200

    /// `fault`: ActivityLogTestingFault.copyCheckpointClearsUnconfirmedChunks has no checker
    /// yet: in seeds 1–200 of this shape no run exposed it (docs/replication.md, *A crash
    /// during a full copy resumes it*).
    static func scenario(seed: UInt64, fault: ActivityLogTestingFault? = nil) -> SimulationScenario {
        var scenario = SimulationScenario(seed: seed)
        scenario.shapeForCopyResume(fault: fault)
        return scenario
    }

    /// Every guarantee holds through crashes mid-copy, and the restarts resume copies from the
    /// pages: the code before wrote no page during a full copy, so none of these restarts
    /// counted pages (each copied the whole volume again).
    @Test func aPrimaryKilledDuringAFullCopyResumesItAndEveryGuaranteeHolds() {
        var fromPages = 0
        var fromLog = 0
        for seed in Self.seeds {
            let simulation = Simulation(scenario: Self.scenario(seed: seed))
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { return }
            fromPages += simulation.catchUpsFromBitmapPages
            fromLog += simulation.catchUpsFromActivityLog
        }
        print("copy resume, seeds \(Self.seeds): \(fromLog) crash restarts from the activity log, \(fromPages) counting bitmap pages")
        #expect(fromPages >= 20, "\(fromPages) crash restarts counted the copy's pages (of \(fromLog) from the log)")
    }
}
