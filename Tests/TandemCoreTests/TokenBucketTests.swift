import TandemCore
import Testing

@Suite struct TokenBucketTests {
    /// bytes ≤ rate × elapsedNs / 10^9 + burst, in exact integer arithmetic.
    private func withinBound(bytes: UInt64, rate: UInt64, elapsedNs: UInt64, burst: UInt64) -> Bool {
        let allowed = rate.multipliedFullWidth(by: elapsedNs)
        let sent = bytes.multipliedFullWidth(by: 1_000_000_000)
        let burstNano = burst.multipliedFullWidth(by: 1_000_000_000)
        let (low, carry) = allowed.low.addingReportingOverflow(burstNano.low)
        let limitHigh = allowed.high + burstNano.high + (carry ? 1 : 0)
        return sent.high < limitHigh || (sent.high == limitHigh && sent.low <= low)
    }

    @Test func bytesSentNeverExceedRateTimesTimePlusBurstAcrossLiveRateChanges() {
        var random = SplitMix64(seed: 606)
        for _ in 0..<50 {
            let burst = UInt64.random(in: 64 << 10...(2 << 20), using: &random)
            var rate = UInt64.random(in: 1 << 20...(1 << 30), using: &random)
            var now = UInt64.random(in: 0...(1 << 40), using: &random)
            var bucket = TokenBucket(rateBytesPerSecond: rate, burstBytes: burst, nowNs: now)
            var since = now  // the bound holds from init or the last change on
            var sentSince: UInt64 = 0
            var sentTotal: UInt64 = 0
            let start = now
            let firstRate = rate
            var changed = false
            for _ in 0..<5000 {
                // Mostly greedy, sometimes idle for up to 10 s (an idle bucket must not hoard).
                let idle = UInt64.random(in: 0..<50, using: &random) == 0
                now += UInt64.random(in: 0...(idle ? 10_000_000_000 : 2_000_000), using: &random)
                if UInt64.random(in: 0..<100, using: &random) == 0 {
                    rate = UInt64.random(in: 1 << 16...(1 << 31), using: &random)
                    bucket.setRate(rate, nowNs: now)
                    since = now
                    sentSince = 0
                    changed = true
                }
                let size = UInt64.random(in: 1...burst, using: &random)
                if bucket.tryConsume(size, nowNs: now) {
                    sentSince += size
                    sentTotal += size
                }
                #expect(withinBound(bytes: sentSince, rate: rate, elapsedNs: now - since, burst: burst))
                if !changed {
                    #expect(withinBound(bytes: sentTotal, rate: firstRate, elapsedNs: now - start, burst: burst))
                }
            }
        }
    }

    @Test func aGreedySenderGetsTheRate() {
        let rate: UInt64 = 100_000_000
        var bucket = TokenBucket(rateBytesPerSecond: rate, burstBytes: 1 << 20, nowNs: 0)
        var now: UInt64 = 0
        var sent: UInt64 = 0
        while now < 10_000_000_000 {
            if bucket.tryConsume(65_536, nowNs: now) { sent += 65_536 } else { now += bucket.delayNs(until: 65_536, nowNs: now) }
        }
        // 10 s at 100 MB/s plus the initial burst, less at most one request.
        #expect(sent >= 1_000_000_000 && sent <= 1_000_000_000 + (1 << 20))
    }

    @Test func theDelayIsExactlyWhenTheRequestFits() {
        var bucket = TokenBucket(rateBytesPerSecond: 1_000_000, burstBytes: 1_000_000, nowNs: 5)
        let full = bucket.tryConsume(1_000_000, nowNs: 5)
        #expect(full)
        let delay = bucket.delayNs(until: 1000, nowNs: 5)
        #expect(delay == 1_000_000)  // 1000 bytes at 1 MB/s
        let early = bucket.tryConsume(1000, nowNs: 5 + delay - 1)
        let onTime = bucket.tryConsume(1000, nowNs: 5 + delay)
        #expect(!early && onTime)
    }

    @Test func anIdleBucketHoldsNoMoreThanTheBurstWhateverTheGap() {
        var bucket = TokenBucket(rateBytesPerSecond: 1 << 30, burstBytes: 1 << 20, nowNs: 0)
        let afterGap = bucket.availableBytes(nowNs: .max)
        #expect(afterGap == 1 << 20)
        bucket.setRate(1, nowNs: .max)
        let afterChange = bucket.availableBytes(nowNs: .max)
        #expect(afterChange == 1 << 20)
    }

    @Test func aChangeOfBurstKeepsNoMoreTokensThanTheNewBurstAndFillsUpToALargerOne() {
        var bucket = TokenBucket(rateBytesPerSecond: 1 << 30, burstBytes: 64 << 20, nowNs: 0)
        bucket.setRate(8 << 20, burstBytes: 1 << 20, nowNs: 0)
        let afterShrink = bucket.availableBytes(nowNs: 0)
        #expect(afterShrink == 1 << 20, "a full 64 MiB bucket keeps 1 MiB")
        let taken = bucket.tryConsume(1 << 20, nowNs: 0)
        #expect(taken)
        bucket.setRate(1 << 30, burstBytes: 16 << 20, nowNs: 0)
        let empty = bucket.availableBytes(nowNs: 0)
        #expect(empty == 0, "a larger burst brings no tokens with it")
        let later = bucket.availableBytes(nowNs: 1_000_000_000)
        #expect(later == 16 << 20, "it fills up to the new burst")
    }
}

@Suite struct ResyncRateControllerTests {
    static let step: UInt64 = 10_000_000

    /// A link that completes at most `rate` bytes/s of what was issued, first in first out.
    private struct Link {
        var rateBytesPerSecond: UInt64
        var queued: UInt64 = 0
        mutating func run(ns: UInt64) -> UInt64 {
            let served = min(queued, rateBytesPerSecond * ns / 1_000_000_000)
            queued -= served
            return served
        }
    }

    /// Runs `steps` steps; returns bytes completed over the last `measured` steps and the
    /// largest in-flight amount seen.
    private func run(
        _ controller: inout ResyncRateController, _ link: inout Link, now: inout UInt64, steps: Int, measured: Int,
        applicationActive: Bool
    ) -> (completed: UInt64, inFlightMax: UInt64) {
        var completed: UInt64 = 0
        var inFlightMax: UInt64 = 0
        for index in 0..<steps {
            now += Self.step
            let done = link.run(ns: Self.step)
            if index >= steps - measured { completed += done }
            let budget = controller.step(
                nowNs: now, completedBytes: done, inFlightBytes: link.queued, applicationActive: applicationActive)
            link.queued += budget
            inFlightMax = max(inFlightMax, link.queued)
        }
        return (completed, inFlightMax)
    }

    @Test func unloadedItFillsTheLinkAndKeepsAboutTheFillTargetInFlight() {
        var controller = ResyncRateController(nowNs: 0)
        var link = Link(rateBytesPerSecond: 200 << 20)
        var now: UInt64 = 0
        _ = run(&controller, &link, now: &now, steps: 100, measured: 0, applicationActive: false)
        let result = run(&controller, &link, now: &now, steps: 400, measured: 400, applicationActive: false)
        #expect(result.completed >= (200 << 20) * 4 * 95 / 100)
        // Bounded: in flight stays near the 4 MiB target, never runs away.
        #expect(result.inFlightMax <= 2 * (4 << 20) + (200 << 20) / 100)
    }

    @Test func applicationIOBacksItOffToTheFloorAndIdleRestoresIt() {
        var controller = ResyncRateController(nowNs: 0)
        var link = Link(rateBytesPerSecond: 2 << 30)
        var now: UInt64 = 0
        _ = run(&controller, &link, now: &now, steps: 50, measured: 0, applicationActive: true)
        let busy = run(&controller, &link, now: &now, steps: 400, measured: 400, applicationActive: true)
        let floor: UInt64 = 32 << 20
        #expect(controller.ceilingBytesPerSecond == floor)
        #expect(busy.completed >= floor * 4 * 90 / 100 && busy.completed <= floor * 4 * 110 / 100)
        let idle = run(&controller, &link, now: &now, steps: 400, measured: 300, applicationActive: false)
        #expect(idle.completed >= (2 << 30) * 3 * 80 / 100)
    }

    @Test func aStepNeverAsksMoreThanTheMaximumRateOverItsElapsedTime() {
        var random = SplitMix64(seed: 31)
        let settings = ResyncRateController.Settings(rateMaxBytesPerSecond: 1 << 30)
        var controller = ResyncRateController(settings: settings, nowNs: 0)
        var now: UInt64 = 0
        for _ in 0..<20_000 {
            let elapsed = UInt64.random(in: 0...(Self.step * 30), using: &random)
            now += elapsed
            let budget = controller.step(
                nowNs: now, completedBytes: UInt64.random(in: 0...(1 << 32), using: &random),
                inFlightBytes: UInt64.random(in: 0...(1 << 32), using: &random),
                applicationActive: Bool.random(using: &random))
            let cappedNs = min(max(elapsed, 1), Self.step * 10)
            #expect(budget <= (1 << 30) * cappedNs / 1_000_000_000)
        }
    }

    @Test func aLiveChangeOfTheFloorTakesEffect() {
        var controller = ResyncRateController(nowNs: 0)
        var link = Link(rateBytesPerSecond: 2 << 30)
        var now: UInt64 = 0
        var settings = controller.settings
        settings.rateMinBytesPerSecond = 100 << 20
        controller.update(settings: settings)
        _ = run(&controller, &link, now: &now, steps: 50, measured: 0, applicationActive: true)
        let busy = run(&controller, &link, now: &now, steps: 200, measured: 200, applicationActive: true)
        #expect(busy.completed >= (100 << 20) * 2 * 90 / 100 && busy.completed <= (100 << 20) * 2 * 110 / 100)
    }
}
