// ConfigKeyDocs: the documentation of every ConfigKey for docs/tunables.md: unit, range and
// advice beside the key; the default is read from DaemonConfig() and the flag from
// ConfigKey.flag. Every key is read once, at start-up: none changes while the daemon runs.
// The switches are exhaustive, so a new key does not compile until it is documented.
import TandemControl

extension ConfigKey {
    public var tunableDoc: TunableDoc {
        TunableDoc(
            name: rawValue, unit: docUnit, defaultText: DaemonConfig().documentedValue(self),
            range: docRange, bounds: docBounds, live: false, advice: docAdvice)
    }

    var docUnit: String {
        switch self {
        case .nodeName: "name"
        case .stateDir, .controlSocket, .tlsCA, .tlsCert, .tlsKey: "path"
        case .controlGroup: "group name"
        case .listen, .metricsListen: "host:port"
        case .logLevel: "word"
        case .bufferPoolBytes, .maxRequestBytes: "bytes"
        case .ringEntries, .maxRequestsPerConnection, .resyncConcurrencyMax: "count"
        case .pingIntervalMs, .pingTimeoutMs: "ms"
        }
    }

    var docRange: String {
        switch self {
        case .nodeName: "1–64 of `A-Z a-z 0-9 - _ .`, not starting with `.`"
        case .stateDir: "absolute path"
        case .controlSocket: "absolute path ≤ 107 bytes"
        case .controlGroup: "an existing group"
        case .listen, .metricsListen: "port 1–65535"
        case .logLevel: Self.logLevels.map { "`\($0)`" }.joined(separator: ", ")
        case .bufferPoolBytes: "1 MiB – 4 GiB, multiple of 4096"
        case .ringEntries: "power of two, 8 – 32768"
        case .maxRequestsPerConnection: "1 – 4096"
        case .maxRequestBytes: "4096 – 32 MiB, ≤ `buffer_pool_bytes`"
        case .tlsCA, .tlsCert, .tlsKey: "absolute path of a PEM file; all three or none"
        case .pingIntervalMs: "1000 – 60000"
        case .pingTimeoutMs: "2000 – 600000, ≥ 2 × `ping_interval_ms`"
        case .resyncConcurrencyMax: "1 – 1024"
        }
    }

    /// The integer bounds `docRange` states; tests probe them against ConfigValidation.
    var docBounds: ClosedRange<Int64>? {
        switch self {
        case .bufferPoolBytes: 1 << 20...4 << 30
        case .ringEntries: 8...32768
        case .maxRequestsPerConnection: 1...4096
        case .maxRequestBytes: 4096...32 << 20
        case .pingIntervalMs: 1000...60000
        case .pingTimeoutMs: 2000...600_000
        case .resyncConcurrencyMax: 1...1024
        default: nil
        }
    }

    var docAdvice: String {
        switch self {
        case .nodeName:
            "This node's name. Peers' certificates must name the node they expect, and it appears in logs. Set it on every node; the default only suits a single test machine."
        case .stateDir:
            "Where resources are persisted (`resources/<name>.json`) and their replication metadata lives. A local, durable filesystem that survives reboots, or resources are forgotten."
        case .controlSocket:
            "The Unix socket of the control plane and `tandemctl`. Change it only to run several daemons on one host (tests) or where `/run` is unavailable; pass the same path to `tandemctl --socket`."
        case .controlGroup:
            "Besides root and the daemon's user, members of this group may use the control socket (and the NBD sockets). Set it to let an unprivileged control plane (a CSI driver, Pacemaker's `haclient`) drive Tandem."
        case .listen:
            "Where the replication link accepts the peer (the secondary side). Bind it to the replication network's address on hosts with several networks."
        case .metricsListen:
            "Address for Prometheus metrics over HTTP (`GET /metrics`, docs/metrics.md); bind it to a management network or localhost: the endpoint has no TLS or authentication."
        case .logLevel:
            "Messages at this level and above go to stderr (the journal). `info` reports state changes and refused control requests; `debug` adds per-connection detail."
        case .bufferPoolBytes:
            "Data-path memory, allocated and registered with io_uring at start-up: it bounds the payload of all requests in flight. Raise it for many resources or deep client queues (`spilled_writes` growing in `status` is a sign); lower it on small hosts."
        case .ringEntries:
            "Submission queue size of each io_uring (the completion queue is four times larger). Raise it for very deep queues across many resources."
        case .maxRequestsPerConnection:
            "NBD requests one connection may have in flight before the daemon stops reading from it. Raise it for clients that queue deeper than 128; lower it to share the buffer pool more fairly between many connections."
        case .maxRequestBytes:
            "The largest NBD request payload, advertised as the maximum block size; clients split larger I/O. Lower it only with a small buffer pool."
        case .tlsCA:
            "The CA both nodes' certificates chain to. Without TLS material the daemon serves standalone resources only."
        case .tlsCert:
            "This node's certificate; it must name `node_name`."
        case .tlsKey:
            "This node's private key (keep it mode 0600)."
        case .pingIntervalMs:
            "A peer link on which nothing has arrived for this long is sent a Ping (the peer answers with a Pong). Anything received counts, so a busy link sends none. Checked once a second, so a Ping goes out up to 1 s after this."
        case .resyncConcurrencyMax:
            "How many of this daemon's resources copy (a full copy or a catch-up) at once, DRBD's `resync-after` idea without the ordering: many resources on one disk resync a few at a time instead of thrashing it together. The others report `replication_state: PausedSync` (events `resync-paused`, `resync-resumed`) and copy nothing until a slot frees; slots go in the order the copies asked. Raise it when the resources sit on separate disks. `set` without a resource name changes it on the running daemon (`{\"cmd\":\"set\",\"resync_concurrency_max\":8}`, `tandemctl set resync_concurrency_max=8`) until it restarts: a raise starts waiting copies at once, a lower lets running ones finish and only makes new ones wait."
        case .pingTimeoutMs:
            "A peer link on which nothing at all has arrived for this long is closed as dead, and the primary stops waiting for the peer: it is how a peer host that vanished without a TCP reset (power loss, a cut cable, a hung host) is noticed, between this time and 1 s later. A link's handshake must also finish within it. It also bounds how long a diskless primary's stop (shutdown, `disable`) waits for its peer to confirm durable the writes acknowledged through it (docs/replication.md *Disk failures*); the daemon's shutdown waits that much longer for its resources. Lower it to fail over or degrade sooner; raise it on links that can stall for longer without the peer being gone."
        }
    }
}

extension DaemonConfig {
    /// A key's value as docs/tunables.md shows a default.
    func documentedValue(_ key: ConfigKey) -> String {
        func text(_ value: String?) -> String { value.map { "`\($0)`" } ?? "unset" }
        func bytes(_ value: UInt64) -> String { "\(value) (\(ByteSize.format(value)))" }
        switch key {
        case .nodeName: return text(nodeName)
        case .stateDir: return text(stateDir)
        case .controlSocket: return text(controlSocket)
        case .controlGroup: return text(controlGroup)
        case .listen: return text(listen)
        case .metricsListen: return text(metricsListen)
        case .logLevel: return text(logLevel)
        case .bufferPoolBytes: return bytes(bufferPoolBytes)
        case .ringEntries: return "\(ringEntries)"
        case .maxRequestsPerConnection: return "\(maxRequestsPerConnection)"
        case .maxRequestBytes: return bytes(UInt64(maxRequestBytes))
        case .tlsCA: return text(tlsCA)
        case .tlsCert: return text(tlsCert)
        case .tlsKey: return text(tlsKey)
        case .pingIntervalMs: return "\(pingIntervalMs)"
        case .pingTimeoutMs: return "\(pingTimeoutMs)"
        case .resyncConcurrencyMax: return "\(resyncConcurrencyMax)"
        }
    }
}
