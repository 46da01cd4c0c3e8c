// PrimaryReplicator's resync pacer: when `resync_rate` refuses a copy read, nothing else wakes
// the copy (no chunk is in flight, and the loop's tick comes once a second: at 8 MiB/s with a
// 1 MiB burst that would cap the copy near 1 MiB/s). So a loop timer feeds the node a `.tick`
// at the instant it named (`resyncRetryAtNs`), and the copy reads its next chunk then.
import TandemCore

extension PrimaryReplicator {
    /// After every event: arms the timer for the node's retry time unless one fires by then.
    func armResyncPacer() {
        // Also the replication profile's wake-ups (write pacing, adaptive mode's decisions) and
        // a diskless stop's drain deadline (PrimaryNode+PeerDrain: a stopping replicator gets no
        // loop ticks). Compared without an array: this runs after every event, so once or more per write.
        guard let retryNs = peekNode({ Self.earlier(Self.earlier($0.resyncRetryAtNs, $0.profileWakeAtNs), $0.peerDrainDeadlineNs) })
        else { return }
        guard pacerArmedNs == 0 || retryNs < pacerArmedNs else { return }
        pacerArmedNs = retryNs
        context.loop.runAt(deadlineNs: retryNs) { [weak self] in
            // A later, superseded timer finds another deadline armed and does nothing.
            guard let self, self.pacerArmedNs == retryNs else { return }
            self.pacerArmedNs = 0
            self.feed(.tick)
        }
    }

    /// The earlier of two optional instants (nil when neither is set).
    static func earlier(_ first: UInt64?, _ second: UInt64?) -> UInt64? {
        guard let first else { return second }
        guard let second else { return first }
        return min(first, second)
    }
}
