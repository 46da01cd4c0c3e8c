// ResourceCounters and DaemonCounters: the plain counters the data path keeps for the metrics
// endpoint. Loop thread only: they are incremented where the event happens (no lock, no
// allocation) and read on the loop thread when a scrape asks (MetricsServer hands the read to
// the loop with EventLoop.submitAndWait). A resource's counters live as long as the resource,
// across enable/disable and role changes, so the counters never go backwards.
import TandemIO

/// Why a peer link ended badly, for `tandem_errors_total{kind=...}`.
enum PeerLinkFailure {
    /// The TLS layer failed (handshake, certificate, record layer).
    case tls
    /// The peer broke the replication protocol (bad frame, wrong message, CRC mismatch).
    case `protocol`
}

final class ResourceCounters {
    /// Local volume writes: submit to completion (NBD's own writes and the replicator's).
    let localWriteLatency = LatencyHistogram()
    /// Sync mode: a write handed to the replicator until it is acknowledged to the client
    /// (local completion and the peer's acknowledgement).
    let replicatedWriteLatency = LatencyHistogram()
    /// The per-request phase trace (off unless enabled with the `trace` command); shared by
    /// the NBD export and the replicators.
    let trace = RequestTrace()
    /// Primary: payload bytes of application writes sent to the peer (re-sends included).
    var replicatedBytes: UInt64 = 0
    /// Primary: payload bytes of the initial full copy sent to the peer.
    var resyncedBytes: UInt64 = 0
    /// Primary: activity-log transactions written (one 4 KiB write and a data sync each).
    var activityLogWrites: UInt64 = 0
    /// Primary: volume flushes before an evicting transaction (a leaving extent written since
    /// the last one), and each transaction from the node's request to its answer (the volume
    /// flush included): the activity log's cost under a working set larger than the log.
    var activityLogVolumeFlushes: UInt64 = 0
    let activityLogLatency = LatencyHistogram()
    /// Primary: each held write's wait for its transaction (held → issued), and the
    /// transactions written while another was still in flight (docs/benchmarks.md, *The
    /// activity log at QD32*).
    let activityLogHoldLatency = LatencyHistogram()
    var activityLogOverlappingWrites: UInt64 = 0
    /// Secondary: payload bytes of Data frames received from the primary.
    var receivedBytes: UInt64 = 0
    var protocolErrors: UInt64 = 0
    var tlsErrors: UInt64 = 0

    // Read balancing (issue 16 §4).
    /// Primary: application reads the peer answered with their bytes, and those bytes.
    var readsServedByPeer: UInt64 = 0
    var readBytesServedByPeer: UInt64 = 0
    /// Primary: reads sent to the peer that came back unserved and were read here.
    var peerReadFallbacks: UInt64 = 0
    /// Secondary: ReadRequests this node served from its volume, and those it refused.
    var readsServedForPeer: UInt64 = 0
    var readsRefusedForPeer: UInt64 = 0

    func count(_ failure: PeerLinkFailure) {
        switch failure {
        case .tls: tlsErrors += 1
        case .protocol: protocolErrors += 1
        }
    }

    var values: ResourceCounterValues {
        ResourceCounterValues(
            replicatedBytes: replicatedBytes, resyncedBytes: resyncedBytes, receivedBytes: receivedBytes,
            diskErrors: 0, protocolErrors: protocolErrors, tlsErrors: tlsErrors)
    }
}

/// Daemon-wide counters (the peer listener's handshakes belong to no resource yet).
final class DaemonCounters {
    /// TLS handshakes completed on peer links, both directions.
    var tlsHandshakes: UInt64 = 0
    /// Peer links that ended before their TLS handshake completed.
    var tlsHandshakeFailures: UInt64 = 0
}
