// Taking the metrics snapshot on the loop thread: the resources' `status` (the very fields the
// control socket answers with) and their counters, copied in one loop turn.
import TandemIO

extension Resource {
    /// Loop thread only.
    var metrics: ResourceMetrics {
        var values = counters.values
        values.diskErrors = health.errorCount  // every failed disk result, NBD's and the replicators'
        var metrics = ResourceMetrics(
            name: spec.name, status: status, counters: values,
            localWriteLatency: counters.localWriteLatency.snapshot,
            replicatedWriteLatency: counters.replicatedWriteLatency.snapshot)
        metrics.trace = counters.trace.snapshot
        return metrics
    }
}

extension ResourceRegistry {
    /// Loop thread only.
    func metrics(version: String) -> DaemonMetrics {
        DaemonMetrics(
            version: version, node: config.nodeName, tlsHandshakes: context.counters.tlsHandshakes,
            tlsHandshakeFailures: context.counters.tlsHandshakeFailures,
            socketOptionFailures: Sockets.optionFailureCount.load(ordering: .relaxed), resources: sortedResources.map(\.metrics))
    }
}
