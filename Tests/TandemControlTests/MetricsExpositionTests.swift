// The Prometheus text writer and what the exposition makes of a status: escaping, number
// syntax, cumulative histogram buckets, one-hot state words (including a word the table does
// not know yet), gauges in base units. The integration test runs a real parser over real
// scrapes; these pin the details that parser is lenient about.
import TandemControl
import TandemIO
import Testing

@testable import TandemDaemon

@Suite struct MetricsExpositionTests {
    @Test func labelValuesAndHelpAreEscaped() {
        #expect(PrometheusTextWriter.escapeLabelValue(#"a"b\c"#) == #"a\"b\\c"#)
        #expect(PrometheusTextWriter.escapeLabelValue("two\nlines") == #"two\nlines"#)
        var writer = PrometheusTextWriter()
        writer.family("x_total", .counter, help: "back\\slash\nnewline")
        writer.sample("x_total", [("resource", "r\"0")], UInt64(3))
        #expect(writer.text == "# HELP x_total back\\\\slash\\nnewline\n# TYPE x_total counter\nx_total{resource=\"r\\\"0\"} 3\n")
    }

    @Test func numbersUseGoFloatSyntax() {
        #expect(PrometheusTextWriter.format(0) == "0")
        #expect(PrometheusTextWriter.format(1.234) == "1.234")
        #expect(PrometheusTextWriter.format(.infinity) == "+Inf")
        #expect(PrometheusTextWriter.format(-.infinity) == "-Inf")
        #expect(PrometheusTextWriter.format(.nan) == "NaN")
        #expect(PrometheusTextWriter.format(1e20) == "1e+20")
        #expect(PrometheusTextWriter.seconds(nanoseconds: 50_000) == "0.00005")
        #expect(PrometheusTextWriter.seconds(nanoseconds: 2_500_000_000) == "2.5")
        #expect(PrometheusTextWriter.seconds(nanoseconds: 10_000_000_000) == "10")
    }

    @Test func histogramBucketsAreCumulativeAndEndInCount() {
        let histogram = LatencyHistogram()
        for durationNs: UInt64 in [10_000, 60_000, 60_000, 3_000_000, 20_000_000_000] {
            histogram.record(durationNs: durationNs)
        }
        var writer = PrometheusTextWriter()
        writer.family("lat_seconds", .histogram, help: "h")
        writer.histogram("lat_seconds", [("resource", "r0")], histogram.snapshot)
        let lines = writer.text.split(separator: "\n").map(String.init)
        #expect(lines.contains(#"lat_seconds_bucket{resource="r0",le="0.00005"} 1"#))
        #expect(lines.contains(#"lat_seconds_bucket{resource="r0",le="0.0001"} 3"#))
        #expect(lines.contains(#"lat_seconds_bucket{resource="r0",le="0.005"} 4"#))
        #expect(lines.contains(#"lat_seconds_bucket{resource="r0",le="10"} 4"#))
        #expect(lines.contains(#"lat_seconds_bucket{resource="r0",le="+Inf"} 5"#))
        #expect(lines.contains(#"lat_seconds_count{resource="r0"} 5"#))
        #expect(lines.contains(#"lat_seconds_sum{resource="r0"} 20.00313"#))
        #expect(lines.filter { $0.hasPrefix("lat_seconds_bucket") }.count == LatencyHistogram.boundsNs.count + 1)
    }

    static func resource(_ status: [String: JSONValue]) -> ResourceMetrics {
        ResourceMetrics(name: "r0", status: status, counters: ResourceCounterValues(replicatedBytes: 8192, diskErrors: 2),
                        localWriteLatency: .empty, replicatedWriteLatency: .empty)
    }

    @Test func statesAreOneHotAndFollowStatusWordsTheTableDoesNotKnow() {
        let status: [String: JSONValue] = [
            "role": .string("primary"), "connection_state": .string("Connected"), "disk_state": .string("Failed"),
            "replication_state": .string("Paused"), "lag_bytes": .int(4096), "rpo_ms": .int(1500), "mode": .string("sync"),
            "resync_rate": .int(8 << 20), "io": .object(["write_bytes": .int(1 << 20), "errors": .int(1)]),
        ]
        let text = MetricsExposition.render(DaemonMetrics(version: "9.9", node: "alpha", tlsHandshakes: 1, tlsHandshakeFailures: 0,
                                                          resources: [Self.resource(status)]))
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains(#"tandem_build_info{version="9.9",node="alpha"} 1"#))
        #expect(lines.contains(#"tandem_role{resource="r0",role="primary"} 1"#))
        #expect(lines.contains(#"tandem_role{resource="r0",role="secondary"} 0"#))
        #expect(lines.contains(#"tandem_disk_state{resource="r0",state="Failed"} 1"#))
        #expect(lines.contains(#"tandem_disk_state{resource="r0",state="UpToDate"} 0"#))
        // A word not in the table (added by a later change) is still published.
        #expect(lines.contains(#"tandem_replication_state{resource="r0",state="Paused"} 1"#))
        #expect(lines.contains(#"tandem_replication_state{resource="r0",state="Established"} 0"#))
        // Not in status: not published (a secondary has no peer_disk_state).
        #expect(!text.contains("tandem_peer_disk_state{"))
        #expect(lines.contains(#"tandem_lag_bytes{resource="r0"} 4096"#))
        #expect(lines.contains(#"tandem_rpo_seconds{resource="r0"} 1.5"#))
        #expect(lines.contains(#"tandem_resync_rate_limit_bytes_per_second{resource="r0"} 8388608"#))
        #expect(lines.contains(#"tandem_nbd_write_bytes_total{resource="r0"} 1048576"#))
        #expect(lines.contains(#"tandem_replicated_bytes_total{resource="r0"} 8192"#))
        #expect(lines.contains(#"tandem_errors_total{resource="r0",kind="disk"} 2"#))
        #expect(lines.contains(#"tandem_errors_total{resource="r0",kind="nbd"} 1"#))
    }

    @Test func setsockoptFailuresAreADaemonCounter() {
        let text = MetricsExposition.render(DaemonMetrics(version: "1", node: "n", tlsHandshakes: 0, tlsHandshakeFailures: 0,
                                                          socketOptionFailures: 3, resources: []))
        #expect(text.contains("# TYPE tandem_socket_option_failures_total counter\ntandem_socket_option_failures_total 3\n"),
                "\(text)")
    }

    @Test func everyFamilyIsDeclaredOnceBeforeItsSamples() {
        let text = MetricsExposition.render(DaemonMetrics(version: "1", node: "n", tlsHandshakes: 0, tlsHandshakeFailures: 0,
                                                          resources: [Self.resource(["role": .string("secondary")])]),
                                            process: ProcessMetrics.current())
        var declared: [String] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let name = String(line.split(separator: " ")[2])
                #expect(!declared.contains(name), "\(name) declared twice")
                declared.append(name)
            } else if !line.hasPrefix("#") {
                let name = String(line.prefix { $0 != "{" && $0 != " " })
                let family = declared.last ?? ""
                #expect(name == family || name.hasPrefix(family + "_"), "\(name) outside its family \(family)")
            }
        }
        #expect(declared.contains("process_resident_memory_bytes"))
    }

    @Test func httpRequestLinesAreParsedStrictly() {
        func parse(_ text: String) -> HTTPRequestHead? { HTTPRequestHead.parse(Array(text.utf8)) }
        #expect(parse("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") == HTTPRequestHead(method: "GET", path: "/metrics", version: "HTTP/1.1"))
        #expect(parse("GET /metrics HTTP/1.0\n\n")?.path == "/metrics")
        #expect(parse("GET  /metrics HTTP/1.1\r\n\r\n") == nil)
        #expect(parse("GET metrics HTTP/1.1\r\n\r\n") == nil)
        #expect(parse("GET /metrics HTTP/2.0\r\n\r\n") == nil)
        #expect(parse("GET /metrics\r\n\r\n") == nil)
        #expect(HTTPRequestHead.endOfHead(Array("GET / HTTP/1.1\r\nA: b\r\n\r\nbody".utf8)[...]) == 24)
        #expect(HTTPRequestHead.endOfHead(Array("GET / HTTP/1.1\r\nA: b\r\n".utf8)[...]) == nil)
    }
}

@Suite struct ResourceCountersTests {
    @Test func peerLinkFailuresCountByKind() {
        let counters = ResourceCounters()
        counters.count(.tls)
        counters.count(.protocol)
        counters.count(.protocol)
        #expect(counters.values == ResourceCounterValues(protocolErrors: 2, tlsErrors: 1))
    }
}

@Suite struct RequestTraceExpositionTests {
    @Test func tracePhasesArePublishedOnceEnabledAsHistogramsOfSecondsAndTurns() {
        let trace = RequestTrace()
        var untraced = MetricsExpositionTests.resource([:])
        untraced.name = "r1"
        untraced.trace = trace.snapshot
        trace.enable()
        trace.record(.write, .peer, from: TraceStamp(ns: 1_000, turn: 5), to: TraceStamp(ns: 61_000, turn: 7))
        var traced = MetricsExpositionTests.resource([:])
        traced.trace = trace.snapshot
        let text = MetricsExposition.render(DaemonMetrics(version: "9.9", node: "alpha", tlsHandshakes: 0,
                                                          tlsHandshakeFailures: 0, resources: [traced, untraced]))
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains(#"tandem_trace_enabled{resource="r0"} 1"#))
        let labels = #"resource="r0",op="write",phase="peer_round_trip""#
        #expect(lines.contains("tandem_trace_phase_seconds_bucket{\(labels),le=\"0.00005\"} 0"))
        #expect(lines.contains("tandem_trace_phase_seconds_bucket{\(labels),le=\"0.00006\"} 1"))
        #expect(lines.contains("tandem_trace_phase_seconds_bucket{\(labels),le=\"+Inf\"} 1"))
        #expect(lines.contains("tandem_trace_phase_seconds_sum{\(labels)} 6e-05"))
        #expect(lines.contains("tandem_trace_phase_seconds_count{\(labels)} 1"))
        #expect(lines.contains("tandem_trace_phase_loop_turns_bucket{\(labels),le=\"1\"} 0"))
        #expect(lines.contains("tandem_trace_phase_loop_turns_bucket{\(labels),le=\"2\"} 1"))
        #expect(lines.contains("tandem_trace_phase_loop_turns_sum{\(labels)} 2"))
        // A resource whose trace was never enabled, and phases that counted nothing, have no series.
        #expect(!text.contains(#"resource="r1",op"#) && !text.contains(#"tandem_trace_enabled{resource="r1"}"#))
        #expect(!text.contains(#"phase="receive""#))
    }
}
