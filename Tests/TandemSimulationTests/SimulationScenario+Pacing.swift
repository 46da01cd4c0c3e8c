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
// - descending: holdable, on a link that slows in 4–5 steps of 1.4–1.5 × (4–7.6 × in all),
//   each a step pacing can follow, under long bursts above the first rate (the pacer measures
//   every rate while a burst fills the link). The target must hold. A pacer that keeps the
//   faster rate it measured lets a burst in at it, and the lag outgrows the target.
// - catchUp: a link that carries the writer's average before and after one stall long enough
//   (2–3.5 × the target plus the maximum delay) that the node must say the target cannot be
//   held and go Ahead; the catch-up that follows copies more than the target's worth of the
//   link with large copy buffers while the application writes on. It must end, once: no
//   second miss, no second Ahead (a copy's chunks are not application writes).

/// One phase of the link's rate primary → secondary: until `untilNs`, `bytesPerSecond` (0: a
/// stall, nothing moves).
struct LinkRatePhase {
    var untilNs: UInt64
    var bytesPerSecond: UInt64
}

struct PacingPlan: CustomStringConvertible {
    enum Kind: String, CaseIterable { case holdable, stressed, cannotHold, descending, catchUp }

    /// The classes where the link carries the writes' average all the time: the target holds.
    var holdsTarget: Bool { kind == .holdable || kind == .descending }

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
        var plan = switch kind {
        case .cannotHold: Self.cannotHoldPlan(&draws)
        case .descending: Self.descendingPlan(&draws)
        case .catchUp: Self.catchUpPlan(&draws)
        case .holdable, .stressed: Self.linkPlan(kind, &draws)
        }
        if kind == .descending || kind == .catchUp { shapeLongerRun(plan, &draws) }
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
        if kind != .stressed && kind != .cannotHold {
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
        return PacingPlan(kind: kind, settings: .init(targetNs: targetNs, delayMaxNs: delayMaxNs(slowest, &draws)), phases: phases,
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

    /// The descending class's link and writer (see the file's header).
    private static func descendingPlan(_ draws: inout SimRandom) -> PacingPlan {
        let targetNs = draws.between(300, 500) * 1_000_000
        let periodNs = draws.between(700, 1_000) * 1_000_000
        var rate = draws.between(6_000, 10_000) * 1_000
        let fastest = rate
        var phases: [LinkRatePhase] = []
        var atNs: UInt64 = 0
        for _ in 0..<draws.between(4, 5) {
            atNs += periodNs * draws.between(100, 150) / 100  // a burst or more in every phase
            phases.append(LinkRatePhase(untilNs: atNs, bytesPerSecond: rate))
            rate = rate * 100 / draws.between(140, 150)
        }
        phases.append(LinkRatePhase(untilNs: .max, bytesPerSecond: rate))
        let average = rate * 100 / draws.between(105, 130)
        let burst = fastest * draws.between(110, 140) / 100
        return PacingPlan(kind: .descending, settings: .init(targetNs: targetNs, delayMaxNs: delayMaxNs(rate, &draws)),
                          phases: phases, burstPeriodNs: periodNs, burstOnNs: periodNs * average / burst,
                          burstBytesPerSecond: burst)
    }

    /// The catchUp class's link and writer (see the file's header).
    private static func catchUpPlan(_ draws: inout SimRandom) -> PacingPlan {
        let targetNs = draws.between(200, 400) * 1_000_000
        let before = draws.between(1_500, 3_000) * 1_000
        let after = max(1_200_000, before * draws.between(50, 100) / 100)
        let delayMaxNs = delayMaxNs(min(before, after), &draws)
        let stallFromNs = draws.between(300, 600) * 1_000_000
        let stallUntilNs = stallFromNs + (targetNs + delayMaxNs) * draws.between(200, 350) / 100
        let phases = [LinkRatePhase(untilNs: stallFromNs, bytesPerSecond: before),
                      LinkRatePhase(untilNs: stallUntilNs, bytesPerSecond: 0),
                      LinkRatePhase(untilNs: .max, bytesPerSecond: after)]
        let periodNs = draws.between(100, 300) * 1_000_000
        let onNs = periodNs * draws.between(30, 60) / 100
        let average = min(before, after) * 100 / draws.between(110, 130)
        return PacingPlan(kind: .catchUp, settings: .init(targetNs: targetNs, delayMaxNs: delayMaxNs), phases: phases,
                          burstPeriodNs: periodNs, burstOnNs: onNs, burstBytesPerSecond: average * periodNs / onNs)
    }

    /// `rpo_pacing_max_ms` of 30–100 ms, and at least what lets writes of up to 8 blocks paced
    /// at it fit the slowest link (≤ 0.7 ×).
    private static func delayMaxNs(_ slowest: UInt64, _ draws: inout SimRandom) -> UInt64 {
        let delayMinMs = (8 * blockSizeBytes * 10_000 + slowest * 7 - 1) / (slowest * 7)
        return max(draws.between(30, 100), delayMinMs) * 1_000_000
    }

    /// The descending and catchUp classes run longer: every phase of the link and two more
    /// burst periods (descending); the stall, then 1.5 s for the catch-up and writes after it, on a
    /// volume of 256–512 blocks copied 8 blocks a chunk, 32–64 chunks at once (catchUp).
    private mutating func shapeLongerRun(_ plan: PacingPlan, _ draws: inout SimRandom) {
        let lastChangeNs = plan.phases[plan.phases.count - 2].untilNs
        workloadEndNs = lastChangeNs + (plan.kind == .descending ? 2 * plan.burstPeriodNs : 1_500_000_000)
        runEndNs = workloadEndNs + 1_500_000_000
        guard plan.kind == .catchUp else { return }
        blockCount = Int(draws.between(256, 512))
        copyChunkBlocks = 8
        copyBuffers = Int(draws.between(32, 64))
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
