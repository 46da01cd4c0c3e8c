import Glibc
import Testing
import TandemCore

// The seeded-fault checkers of the activity log and of the secondary's apply-ahead rule, the
// shapes that make their scenarios meet their fault, and the survey that counts the seeds
// that catch it.
//
// Each of these faults is exposed only when its window meets a rare event: an extent evicted
// while the peer still lacks its write meets a primary kill -9; an eviction without the volume
// flush meets a primary power loss; overlapping writes re-sent after a reconnect meet a
// secondary that applies them in parallel. With the default draws that happened in one seed
// of 400 or so, and which seed moved with the activity log's batching rule (every draw after
// the first transaction that differs moves). Each check therefore shapes its scenario to its
// fault (SeededFaultShape) so that it catches in a good share of any small range of seeds
// under either rule; the faults are still the ones the production code is given through
// ActivityLogTestingFault / SecondaryTestingFault, and the control runs are the same shaped
// scenarios without them.
//
// A checker (SimulationTests.checkerCatches…) runs every seed of its range and fails when fewer
// than `catchesMin` catch its fault with a passing control run. TANDEM_SIM_SURVEY=<first>-<last>
// runs every seed of that range for each check (TANDEM_SIM_SURVEY_CHECKS=<name>,… selects
// some) under the rule selected, and prints every seed that catches the fault, every seed whose
// fault run fails otherwise, and every control run that fails.

/// What a check's scenario is made to hold so that its fault's window meets the event that
/// exposes it, drawn from a stream of its own (the same for the fault run and its control).
enum SeededFaultShape: Sendable {
    /// An activity log as small as the largest write allows (8 one-block extents or 4–5 of two
    /// blocks) over 24 blocks written by 120–160 requests, so that most misses evict; the pair
    /// starts in sync (`initial_sync: none`, so a crash restart catches up the log's extents,
    /// not the whole volume); and two primary crashes (`powerLoss`: power losses, else kill -9)
    /// in the later two thirds of the workload, when evicted extents are many.
    case logEvicts(primaryPowerLoss: Bool)
    /// `logEvicts` with power losses, 8 requests outstanding (a miss arrives while an evicting
    /// transaction flushes, and a second transaction goes in flight beside it) and eight
    /// primary power losses instead of two (the window, a flush's latency, is short).
    case logTransactionsOverlap
    /// Sync with `disk_drain: drain` and `fencing: suspend-io` (the writes a peer lost are
    /// re-sent, not tracked), 4–8 blocks (re-sent writes overlap), 8 requests outstanding and 8
    /// secondary writes in flight (re-sent writes are applied side by side and complete in any
    /// order), and 2–4 secondary crashes during the workload (each drops the writes not yet
    /// durable there, which the primary then re-sends).
    case resentWritesOverlap
    /// Sync under `fencing: suspend-io` with clean restarts, each behind a FLUSH
    /// (Simulation+StopFlush: `shapeForStopFlush`).
    case flushHeldAtStop
    /// A diskless primary (SimulationScenario.shapeDiskless): its disk fails early in a sync
    /// pair with many reads, the peer goes away once or twice, and the disk is replaced.
    case disklessPrimary
    /// RPO-target pacing on a link whose rate changes (SimulationScenario.shapePacing), of
    /// one class.
    case pacing(PacingPlan.Kind)
    /// `disklessPrimary` with clean restarts, each followed by the peer's power loss, and a
    /// peer that flushes late (SimulationTests+Diskless: `shapeDisklessStop`).
    case disklessStop
}

extension SimulationScenario {
    mutating func shape(_ shape: SeededFaultShape) {
        var draws = SimRandom(seed: seed ^ 0x5EED_FA17_5AA9_0000)
        faults = []
        switch shape {
        case let .logEvicts(primaryPowerLoss):
            initialSync = .none
            blockCount = 24
            operationCount = Int(draws.between(120, 160))
            workloadEndNs = UInt64(operationCount) * 60_000
            runEndNs = workloadEndNs + 150_000_000
            let writeBytesMax = 8 * Self.blockSizeBytes
            let extentBytes = Self.blockSizeBytes << draws.between(0, 1)
            activityLog = ActivityLogSettings(
                extents: ActivityLogSettings.extentsPerWrite(writeBytesMax: writeBytesMax, extentBytes: extentBytes),
                extentBytes: extentBytes, writeBytesMax: writeBytesMax, lastTransaction: 0,
                testingFault: activityLog?.testingFault, batching: Self.activityLogBatching)
            if primaryPowerLoss {
                for _ in 0..<2 {
                    let atNs = draws.between(workloadEndNs / 4, workloadEndNs)
                    faults.append((atNs, .crash(.primary, powerLoss: true)))
                }
            } else {
                mode = .sync
                primaryConfig.mode = .sync
                fencingDontCare = false
                adaptive = nil
                periodNs = nil
                for _ in 0..<3 {
                    let atNs = draws.between(workloadEndNs / 4, workloadEndNs)
                    faults.append((atNs, .crash(.secondary, powerLoss: true)))
                    faults.append((atNs + draws.below(100_000), .crash(.primary, powerLoss: false)))
                }
            }
        case .logTransactionsOverlap:
            self.shape(.logEvicts(primaryPowerLoss: true))
            requestsOutstandingMax = 8
            var more = SimRandom(seed: seed ^ 0x5EED_FA17_0F1A_0000)
            for _ in 0..<6 {
                faults.append((more.between(workloadEndNs / 4, workloadEndNs), .crash(.primary, powerLoss: true)))
            }
        case .resentWritesOverlap:
            mode = .sync
            primaryConfig.mode = .sync
            fencingDontCare = false
            adaptive = nil
            periodNs = nil
            diskDrain = .drain
            secondaryConfig.diskDrain = .drain
            secondaryConfig.writesInFlightMax = 8
            blockCount = Int(draws.between(4, 8))
            requestsOutstandingMax = 8
            for _ in 0..<draws.between(4, 6) {
                faults.append((draws.below(workloadEndNs), .crash(.secondary, powerLoss: true)))
            }
        case .flushHeldAtStop:
            shapeForStopFlush(&draws)
        case .disklessPrimary:
            shapeDiskless(&draws)
        case let .pacing(kind):
            shapePacing(kind, &draws)
        case .disklessStop:
            shapeDisklessStop(&draws)
        }
    }
}

/// One checker: its fault, how its scenario is drawn and shaped, what its failure says, and
/// where it looks.
struct SeededFaultCheck: Sendable, CustomStringConvertible {
    let name: String
    let fault: SimulationFault
    let overlapping: Bool?
    let shape: SeededFaultShape
    let matches: @Sendable (SimulationFailure) -> Bool
    /// The seeds it runs instead of `seeds` (nil: those), for shapes whose runs are long.
    var seedRange: ClosedRange<UInt64>? = nil

    var description: String { name }

    /// The seeds the checker runs, under either batching rule.
    static let seeds: ClosedRange<UInt64> = 1...100
    /// The seeds of `seeds` that must catch the fault (with a passing control run): a checker
    /// that catches in a single lucky seed is blind to the next change that moves it.
    static let catchesMin = 5

    /// The seeds under the rule this process runs (the same under both).
    var seedsNow: ClosedRange<UInt64> { seedRange ?? Self.seeds }

    static let syncWriteAppliedAhead = SeededFaultCheck(
        name: "checkerCatchesASyncWriteAppliedAheadOverAnOutstandingOne",
        fault: .secondary(.appliesAheadOverOutstandingWrites), overlapping: nil, shape: .resentWritesOverlap,
        matches: { $0.message.contains("acknowledged write") && $0.message.contains("is missing") || $0.message.contains("where that point has") })

    static let overlappingWritesOutOfOrder = SeededFaultCheck(
        name: "checkerCatchesASecondaryApplyingOverlappingWritesOutOfOrder",
        fault: .secondary(.appliesAheadOverOutstandingWrites), overlapping: true, shape: .resentWritesOverlap,
        matches: { $0.message.contains("is missing") || $0.message.contains("differ") || $0.message.contains("where that point has") })

    static let releasesAtLocalCompletion = SeededFaultCheck(
        name: "checkerCatchesAnActivityLogThatReleasesExtentsAtLocalCompletion",
        fault: .activityLogReleasesAtLocalCompletion, overlapping: nil, shape: .logEvicts(primaryPowerLoss: false),
        matches: { _ in true })

    static let evictsWithoutFlushing = SeededFaultCheck(
        name: "checkerCatchesAnActivityLogThatEvictsWithoutFlushingTheVolume",
        fault: .activityLogSkipsEvictionFlush, overlapping: nil, shape: .logEvicts(primaryPowerLoss: true),
        matches: { _ in true })

    static let countsFlushWhenAsked = SeededFaultCheck(
        name: "checkerCatchesAnActivityLogThatCountsAnEvictionFlushDoneWhenAsked",
        fault: .activityLogCountsFlushWhenAsked, overlapping: nil, shape: .logTransactionsOverlap,
        matches: { _ in true })

    static let formsFromDurableSetOnly = SeededFaultCheck(
        name: "checkerCatchesAnActivityLogThatFormsATransactionWithoutTheJoinersInFlight",
        fault: .activityLogFormsFromDurableSetOnly, overlapping: nil, shape: .logTransactionsOverlap,
        matches: { _ in true })

    static let all = [syncWriteAppliedAhead, overlappingWritesOutOfOrder, releasesAtLocalCompletion, evictsWithoutFlushing,
                      countsFlushWhenAsked, formsFromDurableSetOnly,
                      flushFromLocalFlushAtStop, disklessAnswersEarly, disklessReadsLackingDisk,
                      disklessStopSkipsDrain]
                      + pacingChecks

    /// What one seed shows: the fault caught (its control run passing), the fault run failing
    /// otherwise, the control run failing, or nothing.
    enum Outcome { case caught(SimulationFailure), failsOtherwise(SimulationFailure), controlFails(SimulationFailure), nothing }

    func run(seed: UInt64) -> Outcome {
        guard let failure = Simulation(scenario: SimulationTests.scenario(seed: seed, check: self, faulty: true)).run() else {
            return .nothing
        }
        guard matches(failure) else { return .failsOtherwise(failure) }
        if let control = Simulation(scenario: SimulationTests.scenario(seed: seed, check: self, faulty: false)).run() {
            return .controlFails(control)
        }
        return .caught(failure)
    }
}

enum SeededFaultSurvey {
    static let shardCount = 2

    static let range: ClosedRange<UInt64>? = {
        guard let text = getenv("TANDEM_SIM_SURVEY").map({ String(cString: $0) }) else { return nil }
        let bounds = text.split(separator: "-").compactMap { UInt64($0) }
        precondition(bounds.count == 2 && bounds[0] >= 1 && bounds[0] <= bounds[1],
                     "TANDEM_SIM_SURVEY=\(text): expected <first>-<last>, e.g. 1-2000")
        return bounds[0]...bounds[1]
    }()

    static let checks: [SeededFaultCheck] = {
        guard let text = getenv("TANDEM_SIM_SURVEY_CHECKS").map({ String(cString: $0) }) else {
            return SeededFaultCheck.all
        }
        let names = text.split(separator: ",").map(String.init)
        let unknown = names.filter { name in !SeededFaultCheck.all.contains { $0.name == name } }
        precondition(unknown.isEmpty, "TANDEM_SIM_SURVEY_CHECKS: unknown checks \(unknown)")
        return SeededFaultCheck.all.filter { names.contains($0.name) }
    }()
}

@Suite struct SeededFaultSurveyTests {
    /// Runs only with TANDEM_SIM_SURVEY set: a tool, not a guarantee (the checkers are).
    @Test(.enabled(if: SeededFaultSurvey.range != nil),
          arguments: SeededFaultSurvey.checks, 0..<SeededFaultSurvey.shardCount)
    func seedsThatCatchTheFault(check: SeededFaultCheck, shard: Int) {
        let rule = SimulationScenario.activityLogBatching.rawValue
        var caught: [UInt64] = []
        var otherFailures: [UInt64] = []
        var controlFailures: [UInt64] = []
        for seed in SeededFaultSurvey.range! where Int(seed % UInt64(SeededFaultSurvey.shardCount)) == shard {
            switch check.run(seed: seed) {
            case .nothing:
                continue
            case let .failsOtherwise(failure):
                otherFailures.append(seed)
                print("survey \(rule) \(check.name): seed \(seed) fails otherwise: \(failure.message)")
            case let .controlFails(control):
                controlFailures.append(seed)
                print("survey \(rule) \(check.name): seed \(seed) control fails: \(control.message)")
            case let .caught(failure):
                caught.append(seed)
                print("survey \(rule) \(check.name): seed \(seed) catches: \(failure.message)")
            }
        }
        let range = SeededFaultSurvey.range!
        print("survey \(rule) \(check.name) shard \(shard) seeds \(range.lowerBound)-\(range.upperBound): "
              + "caught in \(caught.count) \(caught), failing otherwise \(otherFailures), control failing \(controlFailures)")
        #expect(controlFailures.isEmpty, "seeds that fail without the fault: \(controlFailures)")
    }
}

extension SimulationTests {
    /// The faults whose runs (control runs too) always have a primary kill -9.
    static func restartsPrimary(_ fault: SimulationFault) -> Bool {
        fault == .restartForgetsUnconfirmedWrites || fault == .activityLogReleasesAtLocalCompletion
            || fault == .activityLogEvictsBeforePagesPersisted
    }

    /// A check's scenario for `seed`, shaped to its fault, with the fault or (`faulty` false)
    /// as its control run.
    static func scenario(seed: UInt64, check: SeededFaultCheck, faulty: Bool) -> SimulationScenario {
        var scenario = SimulationScenario(seed: seed, testingFault: faulty ? check.fault : nil, overlapping: check.overlapping,
                                          primaryRestart: restartsPrimary(check.fault))
        scenario.shape(check.shape)
        return scenario
    }

    /// The first failure of `check` in its seeds, after running them all: an issue is recorded
    /// for every control run that fails and when fewer than `catchesMin` seeds catch the fault.
    func firstFailure(_ check: SeededFaultCheck) -> SimulationFailure? {
        var caught: [SimulationFailure] = []
        for seed in check.seedsNow {
            switch check.run(seed: seed) {
            case .nothing, .failsOtherwise: continue
            case let .caught(failure): caught.append(failure)
            case let .controlFails(control): Issue.record("seed \(seed) fails without the fault too: \(control)")
            }
        }
        #expect(caught.count >= SeededFaultCheck.catchesMin,
                "\(check.name) caught its fault in \(caught.count) of seeds \(check.seedsNow) (seeds \(caught.map(\.seed))), fewer than \(SeededFaultCheck.catchesMin)")
        if getenv("TANDEM_SIM_VERBOSE") != nil, let first = caught.first { print(first) }
        return caught.first
    }
}
