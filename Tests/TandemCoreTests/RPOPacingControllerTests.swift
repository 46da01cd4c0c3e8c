// RPOPacingController against a synthetic link: a FIFO of acknowledged writes drained at the
// link's rate, a writer that offers bursts, and admissions spaced by the controller's delay.
// Under a burst above the link rate whose average fits, the RPO stays under the target; when
// the link is slower than writes paced at the maximum delay, the controller says it cannot hold.
import TandemCore
import Testing

/// Milliseconds ticks: the writer offers `offeredBytesPerMs(ms)` (at most `queueDepth` writes
/// wait to be admitted: a real writer is slowed, not buffered without end); writes of `writeBytes` are
/// admitted when the pacing delay since the last admission has passed; the link confirms
/// `linkBytesPerMs(ms)` of the oldest lag each millisecond.
private struct SyntheticLink {
    var pacer: RPOPacingController
    var writeBytes: UInt64 = 65_536
    /// Admitted (acknowledged) writes not yet confirmed: (admitted at ms, bytes left).
    var lag: [(atMs: UInt64, bytes: UInt64)] = []
    var lagBytes: UInt64 = 0
    var confirmed: UInt64 = 0
    var offeredBacklog: UInt64 = 0
    var nextAdmitMs: UInt64 = 0
    var rpoSamplesMs: [UInt64] = []
    var admittedBytes: UInt64 = 0
    var cannotHoldAtMs: UInt64?
    var maxDelayMs: UInt64 = 0
    var debug = false
    var queueDepth: UInt64 = 32

    init(targetMs: UInt64, delayMaxMs: UInt64) {
        pacer = RPOPacingController(settings: .init(targetNs: targetMs * 1_000_000, delayMaxNs: delayMaxMs * 1_000_000))
    }

    mutating func run(ms: Int, offeredBytesPerMs: (UInt64) -> UInt64, linkBytesPerMs: (UInt64) -> UInt64) {
        for step in 0..<UInt64(ms) {
            let nowNs = step * 1_000_000
            // The link.
            var budget = linkBytesPerMs(step)
            while budget > 0, !lag.isEmpty {
                let take = min(budget, lag[0].bytes)
                lag[0].bytes -= take
                budget -= take
                lagBytes -= take
                confirmed += take
                if lag[0].bytes == 0 { lag.removeFirst() }
            }
            let ageNs = lag.first.map { (step - $0.atMs) * 1_000_000 } ?? 0
            if pacer.update(ageNs: ageNs, lagBytes: lagBytes, peerDurableBytes: confirmed, nowNs: nowNs), cannotHoldAtMs == nil {
                cannotHoldAtMs = step
            }
            rpoSamplesMs.append(ageNs / 1_000_000)
            if debug && step % 50 == 0 { print("t=\(step) age=\(ageNs/1_000_000) lag=\(lagBytes) drain=\(Int(pacer.drainBytesPerSecond)) admit=\(pacer.admitBytesPerSecond.map { Int($0) } ?? -1) proj=\(pacer.projectedNs/1_000_000) backlog=\(offeredBacklog)") }
            // The writer and admission.
            // A real writer has a bounded queue depth: what it cannot submit it does not offer.
            offeredBacklog = min(offeredBacklog + offeredBytesPerMs(step), queueDepth * writeBytes)
            while offeredBacklog >= writeBytes, step >= nextAdmitMs {
                offeredBacklog -= writeBytes
                lag.append((step, writeBytes))
                lagBytes += writeBytes
                admittedBytes += writeBytes
                let delayMs = pacer.delayNs(lengthBytes: writeBytes) / 1_000_000
                maxDelayMs = max(maxDelayMs, delayMs)
                nextAdmitMs = step + delayMs
                if delayMs > 0 { break }
            }
        }
    }

    var p99Ms: UInt64 {
        let sorted = rpoSamplesMs.sorted()
        return sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
    }
}

@Suite struct RPOPacingControllerTests {
    @Test func nothingIsPacedWhileTheLinkKeepsUp() {
        var link = SyntheticLink(targetMs: 500, delayMaxMs: 100)
        // 20 MB/s offered over a 40 MB/s link.
        link.run(ms: 5_000, offeredBytesPerMs: { _ in 20_000 }, linkBytesPerMs: { _ in 40_000 })
        #expect(link.maxDelayMs == 0 && link.cannotHoldAtMs == nil)
        #expect(link.rpoSamplesMs.max()! < 10)
    }

    @Test func aBurstAboveTheLinkIsPacedSoTheRPOStaysUnderTheTarget() {
        var link = SyntheticLink(targetMs: 500, delayMaxMs: 100)
        // A 10 MB/s link; 30 MB/s for 2 s out of every 6 (average 10 MB/s: it fits, barely).
        link.run(ms: 30_000, offeredBytesPerMs: { $0 % 6_000 < 2_000 ? 30_000 : 0 }, linkBytesPerMs: { _ in 10_000 })
        #expect(link.maxDelayMs > 0, "the burst is paced")
        #expect(link.rpoSamplesMs.max()! < 500, "max RPO \(link.rpoSamplesMs.max()!) ms, p99 \(link.p99Ms) ms")
        #expect(link.cannotHoldAtMs == nil)
        // Pacing slows the burst, it does not starve the writer: most of what was offered went.
        #expect(link.admittedBytes > 9 * 30_000 * 2_000 * 5 / 10 / 3)
    }

    @Test func withoutPacingTheSameBurstWouldMissTheTarget() {
        // The control: the same link and burst, admitted as offered, lag 40 MB at 10 MB/s.
        var lagBytes: UInt64 = 0
        var worstMs: UInt64 = 0
        for step in 0..<UInt64(6_000) {
            lagBytes += step < 2_000 ? 30_000 : 0
            lagBytes -= min(lagBytes, 10_000)
            worstMs = max(worstMs, lagBytes / 10_000)
        }
        #expect(worstMs > 500)
    }

    @Test func aLinkRateThatDropsIsFollowed() {
        var link = SyntheticLink(targetMs: 500, delayMaxMs: 200)
        // 8 MB/s offered; the link carries 20 MB/s, then 4 MB/s from 3 s on.
        link.run(ms: 15_000, offeredBytesPerMs: { _ in 8_000 }, linkBytesPerMs: { $0 < 3_000 ? 20_000 : 4_000 })
        #expect(link.cannotHoldAtMs == nil)
        #expect(link.rpoSamplesMs.max()! < 500, "max RPO \(link.rpoSamplesMs.max()!) ms")
        let lastSecond = link.rpoSamplesMs.suffix(1_000)
        #expect(lastSecond.max()! >= 100, "the lag settles between half the target and the target")
    }

    @Test func aLinkSlowerThanTheMaximumDelayCannotHoldAndSaysSo() {
        var link = SyntheticLink(targetMs: 200, delayMaxMs: 20)
        // Paced at 20 ms per 64 KiB, writes still go at 3.2 MB/s; the link carries 1 MB/s.
        link.run(ms: 10_000, offeredBytesPerMs: { _ in 8_000 }, linkBytesPerMs: { _ in 1_000 })
        #expect(link.cannotHoldAtMs != nil && link.pacer.cannotHold && link.pacer.misses == 1)
        #expect(link.maxDelayMs == 20, "pacing went to its maximum first")
    }

    @Test func resetForgetsTheMissAndTheRate() {
        var link = SyntheticLink(targetMs: 200, delayMaxMs: 20)
        link.run(ms: 5_000, offeredBytesPerMs: { _ in 8_000 }, linkBytesPerMs: { _ in 1_000 })
        #expect(link.pacer.cannotHold)
        link.pacer.reset()
        #expect(!link.pacer.cannotHold && link.pacer.admitBytesPerSecond == nil && link.pacer.delayNs(lengthBytes: 65_536) == 0)
    }
}
