// The activity log's transaction latency in `status` (issue 13's 64 GiB benchmark: how long a
// miss waits, read beside `activity_log_writes` and `activity_log_held_writes`). The buckets
// are LatencyHistogram's fixed bounds, so two scrapes subtract.
import TandemControl
import TandemIO

extension PrimaryReplicator {
    /// `count`, `sum_us` and per-bucket counts (not cumulative) keyed by the bucket's upper
    /// bound in µs, the last `+Inf`.
    static func activityLogLatencyFields(_ snapshot: LatencyHistogramSnapshot) -> JSONValue {
        var buckets: [String: JSONValue] = [:]
        for (index, count) in snapshot.bucketCounts.enumerated() where count > 0 {
            let key = index < LatencyHistogram.boundsNs.count ? "\(LatencyHistogram.boundsNs[index] / 1000)" : "+Inf"
            buckets[key] = .int(Int64(clamping: count))
        }
        return .object([
            "count": .int(Int64(clamping: snapshot.count)),
            "sum_us": .int(Int64(clamping: snapshot.sumNs / 1000)),
            "buckets_us": .object(buckets),
        ])
    }
}
