// PacingSimulation: `rpo_target_ms` (issue 16 §2) under a link whose rate changes and bursts
// of writes, in 1 ms steps. The pacer is production's `RPOPacingController`, fed as
// `PrimaryNode+Adaptive` feeds it (the stream's RPO age, lag bytes and the peer's durable
// bytes, once a millisecond; each admission waits the pacer's delay after the previous one;
// a miss makes the node go Ahead, which resets the pacer). That glue is re-implemented here,
// as the node simulator re-implements the drivers: the node simulator's link has no
// bandwidth, so pacing has nothing to act on there.
//
// The link confirms the oldest lag first at its phase's rate. Ahead, writes are not paced and
// go to the bitmap (dirty bytes, not lag); the catch-up drains the stream's lag, then the
// dirty bytes, and the node streams again (a fresh pacer) once both are gone.
//
// Checked after every step (PacingScenario names the classes):
// - every delay is at most `rpo_pacing_max_ms`;
// - a miss is reported only once the RPO age has stayed above the target for
//   `rpo_pacing_max_ms` (the documented maximum delay before Ahead), and at the latest 2 ms
//   after that (the pacer looks once a millisecond): the age never stays above the target
//   longer unsaid;
// - holdable: the RPO age never exceeds the target and nothing is missed;
// - cannotHold: by the end a miss was reported and the node went Ahead.

import TandemCore

struct PacingFailure: CustomStringConvertible {
    let seed: UInt64
    let ms: UInt64
    let message: String
    let scenario: String
    var description: String { "pacing seed \(seed) at \(ms) ms: \(message)\n  \(scenario)\n  replay: TANDEM_SIM_PACING_SEED=\(seed)" }
}

final class PacingSimulation {
    let scenario: PacingScenario
    private(set) var pacer: RPOPacingController
    /// The stream's acknowledged writes not yet confirmed: (admitted at ns, bytes left).
    private var lag: [(atNs: UInt64, bytes: UInt64)] = []
    private var lagHead = 0
    private var lagBytes: UInt64 = 0
    private var confirmedBytes: UInt64 = 0
    /// Ahead: written while Ahead, or held when it began (the bitmap's share).
    private var dirtyBytes: UInt64 = 0
    private(set) var isAhead = false
    private var backlogBytes: UInt64 = 0
    private var pacedUntilNs: UInt64 = 0
    /// The checker's own view: since when the RPO age has been above the target.
    private var overTargetSinceNs: UInt64?

    // Results, for the tests and the replay check.
    private(set) var ms: UInt64 = 0
    private(set) var admittedBytes: UInt64 = 0
    private(set) var misses = 0
    private(set) var aheadEntries = 0
    private(set) var maxDelayNs: UInt64 = 0
    private(set) var maxAgeNs: UInt64 = 0
    private(set) var pacedAdmissions = 0
    private(set) var failure: PacingFailure?
    /// Print the pacer's view every 10 ms (a replay with TANDEM_SIM_TRACE set).
    var trace = false

    init(scenario: PacingScenario) {
        self.scenario = scenario
        pacer = Self.freshPacer(scenario)
    }

    private static func freshPacer(_ scenario: PacingScenario) -> RPOPacingController {
        var settings = RPOPacingController.Settings(targetNs: scenario.targetMs * 1_000_000, delayMaxNs: scenario.delayMaxMs * 1_000_000)
        settings.testingFault = scenario.fault
        return RPOPacingController(settings: settings)
    }

    /// Runs the seed; nil when every check held.
    func run() -> PacingFailure? {
        while ms < scenario.durationMs, failure == nil {
            step()
            ms += 1
        }
        if failure == nil, scenario.kind == .cannotHold, misses == 0 || aheadEntries == 0 {
            fail("the link carries less than writes paced at the maximum delay, but the primary never said the target cannot be held")
        }
        return failure
    }

    var digest: [UInt64] {
        [ms, admittedBytes, confirmedBytes, UInt64(misses), UInt64(aheadEntries), maxDelayNs, maxAgeNs, UInt64(pacedAdmissions), lagBytes, dirtyBytes]
    }

    private var ageNs: UInt64 { lagHead < lag.count ? ms * 1_000_000 - lag[lagHead].atNs : 0 }

    private func step() {
        let nowNs = ms * 1_000_000
        drainLink()
        let age = ageNs
        maxAgeNs = max(maxAgeNs, isAhead ? 0 : age)
        if !isAhead {
            if pacer.update(ageNs: age, lagBytes: lagBytes, peerDurableBytes: confirmedBytes, nowNs: nowNs) {
                checkMissJustified(nowNs: nowNs)
                goAhead()
            }
        }
        checkAfterStep(nowNs: nowNs, age: age)
        if trace, ms % 10 == 0 || failure != nil {
            print("t=\(ms) age=\(age / 1_000_000) lag=\(lagBytes) drain=\(Int(pacer.drainBytesPerSecond)) admit=\(pacer.admitBytesPerSecond.map { Int($0) } ?? -1) proj=\(pacer.projectedNs / 1_000_000) backlog=\(backlogBytes) delay=\(pacer.delayNs(lengthBytes: scenario.writeBytes) / 1_000)")
        }
        backlogBytes = min(backlogBytes + scenario.offeredBytesPerMs(atMs: ms), scenario.queueDepth * scenario.writeBytes)
        admit(stepStartNs: nowNs)
    }

    private func drainLink() {
        var budget = scenario.linkBytesPerMs(atMs: ms)
        while budget > 0, lagHead < lag.count {
            let take = min(budget, lag[lagHead].bytes)
            lag[lagHead].bytes -= take
            budget -= take
            lagBytes -= take
            confirmedBytes += take
            if lag[lagHead].bytes == 0 { lagHead += 1 }
        }
        if lagHead > 4_096 {
            lag.removeFirst(lagHead)
            lagHead = 0
        }
        guard isAhead else { return }
        dirtyBytes -= min(dirtyBytes, budget)
        if dirtyBytes == 0, lagBytes == 0 {
            isAhead = false  // the catch-up is done: a new stream, paced afresh
            pacer = Self.freshPacer(scenario)
            pacedUntilNs = 0
        }
    }

    /// The writes waiting admission go in as pacing lets them, at their time within this step.
    private func admit(stepStartNs: UInt64) {
        let stepEndNs = stepStartNs + 1_000_000
        while backlogBytes >= scenario.writeBytes {
            let atNs = isAhead ? stepStartNs : max(stepStartNs, pacedUntilNs)
            guard atNs < stepEndNs else { return }
            backlogBytes -= scenario.writeBytes
            admittedBytes += scenario.writeBytes
            if isAhead {
                dirtyBytes += scenario.writeBytes
                continue
            }
            lag.append((atNs, scenario.writeBytes))
            lagBytes += scenario.writeBytes
            let delay = pacer.admit(lengthBytes: scenario.writeBytes)
            maxDelayNs = max(maxDelayNs, delay)
            if delay > scenario.delayMaxMs * 1_000_000 {
                fail("pacing delayed an admission \(delay / 1_000) µs, above rpo_pacing_max_ms \(scenario.delayMaxMs)")
                return
            }
            if delay > 0 { pacedAdmissions += 1 }
            pacedUntilNs = atNs + delay
        }
    }

    private func goAhead() {
        misses += 1
        aheadEntries += 1
        isAhead = true
        dirtyBytes += lagBytes  // the held writes' regions go to the bitmap
        pacer.reset()
        pacedUntilNs = 0
    }

    private func checkMissJustified(nowNs: UInt64) {
        let delayMaxNs = scenario.delayMaxMs * 1_000_000
        guard let since = overTargetSinceNs, nowNs - since >= delayMaxNs else {
            let over = overTargetSinceNs.map { "above the target for \((nowNs - $0) / 1_000_000) ms" } ?? "not above the target"
            fail("the primary said the target cannot be held (and went Ahead) with the RPO age \(over), "
                + "before rpo_pacing_max_ms \(scenario.delayMaxMs) at its maximum")
            return
        }
    }

    private func checkAfterStep(nowNs: UInt64, age: UInt64) {
        guard failure == nil else { return }
        let targetNs = scenario.targetMs * 1_000_000
        if isAhead || age <= targetNs {
            overTargetSinceNs = nil
        } else if overTargetSinceNs == nil {
            overTargetSinceNs = nowNs
        }
        if let since = overTargetSinceNs, nowNs - since > scenario.delayMaxMs * 1_000_000 + 2_000_000 {
            fail("the RPO age (\(age / 1_000_000) ms) has been above the target \(scenario.targetMs) ms for "
                + "\((nowNs - since) / 1_000_000) ms and the primary has not said the target cannot be held")
        } else if scenario.kind == .holdable, age > targetNs {
            fail("the link carries the writes' average, but the RPO age reached \(age / 1_000_000) ms, above the target "
                + "\(scenario.targetMs) ms (lag \(lagBytes) bytes, drain measured \(UInt64(pacer.drainBytesPerSecond)) B/s, "
                + "link \(scenario.linkBytesPerMs(atMs: ms) * 1_000) B/s)")
        } else if scenario.kind == .holdable, misses > 0 {
            fail("the link carries the writes' average, but the primary said the target cannot be held")
        }
    }

    private func fail(_ message: String) {
        guard failure == nil else { return }
        failure = PacingFailure(seed: scenario.seed, ms: ms, message: message, scenario: scenario.description)
    }
}
