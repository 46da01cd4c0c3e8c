// The Prometheus endpoint on a real pair: both nodes serve metrics_listen, fio writes through
// alpha's NBD export, and every scrape is parsed by a real Prometheus parser
// (python3-prometheus-client). Counters move by at least what was written, the state words
// and gauges are the ones `status` reports, histograms are well formed; and what is not a
// metrics request gets an HTTP error while the endpoint keeps serving.
import Foundation
import Testing

extension Replication {
@Suite struct MetricsEndpointTests {
    static let workloadBytes = 16 << 20
    static let workloadWrites = workloadBytes / 4096

    @Test func scrapesDuringAWorkloadMoveCountersAndMatchStatus() throws {
        let alphaMetrics = "127.0.0.1:\(try ReplicatedPair.freePort())"
        let betaMetrics = "127.0.0.1:\(try ReplicatedPair.freePort())"
        let pair = try ReplicatedPair(sizeBytes: 32 << 20, alphaArguments: ["--metrics-listen", alphaMetrics],
                                      betaArguments: ["--metrics-listen", betaMetrics])
        try pair.createAndEnable()
        try pair.waitInSync()
        let r0 = ["resource": ReplicatedPair.resource]

        let before = try MetricsScrape.scrape(alphaMetrics)
        let betaBefore = try MetricsScrape.scrape(betaMetrics)
        // initial_sync full: the whole volume went through the initial copy, nothing else.
        #expect(try before.value("tandem_resynced_bytes_total", r0) == Double(pair.sizeBytes))
        #expect(try betaBefore.value("tandem_received_bytes_total", r0) >= Double(pair.sizeBytes))
        #expect(try before.value("tandem_resync_progress_ratio", r0) == 1)
        try expectGaugesMatchStatus(before, try pair.status(pair.alpha), node: "alpha")
        try expectGaugesMatchStatus(betaBefore, try pair.status(pair.beta), node: "beta")

        let during = try runFioWhileScraping(pair, alphaMetrics)
        try pair.waitInSync()
        let after = try MetricsScrape.scrape(alphaMetrics)
        let betaAfter = try MetricsScrape.scrape(betaMetrics)
        let alphaStatus = try pair.status(pair.alpha)
        try expectGaugesMatchStatus(after, alphaStatus, node: "alpha")
        try expectGaugesMatchStatus(betaAfter, try pair.status(pair.beta), node: "beta")

        // Counters: every scrape during the run lies between the one before and the one after.
        let counters = ["tandem_nbd_write_bytes_total", "tandem_replicated_bytes_total",
                        "tandem_local_write_latency_seconds_count", "tandem_replicated_write_latency_seconds_count"]
        for name in counters {
            var previous = try before.value(name, r0)
            for scrape in during {
                let value = try scrape.value(name, r0)
                #expect(value >= previous, "\(name) went backwards during the workload: \(previous) then \(value)")
                previous = value
            }
            #expect(try after.value(name, r0) >= previous, "\(name) went backwards after the workload")
        }
        let writeBytes = try before.value("tandem_nbd_write_bytes_total", r0)
        let inProgress = try during.filter { scrape in
            let value = try scrape.value("tandem_nbd_write_bytes_total", r0)
            return value > writeBytes && value < writeBytes + Double(Self.workloadBytes)
        }
        #expect(!inProgress.isEmpty, "no scrape landed while fio was writing (\(during.count) scrapes)")

        func moved(_ name: String, _ labels: [String: String] = r0, _ first: MetricsScrape = before,
                   _ last: MetricsScrape = after) throws -> Double {
            try last.value(name, labels) - first.value(name, labels)
        }
        let written = Double(Self.workloadBytes)
        #expect(try moved("tandem_nbd_write_bytes_total") == written)
        #expect(try after.value("tandem_nbd_write_bytes_total", r0)
                == Double((alphaStatus["io"] as? JSONObject)?["write_bytes"] as? Int ?? -1))
        #expect(try moved("tandem_nbd_requests_total", r0.merging(["command": "write"]) { $1 }) == Double(Self.workloadWrites))
        #expect(try moved("tandem_replicated_bytes_total") >= written)
        #expect(try moved("tandem_resynced_bytes_total") == 0)
        #expect(try moved("tandem_received_bytes_total", r0, betaBefore, betaAfter) >= written)
        // Sync mode: every write was written locally once and acknowledged after the peer.
        #expect(try moved("tandem_local_write_latency_seconds_count") == Double(Self.workloadWrites))
        #expect(try moved("tandem_replicated_write_latency_seconds_count") == Double(Self.workloadWrites))
        #expect(try moved("tandem_replicated_write_latency_seconds_sum") > 0)
        for scrape in [after, betaAfter] {
            try scrape.lint()
            try expectHistogramsWellFormed(scrape)
            #expect(try scrape.value("tandem_tls_handshakes_total") >= 1)
            #expect(try scrape.value("tandem_tls_handshake_failures_total") == 0)
            for kind in ["disk", "protocol", "tls", "nbd"] {
                #expect(try scrape.value("tandem_errors_total", r0.merging(["kind": kind]) { $1 }) == 0, "errors of kind \(kind)")
            }
            let ping = try pair.expectOK(try pair.alpha.control().request("ping", [:]))
            #expect(try scrape.value("tandem_build_info", ["version": ping["version"] as? String ?? "?"]) == 1)
        }
        #expect(try after.value("process_resident_memory_bytes") > 0)
        #expect(try after.value("process_open_fds") > 0)
    }

    @Test func refusedCertificatesCountAsTLSFailuresOnBothNodes() throws {
        let stranger = try TempDirectory("stranger")
        try ReplicatedPair.makeCertificates(into: stranger.path, nodes: ["beta"])
        let alphaMetrics = "127.0.0.1:\(try ReplicatedPair.freePort())"
        let betaMetrics = "127.0.0.1:\(try ReplicatedPair.freePort())"
        let pair = try ReplicatedPair(sizeBytes: 8 << 20, betaCertificates: stranger.path,
                                      alphaArguments: ["--metrics-listen", alphaMetrics],
                                      betaArguments: ["--metrics-listen", betaMetrics])
        try pair.createAndEnable()
        // The link is counted when it closes, before the reason reaches status.
        try pair.waitFor(pair.alpha, timeoutSeconds: 20, "alpha to report the refusal") {
            ($0["last_error"] as? String)?.contains("certificate verification failed") == true
        }
        let alpha = try MetricsScrape.scrape(alphaMetrics)
        // Beta fails when alpha's alert (or the close) arrives, which may be a moment later.
        let beta = try MetricsScrape.waitFor(betaMetrics, "beta to count a failed handshake") {
            try $0.value("tandem_tls_handshake_failures_total") >= 1
        }
        let r0 = ["resource": ReplicatedPair.resource]
        #expect(try alpha.value("tandem_tls_handshake_failures_total") >= 1)
        #expect(try alpha.value("tandem_errors_total", r0.merging(["kind": "tls"]) { $1 }) >= 1)
        #expect(try alpha.value("tandem_errors_total", r0.merging(["kind": "protocol"]) { $1 }) == 0)
        #expect(try beta.value("tandem_tls_handshake_failures_total") >= 1)
        for scrape in [alpha, beta] {
            #expect(try scrape.value("tandem_tls_handshakes_total") == 0)
            #expect(try scrape.currentState("tandem_connection_state", resource: ReplicatedPair.resource) != "Connected")
        }
    }

    @Test func aCrashedPeerIsALostConnectionNotAnError() throws {
        let alphaMetrics = "127.0.0.1:\(try ReplicatedPair.freePort())"
        let pair = try ReplicatedPair(sizeBytes: 8 << 20, alphaArguments: ["--metrics-listen", alphaMetrics])
        try pair.createAndEnable()
        try pair.waitInSync()
        pair.beta.crash()
        try pair.waitFor(pair.alpha, "alpha to lose the peer") { $0["connection_state"] as? String != "Connected" }
        let scrape = try MetricsScrape.scrape(alphaMetrics)
        let r0 = ["resource": ReplicatedPair.resource]
        for kind in ["disk", "protocol", "tls", "nbd"] {
            #expect(try scrape.value("tandem_errors_total", r0.merging(["kind": kind]) { $1 }) == 0, "errors of kind \(kind)")
        }
        #expect(try scrape.value("tandem_tls_handshakes_total") == 1)
        #expect(try scrape.value("tandem_tls_handshake_failures_total") == 0)
        #expect(try scrape.currentState("tandem_connection_state", resource: ReplicatedPair.resource) == "Connecting")
    }

    /// fio writes `workloadBytes` at a fixed rate (so it lasts about 4 s) while the endpoint
    /// is scraped back to back; returns the scrapes taken while fio ran, parsed.
    func runFioWhileScraping(_ pair: ReplicatedPair, _ address: String) throws -> [MetricsScrape] {
        let scratch = try TempDirectory("fio")
        let fio = try ChildProcess(
            executable: try ExternalTool.locate("fio"),
            arguments: ["--name=metrics", "--ioengine=nbd", "--uri=nbd+unix:///r0?socket=\(pair.nbdSocket(pair.alpha))",
                        "--rw=randwrite", "--bs=4k", "--size=\(Self.workloadBytes)", "--iodepth=8", "--rate_iops=1000"],
            outputPath: scratch.file("fio.out"))
        var texts: [String] = []
        while fio.isRunning {
            let answer = try HTTPProbe.get(address)
            #expect(answer.status == 200)
            if fio.isRunning { texts.append(answer.body) }
            usleep(50_000)
        }
        #expect(fio.wait(timeoutSeconds: 120))
        let output = (try? String(contentsOfFile: scratch.file("fio.out"), encoding: .utf8)) ?? ""
        #expect(fio.exitStatus == 0, "fio failed: \(output.suffix(2000))")
        return try MetricsScrape.parseAll(texts)
    }

    /// Every state word is one-hot and equals the status field; numeric gauges equal theirs.
    func expectGaugesMatchStatus(_ scrape: MetricsScrape, _ status: JSONObject, node: String) throws {
        let resource = ReplicatedPair.resource
        let states = [("tandem_role", "role", "role"), ("tandem_connection_state", "connection_state", "state"),
                      ("tandem_disk_state", "disk_state", "state"), ("tandem_peer_disk_state", "peer_disk_state", "state"),
                      ("tandem_replication_state", "replication_state", "state")]
        for (family, field, label) in states {
            guard let word = status[field] as? String else {
                #expect(scrape.series(family, ["resource": resource]).isEmpty, "\(node): \(family) without \(field) in status")
                continue
            }
            #expect(try scrape.currentState(family, resource: resource, label: label) == word, "\(node): \(family)")
        }
        let gauges = [("tandem_lag_bytes", "lag_bytes", 1.0), ("tandem_out_of_sync_bytes", "out_of_sync_bytes", 1),
                      ("tandem_rpo_seconds", "rpo_ms", 0.001), ("tandem_volume_size_bytes", "size_bytes", 1),
                      ("tandem_unconfirmed_bytes", "unconfirmed_bytes", 1), ("tandem_nbd_clients", "nbd_clients", 1)]
        for (family, field, scale) in gauges {
            guard let number = status[field] as? Int else {
                #expect(scrape.series(family, ["resource": resource]).isEmpty, "\(node): \(family) without \(field) in status")
                continue
            }
            #expect(try scrape.value(family, ["resource": resource]) == Double(number) * scale, "\(node): \(family)")
        }
        #expect(scrape.types["tandem_lag_bytes"] == "gauge")
        #expect(scrape.types["tandem_replicated_bytes"] == "counter")
        #expect(scrape.types["tandem_local_write_latency_seconds"] == "histogram")
    }

    /// Buckets are cumulative (never decrease with `le`), end in +Inf equal to _count.
    func expectHistogramsWellFormed(_ scrape: MetricsScrape) throws {
        for family in ["tandem_local_write_latency_seconds", "tandem_replicated_write_latency_seconds"] {
            let buckets = scrape.series(family + "_bucket", ["resource": ReplicatedPair.resource])
            let ordered = buckets.map { (Double($0.labels["le"] ?? "") ?? .nan, $0.value) }.sorted { $0.0 < $1.0 }
            #expect(ordered.count >= 2 && ordered.last?.0 == .infinity, "\(family): buckets \(ordered)")
            #expect(zip(ordered, ordered.dropFirst()).allSatisfy { $0.1 <= $1.1 }, "\(family): not cumulative \(ordered)")
            #expect(ordered.last?.1 == (try scrape.value(family + "_count", ["resource": ReplicatedPair.resource])))
        }
    }
}
}
