// MetricsExposition: what the metrics endpoint publishes (docs/metrics.md lists every family).
// Gauges and state words are read from the same `status` fields the control socket reports,
// taken in the same loop turn as the counters, so a scrape and `status` cannot disagree
// about what they both show. Rendering runs on the HTTP thread, not on the loop.
import TandemControl
import TandemCore
import TandemIO

/// Counters a resource keeps besides its status (ResourceCounters, copied).
public struct ResourceCounterValues: Sendable, Equatable {
    public var replicatedBytes: UInt64 = 0
    public var resyncedBytes: UInt64 = 0
    public var receivedBytes: UInt64 = 0
    public var diskErrors: UInt64 = 0
    public var protocolErrors: UInt64 = 0
    public var tlsErrors: UInt64 = 0

    public init(replicatedBytes: UInt64 = 0, resyncedBytes: UInt64 = 0, receivedBytes: UInt64 = 0,
                diskErrors: UInt64 = 0, protocolErrors: UInt64 = 0, tlsErrors: UInt64 = 0) {
        self.replicatedBytes = replicatedBytes
        self.resyncedBytes = resyncedBytes
        self.receivedBytes = receivedBytes
        self.diskErrors = diskErrors
        self.protocolErrors = protocolErrors
        self.tlsErrors = tlsErrors
    }
}

/// One resource, as taken on the loop thread at scrape time.
public struct ResourceMetrics: Sendable {
    public var name: String
    /// Exactly what `status` would answer for this resource now.
    public var status: [String: JSONValue]
    public var counters: ResourceCounterValues
    public var localWriteLatency: LatencyHistogramSnapshot
    public var replicatedWriteLatency: LatencyHistogramSnapshot
    /// The request phase trace (`trace` command); published once it was ever enabled.
    public var trace: RequestTraceSnapshot = .off

    public init(name: String, status: [String: JSONValue], counters: ResourceCounterValues,
                localWriteLatency: LatencyHistogramSnapshot, replicatedWriteLatency: LatencyHistogramSnapshot) {
        self.name = name
        self.status = status
        self.counters = counters
        self.localWriteLatency = localWriteLatency
        self.replicatedWriteLatency = replicatedWriteLatency
    }
}

/// The whole daemon, as taken on the loop thread at scrape time.
public struct DaemonMetrics: Sendable {
    public var version: String
    public var node: String
    public var tlsHandshakes: UInt64
    public var tlsHandshakeFailures: UInt64
    /// setsockopt failures of the process (Sockets.optionFailureCount).
    public var socketOptionFailures: UInt64
    public var resources: [ResourceMetrics]

    public init(version: String, node: String, tlsHandshakes: UInt64, tlsHandshakeFailures: UInt64,
                socketOptionFailures: UInt64 = 0, resources: [ResourceMetrics]) {
        self.version = version
        self.node = node
        self.tlsHandshakes = tlsHandshakes
        self.tlsHandshakeFailures = tlsHandshakeFailures
        self.socketOptionFailures = socketOptionFailures
        self.resources = resources
    }
}

public enum MetricsExposition {
    /// State gauges: one series per word (1 for the current one, 0 for the others), so that
    /// alerts can test `== 0` as well as `== 1`. A word not listed here (a state added
    /// later) is still published, with 1, whenever it is the current one.
    static let stateWords: [(family: String, field: String, label: String, words: [String], help: String)] = [
        ("tandem_role", "role", "role", ["primary", "secondary", "standalone"],
         "The resource's role on this node: 1 for the current role, 0 for the others (status: role)."),
        ("tandem_connection_state", "connection_state", "state", ConnectionState.allCases.map(\.rawValue),
         "The peer link's state: 1 for the current state, 0 for the others (status: connection_state)."),
        ("tandem_disk_state", "disk_state", "state",
         DiskState.allCases.map(\.rawValue),
         "This node's copy: 1 for the current disk state, 0 for the others (status: disk_state)."),
        ("tandem_peer_disk_state", "peer_disk_state", "state",
         DiskState.allCases.map(\.rawValue),
         "The peer's copy as this primary knows it: 1 for the current state, 0 for the others (status: peer_disk_state)."),
        ("tandem_replication_state", "replication_state", "state",
         replicationStateWords,
         "The replication stream: 1 for the current state, 0 for the others (status: replication_state)."),
    ]

    /// Both roles' stream words, each once, in declaration order.
    static let replicationStateWords: [String] = {
        var words = ReplicationStreamState.allCases.map(\.rawValue)
        for word in SecondaryStreamState.allCases.map(\.rawValue) where !words.contains(word) { words.append(word) }
        return words
    }()

    /// Gauges copied from a numeric status field; `scale` converts to the base unit.
    static let statusGauges: [(family: String, field: String, scale: Double, help: String)] = [
        ("tandem_volume_size_bytes", "size_bytes", 1, "Size of the resource's volume (status: size_bytes)."),
        ("tandem_out_of_sync_bytes", "out_of_sync_bytes", 1,
         "Bytes the peer's copy is known to lack, to be copied by resync (status: out_of_sync_bytes)."),
        ("tandem_lag_bytes", "lag_bytes", 1,
         "Bytes acknowledged to the application that the secondary has not confirmed durable (status: lag_bytes)."),
        ("tandem_rpo_seconds", "rpo_ms", 0.001,
         "Age of the oldest acknowledged write the secondary has not confirmed durable (status: rpo_ms / 1000)."),
        ("tandem_unconfirmed_bytes", "unconfirmed_bytes", 1,
         "Replication buffer occupancy: admitted writes the secondary has not confirmed (status: unconfirmed_bytes)."),
        ("tandem_resync_progress_ratio", "resync_progress", 1,
         "Fraction of the full copy done, 0 to 1; 1 when none is due (status: resync_progress)."),
        ("tandem_resync_rate_bytes_per_second", "resync_rate_bytes_per_second", 1,
         "Initial copy rate, smoothed over about a second (status: resync_rate_bytes_per_second)."),
        ("tandem_resync_rate_limit_bytes_per_second", "resync_rate", 1,
         "The configured cap on resync traffic, 0 when the dynamic controller paces it (status: resync_rate; changes with set)."),
        ("tandem_resync_rate_min_bytes_per_second", "resync_rate_min", 1,
         "The dynamic controller's floor (status: resync_rate_min; changes with set)."),
        ("tandem_resync_rate_target_bytes_per_second", "resync_rate_target_bytes_per_second", 1,
         "The dynamic controller's latest budget as a rate, 0 under a fixed cap or before the copy's first read (status: resync_rate_target_bytes_per_second)."),
        ("tandem_nbd_clients", "nbd_clients", 1, "NBD client connections open on the export (status: nbd_clients)."),
        ("tandem_bandwidth_limit_bytes_per_second", "bandwidth", 1,
         "The cap on all replication bytes the primary sends, 0 for none (status: bandwidth; changes with set)."),
    ]

    /// Gauges of periodic mode, from the status's `periodic` object (mode periodic only).
    static let periodicGauges: [(family: String, field: String, scale: Double, help: String)] = [
        ("tandem_periodic_period_seconds", "period_s", 1, "Periodic mode: the interval between cycles (status: periodic.period_s)."),
        ("tandem_periodic_cycles_completed", "cycles_completed", 1,
         "Periodic mode: cycles completed since replication started (status: periodic.cycles_completed)."),
        ("tandem_periodic_last_cycle_bytes", "last_cycle_bytes", 1,
         "Periodic mode: bytes the last completed cycle copied (status: periodic.last_cycle_bytes)."),
        ("tandem_periodic_last_cycle_duration_seconds", "last_cycle_duration_ms", 0.001,
         "Periodic mode: how long the last completed cycle took (status: periodic.last_cycle_duration_ms / 1000)."),
        ("tandem_periodic_next_cycle_seconds", "next_cycle_in_ms", 0.001,
         "Periodic mode: time until the next cycle, 0 while one runs or is due (status: periodic.next_cycle_in_ms / 1000)."),
    ]

    public static func render(_ daemon: DaemonMetrics, process: ProcessMetrics? = nil) -> String {
        var writer = PrometheusTextWriter()
        writer.family("tandem_build_info", .gauge, help: "Always 1; the labels name this tandemd's version and node.")
        writer.sample("tandem_build_info", [("version", daemon.version), ("node", daemon.node)], UInt64(1))
        writer.family("tandem_resources", .gauge, help: "Resources configured on this node.")
        writer.sample("tandem_resources", [], UInt64(daemon.resources.count))
        writer.family("tandem_tls_handshakes_total", .counter,
                      help: "TLS handshakes completed on peer links (dialled and accepted).")
        writer.sample("tandem_tls_handshakes_total", [], daemon.tlsHandshakes)
        writer.family("tandem_tls_handshake_failures_total", .counter,
                      help: "Peer links that ended before their TLS handshake completed (refused certificates, wrong CA, not TLS, reset).")
        writer.sample("tandem_tls_handshake_failures_total", [], daemon.tlsHandshakeFailures)
        writer.family("tandem_socket_option_failures_total", .counter,
                      help: "setsockopt calls that failed (each is logged; the socket is refused or served without the option).")
        writer.sample("tandem_socket_option_failures_total", [], daemon.socketOptionFailures)
        renderResources(daemon.resources, into: &writer)
        if let process { process.render(into: &writer) }
        return writer.text
    }

    static func renderResources(_ resources: [ResourceMetrics], into writer: inout PrometheusTextWriter) {
        writer.family("tandem_resource_info", .gauge, help: "Always 1; the labels name the resource's replication mode and peer.")
        for resource in resources {
            let peer: String
            if case .object(let fields)? = resource.status["peer"], case .string(let name)? = fields["name"] {
                peer = name
            } else {
                peer = ""
            }
            writer.sample("tandem_resource_info", [("resource", resource.name), ("mode", string(resource.status["mode"]) ?? ""),
                                                   ("peer", peer)], UInt64(1))
        }
        writer.family("tandem_resource_enabled", .gauge, help: "1 when replication is enabled (status: enabled).")
        for resource in resources where resource.status["enabled"] != nil {
            writer.sample("tandem_resource_enabled", [("resource", resource.name)], UInt64(resource.status["enabled"] == .bool(true) ? 1 : 0))
        }
        for state in stateWords {
            writer.family(state.family, .gauge, help: state.help)
            for resource in resources {
                guard let current = string(resource.status[state.field]) else { continue }
                let words = state.words.contains(current) ? state.words : state.words + [current]
                for word in words {
                    writer.sample(state.family, [("resource", resource.name), (state.label, word)], UInt64(word == current ? 1 : 0))
                }
            }
        }
        for gauge in statusGauges {
            writer.family(gauge.family, .gauge, help: gauge.help)
            for resource in resources {
                guard let value = number(resource.status[gauge.field]) else { continue }
                writer.sample(gauge.family, [("resource", resource.name)], value * gauge.scale)
            }
        }
        for gauge in periodicGauges {
            writer.family(gauge.family, .gauge, help: gauge.help)
            for resource in resources {
                guard case .object(let periodic)? = resource.status["periodic"], let value = number(periodic[gauge.field])
                else { continue }
                writer.sample(gauge.family, [("resource", resource.name)], value * gauge.scale)
            }
        }
        renderCounters(resources, into: &writer)
        renderProfile(resources, into: &writer)
        renderReads(resources, into: &writer)
        writer.family("tandem_local_write_latency_seconds", .histogram,
                      help: "Local volume writes, from submission to completion.")
        for resource in resources {
            writer.histogram("tandem_local_write_latency_seconds", [("resource", resource.name)], resource.localWriteLatency)
        }
        writer.family("tandem_replicated_write_latency_seconds", .histogram,
                      help: "Sync mode: application writes from submission to the replicator until acknowledged (written locally and durable on the peer).")
        for resource in resources {
            writer.histogram("tandem_replicated_write_latency_seconds", [("resource", resource.name)], resource.replicatedWriteLatency)
        }
        renderTraces(resources, into: &writer)
    }

    static func renderCounters(_ resources: [ResourceMetrics], into writer: inout PrometheusTextWriter) {
        func io(_ resource: ResourceMetrics, _ key: String) -> UInt64 {
            guard case .object(let fields)? = resource.status["io"], case .int(let value)? = fields[key] else { return 0 }
            return UInt64(clamping: value)
        }
        writer.family("tandem_nbd_requests_total", .counter, help: "NBD requests answered, by command (status: io.*_requests).")
        for resource in resources {
            for (command, key) in [("read", "read_requests"), ("write", "write_requests"), ("flush", "flush_requests"),
                                   ("other", "other_requests")] {
                writer.sample("tandem_nbd_requests_total", [("resource", resource.name), ("command", command)], io(resource, key))
            }
        }
        let simple: [(family: String, help: String, value: (ResourceMetrics) -> UInt64)] = [
            ("tandem_nbd_read_bytes_total", "Bytes the application read through NBD (status: io.read_bytes).",
             { io($0, "read_bytes") }),
            ("tandem_nbd_write_bytes_total", "Bytes the application wrote through NBD WRITE requests (status: io.write_bytes).",
             { io($0, "write_bytes") }),
            ("tandem_replicated_bytes_total",
             "Primary: payload bytes of application writes sent to the peer, before compression (re-sends after a reconnect count again).",
             { $0.counters.replicatedBytes }),
            ("tandem_resynced_bytes_total", "Primary: payload bytes of the initial full copy sent to the peer.",
             { $0.counters.resyncedBytes }),
            ("tandem_received_bytes_total", "Secondary: payload bytes of writes received from the primary.",
             { $0.counters.receivedBytes }),
        ]
        for counter in simple {
            writer.family(counter.family, .counter, help: counter.help)
            for resource in resources {
                writer.sample(counter.family, [("resource", resource.name)], counter.value(resource))
            }
        }
        writer.family("tandem_errors_total", .counter,
                      help: "Errors by kind: disk (volume I/O failed), protocol (the peer broke the replication protocol), tls (a peer link's TLS failed), nbd (NBD requests answered with an error).")
        for resource in resources {
            let kinds: [(String, UInt64)] = [
                ("disk", resource.counters.diskErrors), ("protocol", resource.counters.protocolErrors),
                ("tls", resource.counters.tlsErrors), ("nbd", io(resource, "errors")),
            ]
            for (kind, value) in kinds {
                writer.sample("tandem_errors_total", [("resource", resource.name), ("kind", kind)], value)
            }
        }
    }

    static func string(_ value: JSONValue?) -> String? {
        if case .string(let text)? = value { return text }
        return nil
    }

    static func number(_ value: JSONValue?) -> Double? {
        switch value {
        case .int(let number)?: return Double(number)
        case .double(let number)?: return number
        case .bool(let flag)?: return flag ? 1 : 0
        default: return nil
        }
    }
}
