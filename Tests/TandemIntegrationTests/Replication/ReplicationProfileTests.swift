// The replication profile on real processes (issue 16 §1, §2): `mode: adaptive` over a link
// that stalls (LinkProxy), and `rpo_target_ms` pacing over a capped link. Alpha dials beta
// through the proxy; the writers are real NBD clients (RawNBDClient, fio).
//
// Adaptive: a sequence-numbered QD1 writer runs while the link stalls; the mode switches to
// async (event `mode-switched`), the write in flight when the link stalled stays unanswered
// (it was admitted sync) while writes on another connection are answered on alpha's copy; after
// the resume the mode switches back; then alpha is killed, beta is forced primary, and every
// write the writer had answered in sync mode is on beta.
//
// Pacing: fio writes at twice the link's rate; `rpo_ms` sampled every 100 ms stays under the
// target (p99) and nothing is reported missed. With a link far slower than writes paced at
// the maximum delay, `rpo-target-missed` comes and alpha goes Ahead.
import Foundation
import Testing

/// Writes numbered 4 KiB blocks at QD1 over its own connection; records, for each answered
/// write, its index and when its answer arrived.
final class TimedWriter: @unchecked Sendable {
    let socket: String
    let blocks: Range<Int>
    private let lock = NSLock()
    private var done: [(index: Int, at: Date)] = []
    private let finished = DispatchSemaphore(value: 0)

    init(socket: String, blocks: Range<Int>) {
        self.socket = socket
        self.blocks = blocks
    }

    var acknowledged: [(index: Int, at: Date)] { lock.withLock { done } }

    func start() {
        Thread.detachNewThread { [self] in
            defer { finished.signal() }
            guard let client = try? RawNBDClient.transmitting(socketPath: socket, exportName: ReplicatedPair.resource) else { return }
            for index in blocks {
                do { try client.write(offset: UInt64(index) * 4096, data: AcknowledgedWriter.pattern(index)) } catch { return }
                lock.withLock { done.append((index, Date())) }
            }
            client.disconnect()
        }
    }

    func waitFor(count: Int, timeoutSeconds: Double) throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while acknowledged.count < count {
            guard Date() < deadline else { throw HarnessError("only \(acknowledged.count) of \(count) writes answered") }
            usleep(5_000)
        }
    }

    func join() { finished.wait() }
}

extension Replication {
@Suite struct ReplicationProfileTests {
    static let volumeBytes = 64 << 20

    /// A pair through the proxy, created with `settings` on both nodes, enabled and in sync.
    static func makePair(mode: String, settings: [String: Any], primaryBufferBytes: Int? = nil,
                         alphaArguments: [String] = []) throws -> (ReplicatedPair, LinkProxy) {
        let pair = try ReplicatedPair(sizeBytes: volumeBytes, alphaArguments: alphaArguments, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: mode,
                        initialSync: "none", compression: "none", settings: settings)
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: mode,
                        initialSync: "none", compression: "none", asyncBufferBytes: primaryBufferBytes, settings: settings)
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.waitInSync()
        return (pair, proxy)
    }

    static func adaptive(_ status: JSONObject) -> JSONObject { status["adaptive"] as? JSONObject ?? [:] }

    // MARK: adaptive

    @Test func aStalledLinkSwitchesToAsyncAndBackAndNoWriteAnsweredSyncIsLost() throws {
        let alphaMetrics = "127.0.0.1:\(try ReplicatedPair.freePort())"
        let (pair, proxy) = try Self.makePair(mode: "adaptive", settings: ["adaptive_latency_ms": 50, "adaptive_switch_ms": 300],
                                              alphaArguments: ["--metrics-listen", alphaMetrics])
        let start = try pair.status(pair.alpha)
        #expect(start["effective_mode"] as? String == "sync" && Self.adaptive(start)["switches"] as? Int == 0, "\(start)")
        let events = try EventWatch(pair.alpha)
        defer { events.stop() }
        let writer = TimedWriter(socket: pair.nbdSocket(pair.alpha), blocks: 0..<12_288)
        writer.start()
        try writer.waitFor(count: 200, timeoutSeconds: 60)
        // Admitted sync, they count in the replicated-write latency histogram as sync mode's do.
        let replicated = try MetricsScrape.scrape(alphaMetrics)
            .value("tandem_replicated_write_latency_seconds_count", ["resource": ReplicatedPair.resource])
        #expect(replicated >= 200, "\(replicated) writes in the replicated-write latency histogram")

        // The link stalls: the write in flight waits for the peer; 50 + 300 ms later writes go async.
        proxy.stall([.toTarget])
        let switched = try pair.waitFor(pair.alpha, timeoutSeconds: 10, "alpha async") { $0["effective_mode"] as? String == "async" }
        #expect(events.saw("mode-switched", timeoutSeconds: 5))
        #expect((Self.adaptive(switched)["last_reason"] as? String)?.contains("adaptive_latency_ms 50") == true, "\(switched)")
        let answeredAtSwitch = writer.acknowledged.count
        // Async now: writes on another connection are answered on alpha's copy alone...
        try RawNBDClient.writePatterns(socketPath: pair.nbdSocket(pair.alpha), blocks: 12_288..<12_388)
        // ...while the sync-admitted write in flight still waits for the stalled peer.
        #expect(writer.acknowledged.count == answeredAtSwitch, "a write admitted sync was answered without the peer")

        proxy.resume([.toTarget])
        let back = try pair.waitFor(pair.alpha, timeoutSeconds: 20, "alpha sync again") {
            $0["effective_mode"] as? String == "sync" && Self.adaptive($0)["switches"] as? Int == 2
        }
        #expect((Self.adaptive(back)["last_reason"] as? String)?.contains("drained") == true, "\(back)")
        let syncFrom = writer.acknowledged.count  // every write answered after this one was admitted sync
        try writer.waitFor(count: syncFrom + 200, timeoutSeconds: 60)
        pair.alpha.crash()
        writer.join()
        let answered = writer.acknowledged

        try pair.expectOK(try pair.beta.control().request("failover", ["name": ReplicatedPair.resource, "force": true]))
        let reader = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.beta), exportName: ReplicatedPair.resource)
        defer { reader.disconnect() }
        var missing: [Int] = []
        // Admitted sync: the first 200 (before the stall) and every one after the switch back.
        let answeredSync = answered.prefix(200) + answered.dropFirst(syncFrom)
        for write in answeredSync where try reader.read(offset: UInt64(write.index) * 4096, length: 4096) != AcknowledgedWriter.pattern(write.index) {
            missing.append(write.index)
        }
        #expect(missing.isEmpty, "writes answered in sync mode missing on beta after the kill: \(missing.prefix(20))")
        #expect(answered.count > syncFrom + 100)
        print("adaptive: \(answered.count) writes answered, \(answeredSync.count) of them sync-admitted (checked on beta), "
              + "async at \(answeredAtSwitch), sync again from \(syncFrom); switch reasons: \(Self.adaptive(switched)["last_reason"] ?? "") / "
              + "\(Self.adaptive(back)["last_reason"] ?? "")")
    }

    // MARK: RPO target

    /// rpo_ms of alpha every 100 ms while `body` runs; the samples.
    static func sampleRPO(_ pair: ReplicatedPair, while body: () throws -> Void) throws -> [Int] {
        let sampler = RPOSampler(pair: pair)
        sampler.start()
        defer { sampler.stop() }
        try body()
        return sampler.stop()
    }

    @Test func aBurstAboveACappedLinkIsPacedSoRPOStaysUnderTheTarget() throws {
        let targetMs = 1_500
        let (pair, proxy) = try Self.makePair(mode: "async", settings: ["rpo_target_ms": targetMs],
                                              primaryBufferBytes: 64 << 20, alphaArguments: ["--max-request-bytes", "1MiB"])
        let events = try EventWatch(pair.alpha)
        defer { events.stop() }
        proxy.capBytesPerSecond(2 << 20, [.toTarget])
        // 64 KiB writes at 64 a second: 4 MiB/s offered over a 2 MiB/s link for 6 s.
        var report: FioJob.Report?
        let samples = try Self.sampleRPO(pair) {
            let fio = try FioJob(socket: pair.nbdSocket(pair.alpha), regionBytes: 32 << 20, runtimeSeconds: 6,
                                 rateIOPS: 64, iodepth: 4, blockBytes: 64 << 10)
            report = try fio.finish()
        }
        let status = try pair.status(pair.alpha)
        let sorted = samples.sorted()
        let p99 = sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
        print("pacing: \(samples.count) rpo_ms samples, p50 \(sorted[sorted.count / 2]) p99 \(p99) max \(sorted.last ?? 0); "
              + "fio wrote \(report?.writes ?? 0) of 384 offered; status \(status["rpo_target"] ?? "none")")
        #expect(samples.count >= 40, "\(samples.count) samples")
        #expect(p99 < targetMs, "rpo_ms p99 \(p99) over the target \(targetMs); samples \(samples)")
        #expect(!events.saw("rpo-target-missed"), "\(status)")
        #expect(status["replication_state"] as? String != "Ahead", "\(status)")
        let block = status["rpo_target"] as? JSONObject ?? [:]
        #expect(block["target_ms"] as? Int == targetMs && block["misses"] as? Int == 0, "\(status)")
        #expect(status["pacing_delay_ms"] != nil)
        // Paced: the application was slowed below what it offered (4 MiB/s for 6 s = 384 writes).
        #expect((report?.writes ?? 0) < 384, "fio wrote \(report?.writes ?? 0) with no pacing felt")
        proxy.capBytesPerSecond(nil, [.toTarget])
        try pair.waitInSync()
    }

    @Test func aLinkTooSlowForTheTargetIsReportedAndAlphaGoesAhead() throws {
        let (pair, proxy) = try Self.makePair(mode: "async", settings: ["rpo_target_ms": 300, "rpo_pacing_max_ms": 5],
                                              primaryBufferBytes: 64 << 20, alphaArguments: ["--max-request-bytes", "1MiB"])
        let events = try EventWatch(pair.alpha)
        defer { events.stop() }
        proxy.capBytesPerSecond(256 << 10, [.toTarget])
        let fio = try FioJob(socket: pair.nbdSocket(pair.alpha), regionBytes: 32 << 20, runtimeSeconds: 4,
                             rateIOPS: 64, iodepth: 4, blockBytes: 64 << 10)
        #expect(events.saw("rpo-target-missed", timeoutSeconds: 15), "no rpo-target-missed: \(events.names)")
        #expect(events.saw("ahead", timeoutSeconds: 5))
        let status = try pair.status(pair.alpha)
        let block = status["rpo_target"] as? JSONObject ?? [:]
        #expect((block["misses"] as? Int ?? 0) >= 1, "\(status)")
        #expect((block["last_miss_reason"] as? String)?.contains("rpo_target_ms 300") == true, "\(status)")
        _ = try fio.finish()
        proxy.capBytesPerSecond(nil, [.toTarget])
        try pair.waitInSync()
    }

    /// A stall longer than the target sends alpha Ahead (one miss); the catch-up that follows
    /// moves far more than the target's worth of the capped link while fio writes on at a
    /// third of it. It ends, once: a copy's chunks are not application writes, and the copy
    /// leaves the link to the writes pacing holds (counted, every catch-up missed the target
    /// again and went Ahead: the node simulator's catchUp class).
    @Test func aCatchUpLongerThanTheTargetOnACappedLinkEndsOnce() throws {
        let (pair, proxy) = try Self.makePair(mode: "async", settings: ["rpo_target_ms": 500, "rpo_pacing_max_ms": 50],
                                              primaryBufferBytes: 64 << 20, alphaArguments: ["--max-request-bytes", "1MiB"])
        let events = try EventWatch(pair.alpha)
        defer { events.stop() }
        proxy.capBytesPerSecond(4 << 20, [.toTarget])
        proxy.stall([.toTarget])
        let stalled = try FioJob(socket: pair.nbdSocket(pair.alpha), regionBytes: 32 << 20, runtimeSeconds: 3,
                                 rateIOPS: 128, iodepth: 4, blockBytes: 64 << 10)
        #expect(events.saw("ahead", timeoutSeconds: 15), "no ahead: \(events.names)")
        _ = try stalled.finish()
        proxy.resume([.toTarget])
        #expect(events.saw("catch-up-started", timeoutSeconds: 15), "no catch-up: \(events.names)")
        let writer = try FioJob(socket: pair.nbdSocket(pair.alpha), regionBytes: 32 << 20, runtimeSeconds: 6,
                                rateIOPS: 20, iodepth: 2, blockBytes: 64 << 10)
        _ = try writer.finish()
        #expect(events.saw("catch-up-done", timeoutSeconds: 30), "the catch-up did not end: \(events.names)")
        proxy.capBytesPerSecond(nil, [.toTarget])
        try pair.waitInSync()
        let names = events.names
        let status = try pair.status(pair.alpha)
        print("catch-up on a capped link: events \(names.filter { $0 != "connection-state" })")
        #expect(names.filter { $0 == "rpo-target-missed" }.count == 1, "\(names); \(status["rpo_target"] ?? "none")")
        #expect(names.filter { $0 == "ahead" }.count == 1 && names.filter { $0 == "catch-up-started" }.count == 1, "\(names)")
        #expect((status["rpo_target"] as? JSONObject)?["misses"] as? Int == 1, "\(status)")
    }

    @Test func settingsThatWouldDoNothingAreRefused() throws {
        let daemon = try DaemonProcess.started()
        let directory = try TempDirectory("profile")
        for (args, word) in [
            (["mode": "sync", "rpo_target_ms": 500], "rpo_target_ms"),
            (["mode": "async", "adaptive_latency_ms": 20], "adaptive_latency_ms"),
            (["mode": "async", "rpo_pacing_max_ms": 20], "rpo_pacing_max_ms"),
            (["mode": "adaptive", "adaptive_latency_ms": 0], "adaptive_latency_ms"),
            (["mode": "async", "group_commit_us": 1_000_001], "group_commit_us"),
            (["mode": "async", "group_commit_us": -1], "group_commit_us"),
        ] as [([String: Any], String)] {
            var request: [String: Any] = ["name": "r0", "volume": directory.file("v"), "size_bytes": 1 << 20]
            request.merge(args) { $1 }
            let reply = try daemon.control().request("create", request)
            #expect(reply["ok"] as? Bool == false && reply["error"] as? String == "invalid-argument", "\(args): \(reply)")
            #expect((reply["message"] as? String)?.contains(word) == true, "\(reply)")
        }
        let reply = try daemon.control().request("create", ["name": "r0", "volume": directory.file("v"), "size_bytes": 1 << 20,
                                                            "mode": "adaptive", "adaptive_latency_ms": 20, "rpo_target_ms": 800])
        #expect(reply["ok"] as? Bool == true, "\(reply)")
        let status = try daemon.control().request("status", ["name": "r0"])
        #expect(status["adaptive_latency_ms"] as? Int == 20 && status["adaptive_switch_ms"] as? Int == 500, "\(status)")
        #expect(status["rpo_target_ms"] as? Int == 800 && status["rpo_pacing_max_ms"] as? Int == 100, "\(status)")
        #expect(status["group_commit_us"] as? Int == 2_000, "\(status)")
        let secondary = try daemon.control().request("create", ["name": "r1", "volume": directory.file("w"), "size_bytes": 1 << 20,
                                                                "role": "secondary", "mode": "async", "group_commit_us": 250,
                                                                "peer": ["name": "alpha", "address": "127.0.0.1:9"]])
        #expect(secondary["ok"] as? Bool == true, "\(secondary)")
        #expect(try daemon.control().request("status", ["name": "r1"])["group_commit_us"] as? Int == 250)
    }
}
}

/// Samples alpha's `rpo_ms` every 100 ms on a thread of its own.
final class RPOSampler: @unchecked Sendable {
    let pair: ReplicatedPair
    private let lock = NSLock()
    private var samples: [Int] = []
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)
    private var running = false

    init(pair: ReplicatedPair) { self.pair = pair }

    func start() {
        running = true
        Thread.detachNewThread { [self] in
            defer { finished.signal() }
            guard let client = try? pair.alpha.control() else { return }
            var next = Date()
            while !lock.withLock({ stopped }) {
                if let status = try? client.request("status", ["name": ReplicatedPair.resource]), let rpo = status["rpo_ms"] as? Int {
                    lock.withLock { samples.append(rpo) }
                }
                next = next.addingTimeInterval(0.1)
                let wait = next.timeIntervalSinceNow
                if wait > 0 { usleep(UInt32(wait * 1_000_000)) }
            }
        }
    }

    @discardableResult
    func stop() -> [Int] {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        if first && running { finished.wait() }
        return lock.withLock { samples }
    }
}
