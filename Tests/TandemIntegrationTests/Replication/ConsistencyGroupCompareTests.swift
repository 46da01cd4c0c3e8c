// A crash restart's compare of a group member's activity-log extents while another member is
// away (issue 16 §3, docs/groups.md *Across a primary restart*): the primary is killed (-9)
// part-way through the dependent-write chain of ConsistencyGroupTests and starts again with
// g0's link cut. g1's catch-up compares its extents by digest (docs/replication.md, *Checksum
// resync of the extents*), slowed by `resync_rate` so that it is still running when the
// application writes. A first write to g1's last compared region is held on the secondary by
// the group's barrier (g0 is away); once the compare has taken that region, a second write to
// it must complete while g0 is still cut: the compare gives the region up to the copy instead
// of waiting for the held write's confirmation, which would come only once g0 is back. Then
// the chain goes on, the link heals, and both members' volumes equal their peers' and hold
// the whole chain.
import Foundation
import Testing

extension Replication {
@Suite struct ConsistencyGroupCompareTests {
    typealias Chain = ConsistencyGroupTests
    typealias Restart = ConsistencyGroupRestartTests

    static let regionBytes = 128 << 10
    /// g1's first activity-log extent, [0, 4 MiB): the chain's records lie in its first
    /// 1.8 MiB; the two writes below in its last region, which the compare takes last.
    static let lastRegion = (4 << 20) - regionBytes
    /// The compare's pace: a region (128 KiB) every half second after the 1 MiB burst, so the
    /// 32 regions of the extent take about 12 s.
    static let slowResyncRate = 256 << 10
    /// How long the second write may take: well under the old wait (until g0's link heals),
    /// generous for a loaded machine.
    static let writeBoundSeconds = 10.0

    @Test func aWriteToAMembersComparedRegionDoesNotWaitForAnAbsentMember() throws {
        let setup = try Chain.start(group: "db")
        let pair = setup.pair
        let records = Int.random(in: 400...800)
        let stopAt = Int.random(in: (records / 4)...(records / 2))
        try pair.expectOK(try pair.alpha.control().request("set", ["name": "g1", "resync_rate": Self.slowResyncRate]))
        do {
            let clients = try Restart.clients(pair)
            defer { clients.forEach { $0.disconnect() } }
            for index in 0..<stopAt { try Restart.write(index, clients) }
        }
        pair.alpha.crash()
        setup.proxy.cut()
        try pair.alpha.start()
        try Chain.waitFor(pair.alpha, "g1", "g1's compare of its extents running") { status in
            status["connection_state"] as? String == "Connected"
                && (status["checksum_resync"] as? JSONObject)?["running"] as? Bool == true
        }
        let before = try Self.compare(pair)
        #expect(before.checked + 4 * Self.regionBytes < before.total,
                "the compare must not have taken the last region yet: \(before)")

        // The first write is admitted (the region is not taken yet) and held on the
        // secondary by the barrier: g0's stream has not started again.
        let first = try Self.timedWrite(pair, pattern: 0x5a, offset: Self.lastRegion)
        #expect(first.wrote, "\(first.result)")
        // The compare's four places hold the last four regions: the last one is taken, and
        // it is not asked while the first write to it is unconfirmed.
        try Chain.waitFor(pair.alpha, "g1", "g1's compare taking its last region") { status in
            guard let compare = status["checksum_resync"] as? JSONObject, let total = compare["total_bytes"] as? Int,
                let checked = compare["checked_bytes"] as? Int else { return false }
            return checked + 4 * Self.regionBytes >= total
        }
        let second = try Self.timedWrite(pair, pattern: 0xa5, offset: Self.lastRegion + 8192)
        #expect(second.wrote && second.seconds < Self.writeBoundSeconds,
                "the write to the compared region while g0 is away took \(second.seconds) s: \(second.result)")
        let after = try Self.compare(pair)
        #expect(after.givenUp >= Self.regionBytes, "the region is given up to the copy: \(after)")
        let g0 = try pair.expectOK(try pair.alpha.control().request("status", ["name": "g0"]))
        #expect(g0["connection_state"] as? String != "Connected", "g0 is still away: \(g0)")

        try pair.expectOK(try pair.alpha.control().request("set", ["name": "g1", "resync_rate": 0]))
        var slowest = 0.0
        do {
            let clients = try Restart.clients(pair)
            defer { clients.forEach { $0.disconnect() } }
            for index in stopAt..<records {
                let start = Date()
                try Restart.write(index, clients)
                slowest = max(slowest, Date().timeIntervalSince(start))
            }
        }
        try Restart.waitForG1Sent(setup, after: stopAt, records: records)
        let observed = try Chain.heldRecords(pair.beta, written: records)
        try Restart.expectPrefix(observed, "on the secondary while g0 is away", stop: .kill, stopAt: stopAt, records: records)

        setup.proxy.heal()
        try Self.expectHealedVolumes(pair, holding: [(0x5a, Self.lastRegion), (0xa5, Self.lastRegion + 8192)])
        let all = try Chain.heldRecords(pair.beta, written: records)
        #expect(all.count == records && Chain.prefixLength(all) == records, "after the heal: \(all.count) of \(records)")
        print("ConsistencyGroupCompareTests: records \(records), killed at \(stopAt); compare \(before) before, "
              + "\(after) after; first write \(first.seconds) s, second \(second.seconds) s; slowest chain write \(slowest) s")
    }

    // MARK: Helpers

    struct Compare: CustomStringConvertible {
        var total: Int
        var checked: Int
        var givenUp: Int
        var description: String { "\(checked) of \(total) bytes compared, \(givenUp) given up" }
    }

    /// Both members back in sync, each volume equal to its peer's (sha256), and g1's volume on
    /// beta holding each 4 KiB write (pattern, offset).
    static func expectHealedVolumes(_ pair: ReplicatedPair, holding writes: [(pattern: UInt8, offset: Int)]) throws {
        for name in Chain.members { try Chain.waitInSync(pair, name) }
        for name in Chain.members {
            let volume = "\(name).vol"
            #expect(try VolumeFiles.sha256(pair.alpha.directory.file(volume))
                        == VolumeFiles.sha256(pair.beta.directory.file(volume)), "\(name): the volumes differ")
        }
        let g1Volume = try Data(contentsOf: URL(fileURLWithPath: pair.beta.directory.file("g1.vol")))
        for (pattern, offset) in writes {
            #expect(g1Volume[offset..<offset + 4096].allSatisfy { $0 == pattern }, "the write at \(offset) on beta")
        }
    }

    static func compare(_ pair: ReplicatedPair) throws -> Compare {
        let status = try pair.expectOK(try pair.alpha.control().request("status", ["name": "g1"]))
        guard let fields = status["checksum_resync"] as? JSONObject, let total = fields["total_bytes"] as? Int,
            let checked = fields["checked_bytes"] as? Int, let givenUp = fields["given_up_bytes"] as? Int
        else { throw HarnessError("no checksum_resync: \(status)") }
        return Compare(total: total, checked: checked, givenUp: givenUp)
    }

    /// A 4 KiB write of `pattern` to g1 on alpha (qemu-io), whether it was acknowledged
    /// (qemu-io exits 0 after a failed command too: its report says), and how long it took.
    static func timedWrite(_ pair: ReplicatedPair, pattern: UInt8, offset: Int)
        throws -> (result: ToolResult, wrote: Bool, seconds: Double) {
        let uri = "nbd+unix:///g1?socket=\(pair.alpha.directory.file("g1.nbd"))"
        let start = Date()
        let result = try ExternalTool.run("qemu-io", ["-f", "raw", "-c", "write -P \(pattern) \(offset) 4096", uri],
                                          timeoutSeconds: writeBoundSeconds)
        return (result, result.succeeded && result.stdout.contains("wrote 4096/4096 bytes"), Date().timeIntervalSince(start))
    }
}
}
