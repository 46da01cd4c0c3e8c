// EventLoop.runAt: timers finer than the 1 s tick (the resync pacer's). Each runs once, never
// before its deadline, in deadline order, also when more are pending than timeout slots.
import Logging
import Testing
@testable import TandemIO

struct EventLoopTimerTests {
    @Test func timersRunAtOrAfterTheirDeadlinesInOrderAndBeforeTheTick() throws {
        let loop = try EventLoop(ringEntries: 16, poolBytes: 1 << 16, logger: Logger(label: "test"))
        var ticked = false
        loop.onTick { ticked = true }
        let start = MonotonicClock.nowNs()
        // More timers than slots, out of order, one already due.
        let offsetsMs: [UInt64] = [40, 10, 30, 0, 20, 60, 50]
        var fired: [(index: Int, atNs: UInt64)] = []
        for (index, offset) in offsetsMs.enumerated() {
            loop.runAt(deadlineNs: start + offset * 1_000_000) { fired.append((index, MonotonicClock.nowNs())) }
        }
        // The loop's 1 s tick is armed too: a timer that waited for it would run after it.
        loop.runWhile(deadlineNs: start + 5_000_000_000) { fired.count < offsetsMs.count }
        #expect(fired.count == offsetsMs.count)
        for timer in fired {
            #expect(timer.atNs >= start + offsetsMs[timer.index] * 1_000_000, "timer \(timer.index) ran early")
        }
        #expect(fired.map { offsetsMs[$0.index] } == offsetsMs.sorted())
        #expect(!ticked, "the timers waited for the tick")
    }
}
