// PacingScenario: one seed of the RPO-target pacing model (PacingSimulation): the target and
// maximum delay, the writer's bursts and the link's rate phases. Three classes, drawn per seed:
//
// - holdable: the link carries the writer's average in every phase (≥ 1.3 ×), and a rate
//   drops by at most 1.5 × at once. The target must hold: the RPO age never exceeds it and
//   no miss is reported.
// - steepDrop: one drop is 3–8 ×, and the bursts exceed the fastest link 1.5–4 × (the lag
//   pacing holds under the old rate takes longer than the target to drain at the new one, and
//   the average need not fit: no controller could hold it). The target may be missed, but
//   only as the controller documents: said, then Ahead.
// - cannotHold: the link is slower than the writes paced at the maximum delay. The primary
//   must say so (a miss, then Ahead) within the documented time.

import TandemCore

struct PacingScenario: CustomStringConvertible {
    enum Kind: String { case holdable, steepDrop, cannotHold }

    struct Phase { let untilMs: UInt64; let linkBytesPerMs: UInt64 }

    let seed: UInt64
    let kind: Kind
    let targetMs: UInt64
    let delayMaxMs: UInt64
    let writeBytes: UInt64
    /// Writes the application keeps queued at most (a real writer is slowed, not buffered).
    let queueDepth: UInt64
    /// The writer offers `burstBytesPerMs` for `burstOnMs` of every `burstPeriodMs`.
    let burstPeriodMs: UInt64
    let burstOnMs: UInt64
    let burstBytesPerMs: UInt64
    let phases: [Phase]
    let durationMs: UInt64
    let fault: RPOPacingTestingFault?

    var averageOfferedBytesPerMs: UInt64 { burstBytesPerMs * burstOnMs / burstPeriodMs }
    /// Bytes per ms the writes go at when every one waits the maximum delay.
    var maxPacedBytesPerMs: UInt64 { writeBytes / delayMaxMs }

    func linkBytesPerMs(atMs ms: UInt64) -> UInt64 {
        phases.first { ms < $0.untilMs }?.linkBytesPerMs ?? phases[phases.count - 1].linkBytesPerMs
    }

    func offeredBytesPerMs(atMs ms: UInt64) -> UInt64 { ms % burstPeriodMs < burstOnMs ? burstBytesPerMs : 0 }

    /// `queueUnbounded`: the holdable classes without their bound on the application's queue
    /// (the finding's reproduction).
    init(seed: UInt64, kind: Kind? = nil, fault: RPOPacingTestingFault? = nil, queueUnbounded: Bool = false) {
        var random = SimRandom(seed: seed ^ 0x9ACE_0000_0000_0000)
        self.seed = seed
        self.fault = fault
        let drawn = random.below(10)
        self.kind = kind ?? (drawn < 6 ? .holdable : drawn < 8 ? .steepDrop : .cannotHold)
        targetMs = random.between(200, 1_000)
        var delayMaxMs = random.between(10, 100)
        var writeBytes = random.between(1, 64) * 4_096
        var queueDepth = random.between(4, 64)
        durationMs = random.between(8_000, 20_000)
        var phases: [Phase] = []
        var atMs: UInt64 = 0
        switch self.kind {
        case .holdable, .steepDrop:
            // The burst: 1.5–4 × the link's slowest rate while on, on for a fifth to a half.
            burstPeriodMs = random.between(500, 4_000)
            burstOnMs = burstPeriodMs * random.between(20, 50) / 100
            var rate = random.between(2_000, 40_000)
            var slowest = rate, fastest = rate
            let steepAt = self.kind == .steepDrop ? Int(random.between(1, 3)) : -1
            for index in 0..<Int(random.between(2, 5)) {
                atMs += random.between(1_500, 6_000)
                phases.append(Phase(untilMs: atMs, linkBytesPerMs: rate))
                slowest = min(slowest, rate)
                fastest = max(fastest, rate)
                let steep = index + 1 == steepAt
                rate = random.chance(perMille: 500) || steep
                    ? rate * 100 / (steep ? random.between(300, 800) : random.between(100, 150))
                    : rate * random.between(100, 300) / 100
                rate = max(rate, 1_000)
            }
            phases.append(Phase(untilMs: .max, linkBytesPerMs: rate))
            slowest = min(slowest, rate)
            // The average fits every phase with room: at most slowest / 1.3.
            let average = slowest * 100 / random.between(130, 300)
            burstBytesPerMs = self.kind == .steepDrop
                // Bursts above the fastest link, so that pacing holds a lag when the rate drops.
                ? fastest * random.between(150, 400) / 100
                : max(1, average * burstPeriodMs / burstOnMs)
            if !queueUnbounded { writeBytes = min(writeBytes, max(4_096, slowest * targetMs / 8 / 4_096 * 4_096)) }
            // Writes paced at the maximum delay fit the slowest link (≤ 0.7 ×): otherwise a
            // burst outruns even the slowest pacing, which is the cannotHold class.
            delayMaxMs = max(delayMaxMs, (writeBytes * 10 + slowest * 7 - 1) / (slowest * 7))
            // The application's queue holds at most a quarter of the target's worth of the
            // slowest link: pacing stops below a quarter of the target and then admits the
            // whole queue at once (found by this model: PacingSimulationTests'
            // `aQueueReleasedAtOnceOvershootsTheTarget`).
            // A steep drop's queue is bounded by the fastest link only: the lag it lets in
            // before the drop is what the slower link cannot drain within the target.
            let queueRate = self.kind == .steepDrop ? fastest : slowest
            if !queueUnbounded { queueDepth = max(1, min(queueDepth, queueRate * targetMs / 4 / writeBytes)) }
        case .cannotHold:
            burstPeriodMs = 1_000
            burstOnMs = 1_000
            let paced = max(1, writeBytes / delayMaxMs)
            // The writer offers 2–4 × what writes paced at the maximum carry; the link half of it.
            burstBytesPerMs = paced * random.between(2, 4)
            phases.append(Phase(untilMs: random.between(1_000, 3_000), linkBytesPerMs: max(1, paced * random.between(20, 50) / 100)))
            phases.append(Phase(untilMs: .max, linkBytesPerMs: max(1, paced * random.between(10, 50) / 100)))
        }
        self.phases = phases
        self.delayMaxMs = delayMaxMs
        self.queueDepth = queueDepth
        self.writeBytes = writeBytes
    }

    var description: String {
        let rates = phases.map { "\($0.linkBytesPerMs / 1_000) MB/s" + ($0.untilMs == .max ? "" : " until \($0.untilMs) ms") }
        return "seed \(seed) \(kind.rawValue): target \(targetMs) ms, max delay \(delayMaxMs) ms, writes of \(writeBytes / 1_024) KiB "
            + "(queue depth \(queueDepth)), \(burstBytesPerMs / 1_000) MB/s for \(burstOnMs) of every \(burstPeriodMs) ms, "
            + "link \(rates.joined(separator: ", ")), \(durationMs) ms" + (fault.map { ", fault \($0)" } ?? "")
    }
}
