// Online verify of a group member while another member is away (issue 13 §7, issue 16 §3;
// docs/groups.md, *Across a primary restart*): part of the dependent-write chain of
// ConsistencyGroupTests, a clean stop of the primary, and a start with g0's link cut, so g1's
// new session streams while the secondary's barrier holds every new write of g1 (g0's stream
// has not started again). A write to g1's last verify region is held there; the verify walks
// up to that region and waits for it. A second write to the region must complete while g0 is
// still cut: the verify does not lock a region while it waits for the stream's writes to it
// (before, it did, and the application's write waited until g0 was back). The region is not
// compared while its writes are held (nothing reported); once the link heals the verify ends
// having compared the whole volume with no mismatch, and the volumes are equal.
import Foundation
import Testing

extension Replication {
@Suite struct ConsistencyGroupVerifyTests {
    typealias Chain = ConsistencyGroupTests
    typealias Restart = ConsistencyGroupRestartTests
    typealias Compare = ConsistencyGroupCompareTests

    /// The verify's region (`verifyRegionBytes`), and g1's last one, where the writes go.
    static let regionBytes = 1 << 20
    static let lastRegion = Chain.volumeBytes - regionBytes

    @Test func aWriteToARegionTheVerifyWaitsOnDoesNotWaitForAnAbsentMember() throws {
        let setup = try Chain.start(group: "db")
        let pair = setup.pair
        let records = Int.random(in: 200...400)
        do {
            let clients = try Restart.clients(pair)
            defer { clients.forEach { $0.disconnect() } }
            for index in 0..<records { try Restart.write(index, clients) }
        }
        for name in Chain.members { try Chain.waitInSync(pair, name) }
        #expect(try pair.alpha.stop() == 0, "alpha's clean stop")
        setup.proxy.cut()
        try pair.alpha.start()
        try Chain.waitFor(pair.alpha, "g1", "g1's new session connected, its peer UpToDate") {
            $0["connection_state"] as? String == "Connected" && $0["peer_disk_state"] as? String == "UpToDate"
        }

        // The first write is answered (async) and held on the secondary by the barrier.
        let first = try Compare.timedWrite(pair, pattern: 0x5a, offset: Self.lastRegion)
        #expect(first.wrote, "\(first.result)")
        try Chain.waitFor(pair.beta, "g1", "the write held by g1's barrier on beta", timeoutSeconds: 30) {
            $0["queued_writes"] as? Int ?? 0 >= 1
        }
        try pair.expectOK(try pair.alpha.control().request("verify", ["name": "g1"]))
        try Chain.waitFor(pair.alpha, "g1", "the verify at g1's last region", timeoutSeconds: 60) {
            Self.verify($0)["checked_bytes"] as? Int == Self.lastRegion
        }

        let second = try Compare.timedWrite(pair, pattern: 0xa5, offset: Self.lastRegion + 8192)
        #expect(second.wrote && second.seconds < Compare.writeBoundSeconds,
                "the write to the region the verify waits on, while g0 is away, took \(second.seconds) s: \(second.result)")
        let during = try Self.verify(pair)
        #expect(during["running"] as? Bool == true && during["checked_bytes"] as? Int == Self.lastRegion
                    && during["mismatched_bytes"] as? Int == 0,
                "the region is not compared while its writes are held: \(during)")
        let g0 = try pair.expectOK(try pair.alpha.control().request("status", ["name": "g0"]))
        #expect(g0["connection_state"] as? String != "Connected", "g0 is still away: \(g0)")

        setup.proxy.heal()
        try Chain.waitFor(pair.alpha, "g1", "the verify to end") { Self.verify($0)["running"] as? Bool == false }
        let done = try Self.verify(pair)
        #expect(done["total_bytes"] as? Int == Chain.volumeBytes && done["checked_bytes"] as? Int == Chain.volumeBytes
                    && done["mismatched_bytes"] as? Int == 0 && done["aborted"] == nil,
                "the whole volume compared, nothing differs: \(done)")
        try Compare.expectHealedVolumes(pair, holding: [(0x5a, Self.lastRegion), (0xa5, Self.lastRegion + 8192)])
        print("ConsistencyGroupVerifyTests: \(records) records before the stop; first write \(first.seconds) s, "
              + "second \(second.seconds) s; verify while g0 was away \(during), after the heal \(done)")
    }

    static func verify(_ status: JSONObject) -> JSONObject { status["verify"] as? JSONObject ?? [:] }

    static func verify(_ pair: ReplicatedPair) throws -> JSONObject {
        verify(try pair.expectOK(try pair.alpha.control().request("status", ["name": "g1"])))
    }
}
}
