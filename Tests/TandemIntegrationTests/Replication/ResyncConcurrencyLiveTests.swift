// `set resync_concurrency_max` on a running daemon (issue 13 §6): alpha starts with one slot
// and two resources each due a 32 MiB full copy capped at 8 MiB/s. r1 waits (`PausedSync`);
// raising the count to 2 starts it at once (`resync-resumed`) while r0 still copies; lowering it
// back to 1 stops neither running copy (they finish; only new ones would wait). Both volumes
// end equal to their peer's. The reply and the daemon's status show the count and the slots.
import Foundation
import Testing

extension Replication {
@Suite struct ResyncConcurrencyLiveTests {
    static let names = ["r0", "r1"]
    static let sizeBytes = 32 << 20

    @Test func raisingTheCountStartsAWaitingCopyAndLoweringItLetsRunningOnesFinish() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.sizeBytes, alphaArguments: ["--resync-concurrency-max", "1"])
        func volume(_ daemon: DaemonProcess, _ name: String) -> String { daemon.directory.file("\(name).img") }
        func create(_ daemon: DaemonProcess, _ name: String, role: String, peer: (String, String)) throws {
            try pair.expectOK(try daemon.control().request("create", [
                "name": name, "volume": volume(daemon, name), "size_bytes": Self.sizeBytes, "role": role,
                "peer": ["name": peer.0, "address": peer.1], "mode": "sync", "initial_sync": "full",
                "nbd": ["socket": daemon.directory.file("\(name).sock")], "resync_rate": 8 << 20,
            ]))
        }
        for name in Self.names {
            try VolumeFiles.makeRandom(volume(pair.alpha, name), sizeBytes: Self.sizeBytes)
            try create(pair.beta, name, role: "secondary", peer: ("alpha", pair.alphaAddress))
            try create(pair.alpha, name, role: "primary", peer: ("beta", pair.betaAddress))
            try pair.expectOK(try pair.beta.control().request("enable", ["name": name]))
        }
        let client = try pair.alpha.control()
        func status(_ name: String) throws -> JSONObject { try pair.expectOK(try client.request("status", ["name": name])) }
        let events = try EventWatch(pair.alpha)
        defer { events.stop() }
        try pair.expectOK(try client.request("enable", ["name": "r0"]))
        try pair.expectOK(try client.request("enable", ["name": "r1"]))
        #expect(events.saw("resync-paused", timeoutSeconds: 20), "r1 never waited for the slot: \(events.names)")
        #expect(try status("r1")["replication_state"] as? String == "PausedSync")

        // Raised: r1 is granted a slot at once, while r0 still copies.
        let raised = try pair.expectOK(try client.request("set", ["resync_concurrency_max": 2]))
        #expect(raised["resync_concurrency_max"] as? Int == 2 && raised["resyncs_running"] as? Int == 2, "\(raised)")
        #expect(events.saw("resync-resumed", timeoutSeconds: 5), "r1 did not resume: \(events.names)")
        let r0 = try status("r0")
        #expect(r0["peer_disk_state"] as? String != "UpToDate", "r0 finished before the raise mattered: \(r0)")
        #expect(try status("r1")["replication_state"] as? String == "SyncSource")

        // Lowered: both running copies keep their slots.
        let lowered = try pair.expectOK(try client.request("set", ["resync_concurrency_max": 1]))
        #expect(lowered["resync_concurrency_max"] as? Int == 1 && lowered["resyncs_running"] as? Int == 2, "\(lowered)")
        for name in Self.names {
            let running = try status(name)
            #expect(running["replication_state"] as? String != "PausedSync", "\(name) paused by a lowered count: \(running)")
        }
        let daemonStatus = try pair.expectOK(try client.request("status"))
        #expect(daemonStatus["resync_concurrency_max"] as? Int == 1, "\(daemonStatus)")

        // Refusals change nothing: a bad count, a name beside it, an unknown daemon key.
        for bad: JSONObject in [["resync_concurrency_max": 0], ["resync_concurrency_max": 1025],
                                ["resync_concurrency_max": 2, "name": "r0"], ["resync_concurrency_max": 2, "x": 1]] {
            let reply = try client.request("set", bad)
            #expect(reply["error"] as? String == "invalid-argument", "\(bad): \(reply)")
        }
        #expect(try pair.expectOK(try client.request("status"))["resync_concurrency_max"] as? Int == 1)

        for name in Self.names {
            try pair.waitFor(pair.alpha, timeoutSeconds: 60, "\(name)'s copy done") { _ in
                (try? status(name))?["peer_disk_state"] as? String == "UpToDate"
            }
        }
        try pair.alpha.stop()
        try pair.beta.stop()
        for name in Self.names {
            #expect(try VolumeFiles.sha256(volume(pair.alpha, name)) == VolumeFiles.sha256(volume(pair.beta, name)))
        }
    }
}
}
