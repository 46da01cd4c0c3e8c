// `resync_rate` on a real pair: the initial copy of a 64 MiB volume at 8 MiB/s, sampled from
// the primary's status while it runs (the bytes the copy has sent never exceed rate × elapsed
// + burst at any sample), then `set resync_rate=0` lets it finish, and both volumes are equal.
// No lower bound on the capped rate is asserted: accuracy belongs to benchmarks. Under the
// dynamic controller (`resync_rate: 0`) an idle copy rises far above a 1 MiB/s floor.
import Foundation
import Testing

extension Replication {
@Suite struct ResyncRateTests {
    static let rateBytesPerSecond = 8 << 20
    /// The node's burst: max(1 MiB, one chunk of 1 MiB).
    static let burstBytes = 1 << 20

    @Test func aCappedInitialCopyStaysUnderRateTimesTimePlusBurstUntilSetLiftsTheCap() throws {
        let pair = try ReplicatedPair(sizeBytes: 64 << 20)
        try VolumeFiles.makeRandom(pair.volume(pair.alpha), sizeBytes: pair.sizeBytes)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "full", compression: "none")
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddress), mode: "sync",
                        initialSync: "full", compression: "none", settings: ["resync_rate": Self.rateBytesPerSecond])
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        // The bucket starts at the primary's enable, after this instant: the bound from here
        // is looser than the node's, never tighter.
        let start = Date()
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        let client = try pair.alpha.control()
        var samples: [(seconds: Double, copied: Int)] = []
        var measuredRates: [Int] = []
        // Four seconds of samples, and more until the copy has begun (a loaded host may take
        // that long to connect and hand the copy its slot), up to 30 s.
        func sampling() -> Bool {
            let elapsed = Date().timeIntervalSince(start)
            return elapsed < 30 && (elapsed < 4 || (samples.last?.copied ?? 0) == 0)
        }
        while sampling() {
            let status = try pair.expectOK(try client.request("status", ["name": ReplicatedPair.resource]))
            // Taken after the reply: the status is at least this old, so the bound is fair.
            let seconds = Date().timeIntervalSince(start)
            let outOfSync = try #require(status["out_of_sync_bytes"] as? Int, "\(status)")
            samples.append((seconds, pair.sizeBytes - outOfSync))
            #expect(status["resync_rate"] as? Int == Self.rateBytesPerSecond)
            if let rate = status["resync_rate_bytes_per_second"] as? Int, rate > 0 { measuredRates.append(rate) }
            Thread.sleep(forTimeInterval: 0.05)  // a sampling interval, not a synchronisation
        }
        for sample in samples {
            let allowed = Double(Self.rateBytesPerSecond) * sample.seconds + Double(Self.burstBytes)
            #expect(Double(sample.copied) <= allowed, "\(sample.copied) bytes copied after \(sample.seconds) s")
        }
        let copied = samples.last?.copied ?? 0
        #expect(copied > 0 && copied < pair.sizeBytes, "the capped copy is under way, not done: \(copied)")
        // Smoothed over windows of at least 0.9 s: at most the rate plus one burst per window.
        for rate in measuredRates {
            #expect(Double(rate) <= Double(Self.rateBytesPerSecond) + Double(Self.burstBytes) / 0.9, "status rate \(rate)")
        }
        print("resync_rate 8 MiB/s: \(copied) bytes copied in \(samples.last?.seconds ?? 0) s, \(samples.count) samples, status rates \(measuredRates)")

        let lifted = try pair.expectOK(try client.request("set", ["name": ReplicatedPair.resource, "resync_rate": 0]))
        #expect(lifted["resync_rate"] as? Int == 0)
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
    }

    /// `resync_rate: 0` with a floor of 1 MiB/s on an idle pair: the controller rises far above
    /// the floor (a copy held at it would take 64 s), says so in status, and the volumes end equal.
    @Test func theDynamicControllerCopiesAnIdleVolumeFarAboveItsFloor() throws {
        let pair = try ReplicatedPair(sizeBytes: 64 << 20)
        try VolumeFiles.makeRandom(pair.volume(pair.alpha), sizeBytes: pair.sizeBytes)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "full", compression: "none")
        let floor = 1 << 20
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddress), mode: "sync",
                        initialSync: "full", compression: "none", settings: ["resync_rate": 0, "resync_rate_min": floor])
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        let start = Date()
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        var targets: [Int] = []
        // Timed from the first sample that shows bytes copied (connecting is not the copy's
        // time), so the start is at most a sampling interval late.
        var copyStart: Date?
        try pair.waitFor(pair.alpha, timeoutSeconds: 60, "the copy done") { status in
            if let target = status["resync_rate_target_bytes_per_second"] as? Int, target > 0 { targets.append(target) }
            if copyStart == nil, let left = status["out_of_sync_bytes"] as? Int, left < pair.sizeBytes { copyStart = Date() }
            return status["peer_disk_state"] as? String == "UpToDate"
        }
        let seconds = Date().timeIntervalSince(copyStart ?? start)
        print("resync_rate 0, floor 1 MiB/s, idle: 64 MiB copied in \(seconds) s; controller targets \(targets)")
        #expect(seconds < 16, "64 MiB took \(seconds) s: at most 4 times the floor's rate")
        #expect(targets.contains { $0 > 4 * floor }, "status targets \(targets)")
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
    }
}
}
