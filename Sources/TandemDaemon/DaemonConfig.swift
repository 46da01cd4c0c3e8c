// DaemonConfig: every tandemd setting, its unit and default. The config file and the
// command-line flags both fill this; docs/configuration.md documents each key.

public struct DaemonConfig: Sendable, Equatable {
    /// This node's name; peers' certificates must name it (issue 3).
    public var nodeName: String = "node"
    /// Where resources are persisted (`resources/<name>.json`) and metadata lives.
    public var stateDir: String = "/var/lib/tandem"
    public var controlSocket: String = "/run/tandem/control.sock"
    /// Besides root, members of this group may use the control socket. nil: root only.
    public var controlGroup: String? = nil
    /// Replication listen address "host:port" (used by the secondary, issue 3).
    public var listen: String = "0.0.0.0:7788"
    /// Prometheus metrics "host:port"; nil disables.
    public var metricsListen: String? = nil
    /// trace, debug, info, notice, warning, error, critical.
    public var logLevel: String = "info"
    /// Memory registered with io_uring for the data path, allocated at start-up.
    public var bufferPoolBytes: UInt64 = 32 << 20
    /// Submission queue entries of the io_uring (completion queue is 4x).
    public var ringEntries: UInt32 = 1024
    /// Requests one NBD connection may have in flight before the daemon stops reading it.
    public var maxRequestsPerConnection: UInt32 = 128
    /// Largest NBD request payload accepted (NBD_INFO_BLOCK_SIZE maximum).
    public var maxRequestBytes: UInt32 = 32 << 20
    /// TLS material for the peer link (issue 3).
    public var tlsCA: String? = nil
    public var tlsCert: String? = nil
    public var tlsKey: String? = nil
    /// A peer link on which nothing has arrived for this long is sent a Ping.
    public var pingIntervalMs: UInt32 = 2000
    /// A peer link on which nothing has arrived for this long is closed as dead; a link's
    /// handshake must finish within it too.
    public var pingTimeoutMs: UInt32 = 6000
    /// Resources of this daemon that copy (full copy or catch-up) at once; the others are
    /// PausedSync until a slot frees.
    public var resyncConcurrencyMax: UInt32 = 4

    public init() {}
}
