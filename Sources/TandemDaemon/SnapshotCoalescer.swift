// SnapshotCoalescer: how `status`, the `events` dump and a metrics scrape read the loop's
// state without each of them entering the loop. Every reader on a control or metrics thread
// asks for a snapshot taken after it asked; all readers waiting at once share one snapshot,
// taken in one loop turn, and the loop takes at most one per `intervalNs` (longer when a
// snapshot is costly: the loop spends at most 1/`costShareMax` of its time on them). So a
// storm of pollers costs the data path one short turn per interval however many they are,
// and no reader is ever answered with state older than its own request (docs/control-protocol.md,
// "Staleness"). Waiting readers hold no lock and spin no CPU: they sleep on a condition.
import Foundation
import TandemIO

final class SnapshotCoalescer<Value: Sendable>: @unchecked Sendable {
    /// A snapshot and when the loop took it (MonotonicClock ns).
    struct Taken: Sendable {
        var value: Value
        var takenAtNs: UInt64
    }

    /// Shortest time between two snapshots.
    let intervalNs: UInt64
    /// A snapshot that took d ns is followed by the next no sooner than `costShareMax` × d.
    static var costShareMax: UInt64 { 20 }

    private let loop: EventLoop
    private let take: @Sendable () -> Value
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var latest: Taken?
    /// Snapshots started and finished; a reader needs `finished` to reach the number of the
    /// first snapshot that starts after it asked.
    private var started: UInt64 = 0
    private var finished: UInt64 = 0
    /// A snapshot is asked of the loop and has not started yet.
    private var scheduled = false
    /// When the next snapshot may start (MonotonicClock ns).
    private var notBeforeNs: UInt64 = 0

    /// `take` runs on the loop thread.
    init(loop: EventLoop, intervalNs: UInt64, take: @escaping @Sendable () -> Value) {
        precondition(intervalNs > 0)
        self.loop = loop
        self.intervalNs = intervalNs
        self.take = take
    }

    /// A snapshot the loop started taking after this call began; waits for it. Not from the
    /// loop thread.
    func read() -> Taken {
        condition.lock()
        defer { condition.unlock() }
        // The next snapshot to start is number started + 1, whether or not it is asked for yet.
        let wanted = started + 1
        if !scheduled {
            scheduled = true
            let delayNs = notBeforeNs.subtractingReportingOverflow(MonotonicClock.nowNs())
            let wait = delayNs.overflow ? 0 : delayNs.partialValue
            condition.unlock()
            // This reader waits anyway; it sleeps out the interval instead of the loop keeping
            // a timer for it.
            if wait > 0 { usleep(UInt32(min(wait / 1000, UInt64(UInt32.max)))) }
            loop.execute { [self] in runOnLoop() }
            condition.lock()
        }
        while finished < wanted { condition.wait() }
        return latest!
    }

    private func runOnLoop() {
        condition.lock()
        started += 1
        let number = started
        scheduled = false
        let startNs = MonotonicClock.nowNs()
        // A reader that asks while this one is taken waits for the next, at least an interval on.
        notBeforeNs = startNs + intervalNs
        condition.unlock()
        let value = take()
        let endNs = MonotonicClock.nowNs()
        condition.lock()
        latest = Taken(value: value, takenAtNs: startNs)
        finished = number
        notBeforeNs = startNs + max(intervalNs, (endNs - startNs) * Self.costShareMax)
        condition.broadcast()
        condition.unlock()
    }
}
