// `consistent_as_of.time` (docs/replication.md, *Consistent as of a time*): a secondary's
// consistent point carries the primary's wall-clock time of the epoch it holds, once the peer
// protocol is 9 or more (EpochTime before each EpochBarrier). An async pair: after each write
// acknowledged by the primary, beta's time advances to at least the instant before that
// write, never past now, and survives beta's clean restart (the superblock's `consistent as
// of`). With a protocol-8 peer the primary sends no time: the field is absent and the point
// is still the session and epoch.
import Foundation
import Testing

extension Replication {
@Suite struct ConsistentAsOfTimeTests {
    static func time(_ status: JSONObject) -> Date? {
        guard let text = (status["consistent_as_of"] as? JSONObject)?["time"] as? String else { return nil }
        let parser = ISO8601DateFormatter()
        parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return parser.date(from: text)
    }

    /// The instant before a write, at the millisecond the status can name.
    static func millisecondFloor(_ date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded(.down) / 1000)
    }

    func write(_ pair: ReplicatedPair, block index: Int) throws {
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: "r0")
        defer { client.disconnect() }
        try client.write(offset: UInt64(index) * 4096, data: AcknowledgedWriter.pattern(index))
    }

    @Test func anAsyncSecondaryIsConsistentAsOfThePrimarysTimeOfItsEpoch() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.createAndEnable(mode: "async", initialSync: "none")
        try pair.waitInSync()
        let protocolVersion = try pair.status(pair.alpha)["peer_protocol_version"] as? Int ?? 0
        guard protocolVersion >= 9 else {
            // A protocol-8 peer: no time is sent; the point is still there, without one.
            try write(pair, block: 1)
            let status = try pair.waitFor(pair.beta, "beta consistent after a write") {
                ($0["consistent_as_of"] as? JSONObject)?["epoch"] as? Int ?? 0 > 0
            }
            #expect(Self.time(status) == nil && (status["consistent_as_of"] as? JSONObject)?["time"] == nil, "\(status)")
            return
        }
        var previous: Date?
        for block in 1...3 {
            let before = Self.millisecondFloor(Date())
            try write(pair, block: block)
            let status = try pair.waitFor(pair.beta, "beta's time reaches the write of block \(block)") { status in
                guard let time = Self.time(status) else { return false }
                return time >= before
            }
            let time = try #require(Self.time(status))
            #expect(time <= Date(), "a time past now: \(status)")
            if let previous { #expect(time > previous, "the time did not advance: \(status)") }
            previous = time
        }
        let held = try #require(Self.time(try pair.status(pair.beta)))
        try pair.beta.stop()
        try pair.beta.start()
        let restarted = try pair.status(pair.beta)
        #expect(Self.time(restarted).map { $0 >= held } == true, "the time did not survive a clean restart: \(held) → \(restarted)")
    }
}
}
