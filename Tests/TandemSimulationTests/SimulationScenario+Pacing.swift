import TandemCore

// The node simulator's RPO-target scenarios (Simulation+Pacing): `rpo_target_ms` on an async
// pair whose link carries a rate that changes during the run (steps down and up, a stall), and
// an application that writes in bursts, some above the link's rate. Drawn from a stream of
// their own (SeededFaultShape.pacing), as a shape over a default seed's scenario: the seed's
// other draws (disk latencies, buffer sizes, the activity log, compression) stay as drawn.
//
// The time scale is production's: the pacer's settings are the daemon's (its 100 ms drain
// windows, a look once a millisecond), so targets are hundreds of milliseconds and a run lasts
// seconds of simulated time; the link's rates are megabytes a second (a 4 KiB block is 4 KiB
// of link time, whatever the frame's simulated bytes: Simulation+Pacing).
//
// Three classes:
// - holdable: no fault but the link's; each rate step is at most 1.5 × down, a stall lasts at
//   most a fifth of the target, the writer's average is at most the slowest rate / 1.05 (bursts
//   are 2.5–6.7 × the average, mostly above the link) and its queue holds at most a quarter of the
//   target's worth of the slowest link (PacingScenario's rule). The target must hold: the
//   stream's RPO age stays at or under it and no miss is said.
// - stressed: a steep drop (3–8 ×), stalls up to 1.5 × the target, bursts above the fastest
//   link, and the seeded faults of a run (crashes, disconnects, clean restarts, planned
//   failovers, disk stalls): the target may be missed, but only as documented.
// - cannotHold: the link carries less than the writes paced at the maximum delay: the node
//   must say so and go Ahead, and the application is never stalled.

/// One phase of the link's rate primary → secondary: until `untilNs`, `bytesPerSecond` (0: a
/// stall, nothing moves).
struct LinkRatePhase {
    var untilNs: UInt64
    var bytesPerSecond: UInt64
}

struct PacingPlan: CustomStringConvertible {
    enum Kind: String, CaseIterable { case holdable, stressed, cannotHold }

    var kind: Kind
    /// `rpo_target_ms`, `rpo_pacing_max_ms` (as the daemon configures the node).
    var settings: RPOPacingController.Settings
    var phases: [LinkRatePhase]
    /// The writer issues at `burstBytesPerSecond` for `burstOnNs` of every `burstPeriodNs`.
    var burstPeriodNs: UInt64
    var burstOnNs: UInt64
    var burstBytesPerSecond: UInt64

    /// The bytes one issue attempt offers on average: 90 % of the requests write (1–3 blocks,
    /// a tenth of them 4–8), and 40 % of the acknowledgements issue a dependent write.
    static let offeredBytesPerIssue: UInt64 = 12_000
    /// What a link frame costs besides a Data frame's payload.
    static let frameOverheadBytes: UInt64 = 64

    func bytesPerSecond(atNs ns: UInt64) -> UInt64 {
        phases.first { ns < $0.untilNs }?.bytesPerSecond ?? phases[phases.count - 1].bytesPerSecond
    }

    var description: String {
        let rates = phases.map { ($0.bytesPerSecond == 0 ? "stall" : "\($0.bytesPerSecond / 1_000) kB/s")
            + ($0.untilNs == .max ? "" : " until \($0.untilNs / 1_000_000) ms") }
        return "rpo_target_ms \(settings.targetNs / 1_000_000) (\(kind.rawValue), rpo_pacing_max_ms "
            + "\(settings.delayMaxNs / 1_000_000)), link \(rates.joined(separator: ", ")), writes offered at "
            + "\(burstBytesPerSecond / 1_000) kB/s for \(burstOnNs / 1_000_000) of every \(burstPeriodNs / 1_000_000) ms"
    }
}

extension SimulationScenario {
    /// SeededFaultShape.pacing: the pacing scenario of class `kind` (see the file's header).
    mutating func shapePacing(_ kind: PacingPlan.Kind, _ draws: inout SimRandom) {
        mode = .async
        primaryConfig.mode = .async
        fencingDontCare = false
        adaptive = nil
        periodNs = nil
        reads = nil
        diskReplacedAfterNs = nil
        if kind != .stressed { diskStalls = nil }
        // (A full copy at the start would hold the writes that overlap it, and share the link.)
        initialSync = kind == .stressed ? initialSync : .none
        blockCount = Int(draws.between(16, 32))
        workloadEndNs = draws.between(1_000, 2_000) * 1_000_000
        runEndNs = workloadEndNs + 1_500_000_000
        operationCount = 1_000_000  // the workload ends by time (workloadEndNs)
        var plan = kind == .cannotHold ? Self.cannotHoldPlan(&draws) : Self.linkPlan(kind, &draws)
        if case let .pacing(fault) = testingFault { plan.settings.testingFault = fault }
        let targetNs = plan.settings.targetNs
        let slowest = plan.phases.map(\.bytesPerSecond).filter { $0 > 0 }.min()!
        let fastest = plan.phases.map(\.bytesPerSecond).max()!
        // The drawn activity log holds a few blocks' worth of extents: once each holds a write
        // the peer has not confirmed, later writes wait (production's rule), which bounds the
        // lag to those blocks whatever pacing does. Outside the stressed class it covers the
        // volume, so that pacing is what holds the lag.
        if kind != .stressed { activityLog?.extents = blockCount }
        // cannotHold: a queue deep enough that pacing, not the writer, sets the pace.
        if kind == .cannotHold { requestsOutstandingMax = 8 }
        if kind == .holdable {
            // The writer's queue: at most a quarter of the target's worth of the slowest link
            // (writes of up to 8 blocks).
            let bound = slowest * targetNs / 1_000_000_000 / 4 / (8 * Self.blockSizeBytes)
            requestsOutstandingMax = max(1, min(requestsOutstandingMax, Int(bound)))
        }
        // Room for several targets' worth of the fastest link, and for what the writer offers
        // in the 300 ms before pacing has measured the link (a fresh stream's pacer admits
        // unpaced until its first 100 ms window), so that pacing, not a full buffer, decides
        // when the node goes Ahead.
        let bufferBlocks = max(64, 3 * fastest * targetNs / 1_000_000_000 / Self.blockSizeBytes,
                               plan.burstBytesPerSecond * 3 / 10 / Self.blockSizeBytes)
        primaryConfig.bufferBytesMax = bufferBlocks * Self.blockSizeBytes
        primaryConfig.writesInFlightMax = Int(bufferBlocks)
        secondaryConfig.queuedBytesMax = bufferBlocks * Self.blockSizeBytes
        secondaryConfig.queuedWritesMax = Int(bufferBlocks)
        if testingFault == .rpoAgeFromNewestWrite { primaryConfig.testingFault = .rpoAgeFromNewestWrite }
        pacing = plan
        if kind == .stressed { drawPacingFaults(&draws) }
    }

    /// The holdable and stressed classes' link and writer.
    private static func linkPlan(_ kind: PacingPlan.Kind, _ draws: inout SimRandom) -> PacingPlan {
        let targetNs = draws.between(300, 600) * 1_000_000
        var phases: [LinkRatePhase] = []
        var rate = draws.between(2_000, 6_000) * 1_000
        var slowest = rate, fastest = rate
        var atNs: UInt64 = 0
        let steepAt = kind == .stressed ? Int(draws.between(1, 2)) : -1
        let stallAt = draws.chance(perMille: kind == .stressed ? 800 : 500) ? Int(draws.between(0, 3)) : -1
        for index in 0..<Int(draws.between(2, 4)) {
            atNs += draws.between(200, 600) * 1_000_000
            phases.append(LinkRatePhase(untilNs: atNs, bytesPerSecond: rate))
            if index == stallAt {
                let stallNs = kind == .stressed ? draws.between(targetNs / 10, targetNs * 3 / 2) : draws.between(10_000_000, targetNs / 5)
                atNs += stallNs
                phases.append(LinkRatePhase(untilNs: atNs, bytesPerSecond: 0))
            }
            let steep = index + 1 == steepAt
            rate = draws.chance(perMille: 500) || steep
                ? rate * 100 / (steep ? draws.between(300, 800) : draws.between(100, 150))
                : rate * draws.between(100, 300) / 100
            rate = min(max(rate, kind == .stressed ? 400_000 : 1_500_000), 12_000_000)
            slowest = min(slowest, rate)
            fastest = max(fastest, rate)
        }
        phases.append(LinkRatePhase(untilNs: .max, bytesPerSecond: rate))
        let periodNs = draws.between(100, 500) * 1_000_000
        let onNs = periodNs * draws.between(15, 40) / 100
        let average = slowest * 100 / draws.between(105, 150)
        let burst = kind == .stressed ? fastest * draws.between(150, 400) / 100 : average * periodNs / onNs
        // Paced at the maximum delay, writes of up to 8 blocks fit the slowest link (≤ 0.7 ×).
        let delayMinMs = (8 * blockSizeBytes * 10_000 + slowest * 7 - 1) / (slowest * 7)
        let delayMaxNs = max(draws.between(30, 100), delayMinMs) * 1_000_000
        return PacingPlan(kind: kind, settings: .init(targetNs: targetNs, delayMaxNs: delayMaxNs), phases: phases,
                          burstPeriodNs: periodNs, burstOnNs: onNs, burstBytesPerSecond: burst)
    }

    /// The cannotHold class: the link carries a quarter to a half of what writes paced at the
    /// maximum delay carry (one write, of a block at least, every `rpo_pacing_max_ms`), and the
    /// writer offers 2–4 × that, all the time, with 8 requests queued at most.
    private static func cannotHoldPlan(_ draws: inout SimRandom) -> PacingPlan {
        let delayMaxNs = draws.between(5, 12) * 1_000_000
        let pacedSmallest = blockSizeBytes * 1_000_000_000 / delayMaxNs
        let first = LinkRatePhase(untilNs: draws.between(300, 800) * 1_000_000,
                                  bytesPerSecond: max(150_000, pacedSmallest * draws.between(25, 50) / 100))
        let then = LinkRatePhase(untilNs: .max, bytesPerSecond: max(150_000, pacedSmallest * draws.between(25, 50) / 100))
        let paced = PacingPlan.offeredBytesPerIssue * 1_000_000_000 / delayMaxNs
        let periodNs: UInt64 = 100_000_000
        return PacingPlan(kind: .cannotHold, settings: .init(targetNs: draws.between(100, 300) * 1_000_000, delayMaxNs: delayMaxNs),
                          phases: [first, then], burstPeriodNs: periodNs, burstOnNs: periodNs,
                          burstBytesPerSecond: paced * draws.between(2, 4))
    }

    /// The stressed class's faults: 1–4 of a disconnect, a crash of either node (kill -9 or
    /// power loss), a clean restart of the primary, a planned failover.
    private mutating func drawPacingFaults(_ draws: inout SimRandom) {
        faults = []
        for _ in 0..<draws.between(1, 4) {
            let fault: Fault = switch draws.below(6) {
            case 0: .disconnect
            case 1: .crash(.secondary, powerLoss: draws.chance(perMille: 500))
            case 2: .crash(.primary, powerLoss: draws.chance(perMille: 500))
            case 3: .cleanRestart
            case 4: .plannedFailover
            default: .disconnect
            }
            faults.append((draws.below(workloadEndNs), fault))
        }
    }
}
