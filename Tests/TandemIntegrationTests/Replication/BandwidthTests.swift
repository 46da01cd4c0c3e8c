// `bandwidth` on a real pair (issue 13 §6): every byte alpha sends beta for the resource,
// counted at a LinkProxy between them, stays within rate × elapsed + burst, during the initial
// copy and application writes together, and again from a live `set` to a higher rate. Then
// `set bandwidth=0` lifts the cap and the volumes end identical. No lower bound on the capped
// rate is asserted (accuracy belongs to benchmarks); the copy must merely still be running
// when the cap is raised, so the bound was tested while it mattered.
import Foundation
import Testing

extension Replication {
@Suite struct BandwidthTests {
    static let volumeBytes = 64 << 20
    static let firstRateBytesPerSecond = 4 << 20
    static let secondRateBytesPerSecond = 8 << 20
    /// The gate's burst is max(1 MiB, the largest request + a frame's 64-byte allowance):
    /// alpha runs with 1 MiB requests.
    static let maxRequestBytes = 1 << 20
    static let burstBytes = maxRequestBytes + 64
    /// The TLS handshake, Hellos and pings go around the cap: a few KiB a link.
    static let handshakeAllowanceBytes = 64 << 10

    @Test func everyByteSentStaysUnderRateTimesTimePlusBurstAlsoAfterALiveChange() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.volumeBytes, alphaArguments: ["--max-request-bytes", "1MiB"],
                                      throughProxy: true)
        let proxy = try #require(pair.proxy)
        try VolumeFiles.makeRandom(pair.volume(pair.alpha), sizeBytes: pair.sizeBytes)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "async",
                        initialSync: "full", compression: "none")
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: "async",
                        initialSync: "full", compression: "none",
                        settings: ["bandwidth": Self.firstRateBytesPerSecond, "resync_rate": 1 << 40])
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        // The bucket starts after this instant: the bound from here is looser than the gate's.
        let start = Date()
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        // Application writes beside the copy: they share the cap.
        let socket = pair.nbdSocket(pair.alpha)
        let writer = Thread {
            try? RawNBDClient.writePatterns(socketPath: socket, blocks: 0..<256, flush: true)
        }
        writer.start()
        let first = Self.sample(proxy, from: start, seconds: 2.5)
        Self.expectUnderBound(first, rate: Self.firstRateBytesPerSecond, label: "at 4 MiB/s")

        let changed = Date()
        let bytesAtChange = proxy.forwardedBytes(.toTarget)
        let reply = try pair.expectOK(try pair.alpha.control().request(
            "set", ["name": ReplicatedPair.resource, "bandwidth": Self.secondRateBytesPerSecond]))
        #expect(reply["bandwidth"] as? Int == Self.secondRateBytesPerSecond, "\(reply)")
        let second = Self.sample(proxy, from: changed, seconds: 2.5).map { ($0.seconds, $0.bytes - bytesAtChange) }
        Self.expectUnderBound(second, rate: Self.secondRateBytesPerSecond, label: "at 8 MiB/s after set")
        let status = try pair.status(pair.alpha)
        #expect(status["peer_disk_state"] as? String != "UpToDate", "the copy ended before the bound mattered: \(status)")
        FileHandle.standardError.write(Data(("bandwidth: \(first.last?.bytes ?? 0) bytes in \(first.last?.seconds ?? 0) s at 4 MiB/s, "
            + "\(second.last?.1 ?? 0) bytes in \(second.last?.0 ?? 0) s at 8 MiB/s\n").utf8))

        try pair.expectOK(try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "bandwidth": 0]))
        try pair.waitInSync()
        while writer.isExecuting { Thread.sleep(forTimeInterval: 0.01) }  // it ended: the pair is in sync
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
    }

    /// Bytes forwarded alpha→beta, sampled every 50 ms for `seconds` (a sampling interval, not
    /// a synchronisation); each time taken after the count, so the bound is fair.
    static func sample(_ proxy: LinkProxy, from start: Date, seconds: Double) -> [(seconds: Double, bytes: Int)] {
        var samples: [(seconds: Double, bytes: Int)] = []
        while Date().timeIntervalSince(start) < seconds {
            let bytes = proxy.forwardedBytes(.toTarget)
            samples.append((Date().timeIntervalSince(start), bytes))
            Thread.sleep(forTimeInterval: 0.05)
        }
        return samples
    }

    static func expectUnderBound(_ samples: [(seconds: Double, bytes: Int)], rate: Int, label: String) {
        #expect(samples.count > 10 && (samples.last?.bytes ?? 0) > rate, "\(label): too little moved to test the cap: \(samples.last ?? (0, 0))")
        for sample in samples {
            let allowed = Double(rate) * sample.seconds + Double(burstBytes + handshakeAllowanceBytes)
            #expect(Double(sample.bytes) <= allowed, "\(label): \(sample.bytes) bytes after \(sample.seconds) s (allowed \(allowed))")
        }
    }
}
}
