// LatencyHistogram: a fixed-bucket latency histogram for the data path. Counted on the loop
// thread into storage allocated once, when its owner (a resource) is created: recording an
// operation is a clock read, a short scan and two additions — no lock, no allocation. The
// metrics endpoint copies the counts on the loop thread at scrape time (`snapshot`).
import Glibc

/// The monotonic clock the data path measures with (CLOCK_MONOTONIC, via the vDSO).
public enum MonotonicClock {
    @inline(__always)
    public static func nowNs() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

/// The wall clock (CLOCK_REALTIME), for the few times that must mean something to another
/// run of the daemon: never for measuring a duration within one run.
public enum WallClock {
    public static func nowUnixNs() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return UInt64(max(0, time.tv_sec)) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// The monotonic instant (`MonotonicClock`) that was `unixNs` on the wall clock: now minus
    /// the wall-clock age, which is 0 when the wall clock stands before `unixNs` (set back).
    public static func monotonicNs(ofUnixNs unixNs: UInt64) -> UInt64 {
        let wallNs = nowUnixNs()
        let ageNs = wallNs - min(unixNs, wallNs)
        let nowNs = MonotonicClock.nowNs()
        return max(1, nowNs - min(ageNs, nowNs))
    }
}

/// Loop thread only (plain counters).
public final class LatencyHistogram {
    /// Upper bounds of the buckets, in nanoseconds: 50 µs to 10 s, roughly 1-2.5-5 steps. The
    /// last bucket (+Inf) is implicit. Fixed, so dashboards can rely on them.
    public static let boundsNs: [UInt64] = [
        50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000,
        50_000_000, 100_000_000, 250_000_000, 500_000_000, 1_000_000_000, 2_500_000_000, 5_000_000_000,
        10_000_000_000,
    ]

    /// Per-bucket counts (not cumulative); the last is +Inf.
    private let buckets: UnsafeMutableBufferPointer<UInt64>
    public private(set) var count: UInt64 = 0
    public private(set) var sumNs: UInt64 = 0

    public init() {
        buckets = .allocate(capacity: Self.boundsNs.count + 1)
        buckets.initialize(repeating: 0)
    }

    deinit { buckets.deallocate() }

    /// Counts one operation that took `durationNs`.
    @inline(__always)
    public func record(durationNs: UInt64) {
        var index = 0
        let bounds = Self.boundsNs
        while index < bounds.count && durationNs > bounds[index] { index += 1 }
        buckets[index] &+= 1
        count &+= 1
        sumNs &+= durationNs
    }

    /// Counts one operation that started at `startNs` (MonotonicClock) and ends now.
    @inline(__always)
    public func record(since startNs: UInt64) {
        let now = MonotonicClock.nowNs()
        record(durationNs: now > startNs ? now - startNs : 0)
    }

    /// A copy of the counts (allocates; scrape time only).
    public var snapshot: LatencyHistogramSnapshot {
        LatencyHistogramSnapshot(bucketCounts: Array(buckets), count: count, sumNs: sumNs)
    }
}

/// What a scrape publishes: per-bucket (non-cumulative) counts matching `boundsNs` plus +Inf.
public struct LatencyHistogramSnapshot: Sendable, Equatable {
    public var bucketCounts: [UInt64]
    public var count: UInt64
    public var sumNs: UInt64

    public init(bucketCounts: [UInt64], count: UInt64, sumNs: UInt64) {
        self.bucketCounts = bucketCounts
        self.count = count
        self.sumNs = sumNs
    }

    public static var empty: LatencyHistogramSnapshot {
        LatencyHistogramSnapshot(
            bucketCounts: Array(repeating: 0, count: LatencyHistogram.boundsNs.count + 1), count: 0, sumNs: 0)
    }
}
