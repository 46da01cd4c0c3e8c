// `resync_rate` caps a staged catch-up (issue 13 §3, §6; docs/replication.md, *Which cap
// governs which traffic*): after a cut that sent alpha Ahead, every byte of the catch-up is a
// copy read from the bitmap, so the bytes alpha sends to beta after the heal, counted at the
// LinkProxy and sampled over time, never exceed rate × t + burst (+ the handshake), neither
// under the first cap nor after a live `set` to another; and the catch-up is still under way
// when the test stops sampling, so the bound is not met by a catch-up that already ended.
import Foundation
import Testing

extension Replication {
@Suite struct CatchUpThrottleTests {
    static let firstRateBytesPerSecond = 256 << 10
    static let secondRateBytesPerSecond = 512 << 10
    /// The node's burst: max(1 MiB, one 1 MiB chunk).
    static let burstBytes = 1 << 20
    /// The Hellos, the bitmap exchange, Pings, and each chunk's framing (under 1 % of a
    /// 1 MiB chunk): CatchUpTests.handshakeAllowanceBytes.
    static let allowanceBytes = CatchUpTests.handshakeAllowanceBytes

    struct Sample { var seconds: Double; var bytes: Int }

    @Test func aStagedCatchUpSendsNoMoreThanResyncRateTimesTimePlusBurstAlsoAfterALiveSet() throws {
        let (pair, proxy, _) = try CatchUpTests.aheadAfterACutWorkload(seconds: 3)
        let dirtyBytes = try pair.status(pair.alpha)["out_of_sync_bytes"] as? Int ?? 0
        #expect(dirtyBytes > 4 * Self.burstBytes, "too little to catch up for the test to mean anything: \(dirtyBytes)")
        try pair.expectOK(try pair.alpha.control().request(
            "set", ["name": ReplicatedPair.resource, "resync_rate": Self.firstRateBytesPerSecond]))
        proxy.resetCounters()
        // The bucket starts at the copy's first read, after this instant: the bound from here is
        // looser than the node's, never tighter.
        let start = Date()
        proxy.heal()
        let first = try Self.sample(proxy, pair, from: start, seconds: 3)
        Self.expectUnderCap(first, rate: Self.firstRateBytesPerSecond, carriedBytes: 0, "first cap")
        let staged = try pair.status(pair.beta)
        #expect(staged["staging"] as? String == "staging", "beta stages the catch-up: \(staged)")

        try pair.expectOK(try pair.alpha.control().request(
            "set", ["name": ReplicatedPair.resource, "resync_rate": Self.secondRateBytesPerSecond]))
        // Measured from just before the set: a chunk admitted under the old cap may still be
        // crossing the proxy (one burst), and the bucket keeps at most a burst of tokens.
        let changed = Date()
        let atChange = proxy.forwardedBytes(.toTarget)
        let second = try Self.sample(proxy, pair, from: changed, seconds: 3).map {
            Sample(seconds: $0.seconds, bytes: $0.bytes - atChange)
        }
        Self.expectUnderCap(second, rate: Self.secondRateBytesPerSecond, carriedBytes: Self.burstBytes, "after set")
        let sent = proxy.forwardedBytes(.toTarget)
        #expect(sent < dirtyBytes, "the catch-up ended while sampling (\(sent) of \(dirtyBytes) bytes): the bound proves nothing")
        #expect(sent > Self.burstBytes, "the capped catch-up made no progress: \(sent) bytes")
        print("catch-up throttle: \(dirtyBytes) dirty bytes; \(first.last?.bytes ?? 0) bytes in \(first.last?.seconds ?? 0) s at 256 KiB/s, then \(second.last?.bytes ?? 0) in \(second.last?.seconds ?? 0) s at 512 KiB/s")

        try pair.expectOK(try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "resync_rate": 0]))
        try CatchUpTests.waitCaughtUp(pair)
        try CatchUpTests.expectIdenticalVolumes(pair)
    }

    /// The other way back after a cut: alpha's buffer holds every write the peer lacks, so it
    /// never goes Ahead and the heal re-sends them on the stream. That is replication traffic,
    /// capped by `bandwidth`, not by `resync_rate` (the investigation of issue 13 §6's "11 MB
    /// caught up in 2 s at 256 KiB/s": this path). Sampled at the proxy: under bandwidth × t +
    /// burst, and above what a 256 KiB/s resync cap would have let through.
    @Test func aReSendOfHeldWritesIsCappedByBandwidthNotByResyncRate() throws {
        let pair = try CatchUpTests.makePair()
        let proxy = try #require(pair.proxy)
        try pair.createAndEnable(mode: "async", initialSync: "none", primaryBufferBytes: 64 << 20)
        try pair.waitInSync()
        let bandwidth = 2 << 20
        try pair.expectOK(try pair.alpha.control().request(
            "set", ["name": ReplicatedPair.resource, "resync_rate": Self.firstRateBytesPerSecond, "bandwidth": bandwidth]))
        proxy.cut()
        let heldBytes = 12 << 20
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: ReplicatedPair.resource)
        for chunk in 0..<(heldBytes >> 20) {
            try client.write(offset: UInt64(chunk) << 20, data: [UInt8](repeating: UInt8(0x30 + chunk), count: 1 << 20))
        }
        client.disconnect()
        let held = try pair.status(pair.alpha)
        #expect(held["replication_state"] as? String != CatchUpTests.Word.ahead, "alpha went Ahead: \(held)")
        #expect(held["out_of_sync_bytes"] as? Int == 0, "a held write was marked for a copy: \(held)")
        proxy.resetCounters()
        let start = Date()
        proxy.heal()
        var samples: [Sample] = []
        var states: Set<String> = []
        try pair.waitFor(pair.alpha, timeoutSeconds: 60, "alpha re-sent what it held") { status in
            samples.append(Sample(seconds: Date().timeIntervalSince(start), bytes: proxy.forwardedBytes(.toTarget)))
            states.insert(status["replication_state"] as? String ?? "-")
            return status["peer_disk_state"] as? String == "UpToDate" && status["lag_bytes"] as? Int == 0
                && status["connection_state"] as? String == "Connected"
        }
        // The bandwidth gate's burst: max(1 MiB, the largest request + 64).
        Self.expectUnder(samples, rate: bandwidth, burstBytes: (1 << 20) + 64, "bandwidth")
        let sent = proxy.forwardedBytes(.toTarget)
        let seconds = Date().timeIntervalSince(start)
        #expect(sent >= heldBytes, "\(sent) bytes re-sent for \(heldBytes) held")
        #expect(!states.contains("SyncSource"), "a re-send is no copy: \(states)")
        let resyncCapBytes = Double(Self.firstRateBytesPerSecond) * seconds + Double(Self.burstBytes + Self.allowanceBytes)
        #expect(Double(sent) > resyncCapBytes, "the re-send kept to resync_rate: \(sent) bytes in \(seconds) s")
        print("re-send: \(sent) bytes in \(seconds) s with bandwidth 2 MiB/s and resync_rate 256 KiB/s")
        try CatchUpTests.expectIdenticalVolumes(pair)
    }

    // MARK: Steps

    /// The proxy's alpha→beta count every 50 ms for `seconds`, each stamped after the read (so
    /// the bound it is judged by is fair).
    static func sample(_ proxy: LinkProxy, _ pair: ReplicatedPair, from start: Date, seconds: Double) throws -> [Sample] {
        var samples: [Sample] = []
        while Date().timeIntervalSince(start) < seconds {
            let bytes = proxy.forwardedBytes(.toTarget)
            samples.append(Sample(seconds: Date().timeIntervalSince(start), bytes: bytes))
            Thread.sleep(forTimeInterval: 0.05)  // a sampling interval, not a synchronisation
        }
        return samples
    }

    static func expectUnderCap(_ samples: [Sample], rate: Int, carriedBytes: Int, _ what: String) {
        expectUnder(samples, rate: rate, burstBytes: burstBytes + carriedBytes, what)
    }

    static func expectUnder(_ samples: [Sample], rate: Int, burstBytes: Int, _ what: String) {
        #expect(!samples.isEmpty)
        for sample in samples {
            let allowed = Double(rate) * sample.seconds + Double(burstBytes + allowanceBytes)
            #expect(Double(sample.bytes) <= allowed,
                    "\(what): \(sample.bytes) bytes alpha→beta after \(sample.seconds) s (allowed \(Int(allowed)))")
        }
    }
}
}
