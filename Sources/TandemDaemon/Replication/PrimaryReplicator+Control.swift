// PrimaryReplicator's control: what the resource asks of a running primary replicator —
// enable, disable, the planned failover's drain and hand-over, live resync rates, stop (a
// pure move out of PrimaryReplicator.swift).
import TandemCore

extension PrimaryReplicator {
    func enable() { feed(.enable) }

    func disable() { feed(.disable) }

    /// Stops taking writes and calls `done` once every admitted write is answered and
    /// confirmed durable by the peer (planned failover).
    func drain(_ done: @escaping () -> Void) {
        onDrained = done
        feed(.drain)
    }

    /// Diskless, before a disable's stop: calls `done` once the peer holds every write
    /// acknowledged through it durably (nil), or could not (why); admission holds meanwhile and,
    /// after a success, until the stop (PrimaryNode+PeerDrain).
    func drainPeerBeforeStop(_ done: @escaping (String?) -> Void) {
        onPeerDrained = done
        feed(.drainPeerBeforeStop)
    }

    /// After a drain for a planned failover: stops with the link kept, flushes, runs
    /// `recordDemotion` (which must make the demotion durable before it returns), then tells
    /// the peer it may promote, hangs up and calls `done` (PrimaryNode's `.handOver`).
    func handOver(recordDemotion: @escaping () -> Void, done: @escaping () -> Void) {
        onRecordDemotion = recordDemotion
        onStopped = done
        feed(.handOver)
    }

    /// `set resync_rate`: the copy's cap from now on (0: the dynamic controller).
    func setResyncRate(_ bytesPerSecond: UInt64) { feed(.setResyncRate(bytesPerSecond: bytesPerSecond)) }

    /// `set resync_rate_min`: the dynamic controller's floor from now on.
    func setResyncRateMin(_ bytesPerSecond: UInt64) { feed(.setResyncRateMin(bytesPerSecond: bytesPerSecond)) }

    var isConnectedToPeer: Bool { link?.isEstablished == true }

    var isDrained: Bool { node.isDrained }

    /// `servingAlone`: the operator disabled replication and this node goes on serving alone
    /// (`.stopToServeAlone`).
    func stop(servingAlone: Bool = false, _ done: @escaping () -> Void) {
        readRemoteReadsLocally()
        onStopped = done
        failPendingResize("replication stopped before the peer answered")
        feed(servingAlone ? .stopToServeAlone : .stop)
    }

    var isCleanForStop: Bool { node.isCleanForStop }
}
