// The activity log's counters in a real primary's `status` (docs/control-protocol.md:
// `activity_log_writes`, `activity_log_held_writes`, `activity_log_write_latency`,
// `activity_log_hold_latency`, `activity_log_overlapping_writes`,
// `activity_log_blocked_admissions`): what docs/benchmarks.md reads to say how many writes one
// transaction releases, how long a transaction takes and how long a held write waits. Writes at QD1, each to an extent of its own, miss one by one: each is
// held for a transaction of its own; a write to an extent already logged is held by none.
import Foundation
import Testing

extension Replication {
@Suite struct ActivityLogStatusTests {
    static let extentBytes = 4 << 20

    @Test func aSyncPrimaryCountsItsHeldWritesAndTimesEveryTransaction() throws {
        let pair = try ReplicatedPair(sizeBytes: 64 << 20)
        try pair.createAndEnable(mode: "sync", initialSync: "none")
        try pair.waitInSync()
        let before = try pair.status(pair.alpha)
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: ReplicatedPair.resource)
        for extent in [3, 5, 7] {  // three misses, acknowledged one at a time
            try client.write(offset: UInt64(extent * Self.extentBytes), data: AcknowledgedWriter.pattern(extent))
        }
        try client.write(offset: UInt64(5 * Self.extentBytes + 4096), data: AcknowledgedWriter.pattern(1))  // a hit
        client.disconnect()
        let after = try pair.status(pair.alpha)
        let held = (after["activity_log_held_writes"] as? Int ?? -1) - (before["activity_log_held_writes"] as? Int ?? 0)
        let transactions = (after["activity_log_writes"] as? Int ?? -1) - (before["activity_log_writes"] as? Int ?? 0)
        #expect(held == 3, "three misses held: \(after)")
        #expect(transactions >= 3, "a transaction per miss at QD1: \(after)")
        let latency = try #require(after["activity_log_write_latency"] as? [String: Any], "\(after)")
        let buckets = try #require(latency["buckets_us"] as? [String: Any])
        let bucketed = buckets.values.reduce(0) { $0 + ($1 as? Int ?? 0) }
        #expect(latency["count"] as? Int == after["activity_log_writes"] as? Int, "every transaction timed: \(latency)")
        #expect(bucketed == latency["count"] as? Int, "the buckets hold every one: \(latency)")
        #expect(after["activity_log_volume_flushes"] as? Int == 0, "nothing left the log: \(after)")
        // Each held write's wait is timed once; one at a time, no transaction overlaps another
        // and the log never runs out of extents to give.
        let hold = try #require(after["activity_log_hold_latency"] as? [String: Any], "\(after)")
        let holdBefore = before["activity_log_hold_latency"] as? [String: Any]
        #expect((hold["count"] as? Int ?? -1) - (holdBefore?["count"] as? Int ?? 0) == 3, "three waits timed: \(hold)")
        let overlapping = (after["activity_log_overlapping_writes"] as? Int ?? -1)
            - (before["activity_log_overlapping_writes"] as? Int ?? 0)
        #expect(overlapping == 0, "QD1: no transaction written beside another: \(after)")
        #expect(after["activity_log_blocked_admissions"] as? Int == 0, "512 extents for four writes: \(after)")
    }
}
}
