// `mode: periodic` on a real pair (issue 13 §5; docs/replication.md, *Periodic mode*): between
// cycles the secondary receives nothing (the link through a LinkProxy carries no byte, the
// volumes differ, `rpo_ms` grows); a cycle ships only the regions written since the last one,
// once each however often they were written, after which the volumes are identical and
// `rpo_ms` is 0. The period is long (an hour) so that no cycle starts by itself mid-test; `set
// period_s` brings the next one forward, and a short period then runs cycles on its own.
import Foundation
import Testing

extension Replication {
@Suite struct PeriodicModeTests {
    static let hourSeconds = 3600
    /// The regions written between cycles: 64 blocks of 4 KiB, each written twice.
    static let dirtyBlocks = 0..<64
    static let dirtyBytes = 64 * 4096
    /// What a cycle may send beyond its dirty bytes + 10 %: TLS handshake, Hellos, pings,
    /// SyncComplete (see CatchUpTests.handshakeAllowanceBytes).
    static let handshakeAllowanceBytes = 64 << 10

    @Test func betweenCyclesTheSecondaryReceivesNothingAndACycleShipsOnlyTheDirtyRegionsOnce() throws {
        let pair = try ReplicatedPair(sizeBytes: 64 << 20, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try Self.createPeriodic(pair, periodSeconds: Self.hourSeconds)
        // The first cycle runs at enable (nothing to copy: both volumes start zeroed).
        try Self.waitCycles(pair, atLeast: 1)

        proxy.resetCounters()
        for _ in 0..<2 {
            try RawNBDClient.writePatterns(socketPath: pair.nbdSocket(pair.alpha), blocks: Self.dirtyBlocks, flush: true)
        }
        let midPeriod = try pair.status(pair.alpha)
        let periodic = try #require(midPeriod["periodic"] as? JSONObject, "no periodic status: \(midPeriod)")
        #expect(periodic["cycle_running"] as? Bool == false && periodic["cycles_completed"] as? Int == 1)
        #expect((periodic["next_cycle_in_ms"] as? Int ?? 0) > 3_000_000, "the next cycle is an hour away: \(periodic)")
        #expect(midPeriod["replication_state"] as? String == "Ahead", "between cycles: \(midPeriod)")
        #expect(midPeriod["last_error"] as? String == nil, "a link closed by the mode is no error: \(midPeriod)")
        #expect(midPeriod["out_of_sync_bytes"] as? Int == Self.dirtyBytes, "each region counts once: \(midPeriod)")
        #expect(proxy.forwardedBytes(.toTarget) == 0, "the secondary received bytes between cycles")
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) != VolumeFiles.sha256(pair.volume(pair.beta)),
                "mid-period the secondary must lack the writes")
        let firstRPOMs = try #require(midPeriod["rpo_ms"] as? Int)
        try pair.waitFor(pair.alpha, timeoutSeconds: 10, "rpo_ms grows between cycles") {
            ($0["rpo_ms"] as? Int ?? 0) >= firstRPOMs + 1000
        }

        // `set period_s` makes the next cycle due now (an hour was the old period).
        try pair.expectOK(try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "period_s": 2]))
        let after = try Self.waitCycles(pair, atLeast: 2)
        let cycle = try #require(after["periodic"] as? JSONObject)
        #expect(cycle["last_cycle_bytes"] as? Int == Self.dirtyBytes, "a cycle copies the dirty regions once: \(cycle)")
        #expect(cycle["last_cycle_started_time_ms"] is Int && cycle["last_cycle_duration_ms"] is Int)
        let sentBytes = proxy.forwardedBytes(.toTarget)
        FileHandle.standardError.write(Data("periodic: \(Self.dirtyBytes * 2) bytes written, \(Self.dirtyBytes) dirty, \(sentBytes) bytes alpha→beta in the cycle\n".utf8))
        #expect(sentBytes >= Self.dirtyBytes && sentBytes <= Self.dirtyBytes * 11 / 10 + Self.handshakeAllowanceBytes,
                "the cycle sent \(sentBytes) bytes for \(Self.dirtyBytes) dirty bytes")
        #expect(after["rpo_ms"] as? Int == 0, "the peer holds every write after the cycle: \(after)")
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)),
                "after a cycle the volumes are identical")

        // With a 2 s period the cycles go on by themselves; with nothing written they copy
        // at most the one block a new session needs.
        let idle = try Self.waitCycles(pair, atLeast: 4)
        let idleCycle = try #require(idle["periodic"] as? JSONObject)
        #expect((idleCycle["last_cycle_bytes"] as? Int ?? .max) <= 4096, "an idle cycle: \(idleCycle)")
        #expect(idleCycle["period_s"] as? Int == 2)
        #expect(idle["last_error"] as? String == nil, "four cycles, each closing its link, and nothing wrong: \(idle)")
    }

    /// kill -9 of a periodic primary between cycles (it is Ahead then): its activity log
    /// records the bases and the bitmap pages count, so the restart catches up the written
    /// regions (issue 13 §4), not the volume, and the cycle after it leaves the volumes equal.
    @Test func aPeriodicPrimaryKilledBetweenCyclesCatchesUpOnlyWhatItWrote() throws {
        let pair = try ReplicatedPair(sizeBytes: 64 << 20, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try Self.createPeriodic(pair, periodSeconds: Self.hourSeconds)
        try Self.waitCycles(pair, atLeast: 1)
        try RawNBDClient.writePatterns(socketPath: pair.nbdSocket(pair.alpha), blocks: Self.dirtyBlocks, flush: true)
        #expect(try pair.status(pair.alpha)["replication_state"] as? String == "Ahead")
        pair.alpha.crash()
        proxy.cut()  // until the restarted primary's dirty set is read
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        #expect(restarted["session_start"] as? String == "catch-up", "a crash between cycles copied the volume: \(restarted)")
        let dirtyBytes = restarted["out_of_sync_bytes"] as? Int ?? -1
        // The written blocks, within the activity log's extents around them (4 MiB each).
        #expect(dirtyBytes >= Self.dirtyBytes && dirtyBytes <= 8 << 20, "\(restarted)")
        proxy.resetCounters()
        proxy.heal()
        try pair.expectOK(try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "period_s": 1]))
        try pair.waitFor(pair.alpha, timeoutSeconds: 60, "a cycle after the restart leaves nothing out of sync") {
            ($0["periodic"] as? JSONObject)?["cycles_completed"] as? Int ?? 0 >= 1 && $0["out_of_sync_bytes"] as? Int == 0
                && $0["rpo_ms"] as? Int == 0
        }
        let sentBytes = proxy.forwardedBytes(.toTarget)
        #expect(sentBytes <= dirtyBytes * 11 / 10 + Self.handshakeAllowanceBytes * 4,
                "alpha sent \(sentBytes) bytes for \(dirtyBytes) dirty bytes after its crash")
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
    }

    @Test func createRefusesAPeriodWithoutPeriodicModeAndPeriodicModeWithoutAPeriod() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        defer { try? daemon.stop() }
        func create(_ settings: [String: Any]) throws -> JSONObject {
            var arguments: [String: Any] = ["name": "r0", "volume": daemon.directory.file("volume"), "size_bytes": 4 << 20]
            arguments.merge(settings) { $1 }
            return try daemon.control().request("create", arguments)
        }
        let noPeriod = try create(["mode": "periodic"])
        #expect(noPeriod["error"] as? String == "missing-argument", "\(noPeriod)")
        let notPeriodic = try create(["mode": "async", "period_s": 60])
        #expect(notPeriodic["error"] as? String == "invalid-argument", "\(notPeriodic)")
        let tooLong = try create(["mode": "periodic", "period_s": 86_401])
        #expect(tooLong["error"] as? String == "invalid-argument", "\(tooLong)")
        let listed = try daemon.control().request("status", [:])
        #expect((listed["resources"] as? [Any])?.isEmpty == true, "a refused create left a resource: \(listed)")
    }

    /// r0 on both nodes in periodic mode (beta first, so alpha's first dial finds it).
    static func createPeriodic(_ pair: ReplicatedPair, periodSeconds: Int) throws {
        let settings: [String: Any] = ["period_s": periodSeconds]
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "periodic",
                        initialSync: "none", compression: "none", settings: settings)
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: "periodic",
                        initialSync: "none", compression: "none", settings: settings)
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
    }

    /// Waits until alpha completed `count` cycles and none runs; returns that status.
    @discardableResult
    static func waitCycles(_ pair: ReplicatedPair, atLeast count: Int) throws -> JSONObject {
        try pair.waitFor(pair.alpha, timeoutSeconds: 60, "\(count) periodic cycles completed") { status in
            guard let periodic = status["periodic"] as? JSONObject else { return false }
            return (periodic["cycles_completed"] as? Int ?? 0) >= count && periodic["cycle_running"] as? Bool == false
        }
    }
}
}
