// `resync_concurrency_max` on a real pair: alpha runs with 1, and two resources (r0, r1) each
// start a full copy of 32 MiB of random data, capped at 8 MiB/s so the first copy lasts about
// four seconds. The second reports `PausedSync` (event `resync-paused`) and copies nothing
// while the first copies; once the first is done it is granted the slot (`resync-resumed`)
// and copies; both volumes equal their peer's at the end.
import Foundation
import Testing

extension Replication {
@Suite struct ResyncConcurrencyTests {
    static let names = ["r0", "r1"]

    @Test func withOneSlotTheSecondResourcePausesUntilTheFirstCopyIsDone() throws {
        let size = 32 << 20
        let pair = try ReplicatedPair(sizeBytes: size, alphaArguments: ["--resync-concurrency-max", "1"])
        func volume(_ daemon: DaemonProcess, _ name: String) -> String { daemon.directory.file("\(name).img") }
        func create(_ daemon: DaemonProcess, _ name: String, role: String, peer: (String, String)) throws {
            try pair.expectOK(try daemon.control().request("create", [
                "name": name, "volume": volume(daemon, name), "size_bytes": size, "role": role,
                "peer": ["name": peer.0, "address": peer.1], "mode": "sync", "initial_sync": "full",
                "nbd": ["socket": daemon.directory.file("\(name).sock")], "resync_rate": 8 << 20,
            ]))
        }
        for name in Self.names {
            try VolumeFiles.makeRandom(volume(pair.alpha, name), sizeBytes: size)
            try create(pair.beta, name, role: "secondary", peer: ("alpha", pair.alphaAddress))
            try create(pair.alpha, name, role: "primary", peer: ("beta", pair.betaAddress))
            try pair.expectOK(try pair.beta.control().request("enable", ["name": name]))
        }
        let client = try pair.alpha.control()
        func status(_ name: String) throws -> JSONObject {
            try pair.expectOK(try client.request("status", ["name": name]))
        }
        let events = try pair.alpha.control()
        try events.sendLine(Array(#"{"id": 0, "cmd": "events"}"#.utf8))
        _ = try events.readReply()
        try pair.expectOK(try client.request("enable", ["name": "r0"]))
        try pair.expectOK(try client.request("enable", ["name": "r1"]))

        // While r0 copies, r1 is PausedSync once its peer is ready (before its peer's Hello the
        // link is up but the peer unheard: SyncSource as for any copy, asking for no slot yet)
        // and copies nothing. r0 frees the slot when its last chunk is durable on beta, before
        // beta's CaughtUp makes it UpToDate, so r1 may start in between: each r1 sample is
        // judged by an r0 sample taken after it, and only while that one still had bytes to copy
        // (r0 held the slot for the whole of r1's sample).
        var pausedSamples = 0
        while true {
            let r1 = try status("r1")
            let r0 = try status("r0")
            guard let r0Left = r0["out_of_sync_bytes"] as? Int, r0Left > 0,
                  r0["peer_disk_state"] as? String != "UpToDate" else { break }
            let state = r1["replication_state"] as? String
            // Until the peer is ready (its Hello heard and its re-send done, which takes a turn
            // after its disk state is known) r1 asks for no slot: SyncSource with nothing copied.
            let unheard = state == "SyncSource" && r1["out_of_sync_bytes"] as? Int == size
                && ["DUnknown", "Inconsistent"].contains(r1["peer_disk_state"] as? String ?? "")
            #expect(state == "PausedSync" || state == "Off" || unheard, "r1 while r0 copies: \(r1)")
            #expect(r1["out_of_sync_bytes"] as? Int == size, "r1 copied while r0 held the slot: \(r1), r0: \(r0)")
            if state == "PausedSync" { pausedSamples += 1 }
            let copying = r0["replication_state"] as? String
            #expect(copying == "SyncSource" || copying == "Off", "r0: \(r0)")
            Thread.sleep(forTimeInterval: 0.05)  // a sampling interval, not a synchronisation
        }
        // How many samples fit in r0's copy is the host's speed (a CI host at load 24 gave 9
        // where 10 were asked); that r1 waited the whole copy is what every sample above and
        // the events' order below check.
        #expect(pausedSamples >= 1, "r1 was never seen PausedSync")

        // The events: r1 paused, then resumed only after r0's copy was done.
        var seen: [String] = []
        let deadline = Date().addingTimeInterval(60)
        while !seen.contains("r1 resync-resumed"), Date() < deadline {
            let event = try events.readReply()
            guard let kind = event["event"] as? String, let resource = event["resource"] as? String else { continue }
            if kind.hasPrefix("resync-") || kind == "initial-sync-done" || (kind == "peer-disk-state" && resource == "r0") {
                seen.append("\(resource) \(kind)" + (kind == "peer-disk-state" ? " \(event["peer_disk_state"] ?? "")" : ""))
            }
        }
        let paused = seen.firstIndex(of: "r1 resync-paused")
        // r0's copy done (its last chunk durable on beta) frees the slot; r0 is UpToDate only
        // once beta says CaughtUp, which may come after r1 resumed.
        let r0Done = seen.firstIndex(of: "r0 initial-sync-done")
        let resumed = seen.firstIndex(of: "r1 resync-resumed")
        #expect(paused != nil && resumed != nil && r0Done != nil, "\(seen)")
        if let paused, let resumed, let r0Done { #expect(paused < r0Done && r0Done < resumed, "\(seen)") }
        #expect(!seen.contains("r0 resync-paused"), "\(seen)")

        try pair.waitFor(pair.alpha, timeoutSeconds: 60, "r1's copy done") { _ in
            (try? status("r1"))?["peer_disk_state"] as? String == "UpToDate"
        }
        for name in Self.names {
            let done = try status(name)
            #expect(done["replication_state"] as? String == "Established", "\(done)")
            #expect(try client.request("disable", ["name": name])["ok"] as? Bool == true)
        }
        try pair.alpha.stop()
        try pair.beta.stop()
        for name in Self.names {
            #expect(try VolumeFiles.sha256(volume(pair.alpha, name)) == VolumeFiles.sha256(volume(pair.beta, name)), "\(name)")
        }
    }
}
}
