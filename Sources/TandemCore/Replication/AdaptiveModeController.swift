// AdaptiveModeController: `mode: adaptive`'s decision, sync or async, from what the peer's
// acknowledgements show. Pure: fed observations with their `nowNs`, it answers with a switch
// or nothing; PrimaryNode+Adaptive feeds it and applies the switch to writes admitted after it.
//
// Sync while the peer applies writes within `latencyBoundNs`. Once every observation for
// `switchAfterNs` (the hysteresis) is above the bound, async. Back to sync once the async queue
// has drained (no write waits for the peer longer than the bound, no catch-up is due) and the
// acknowledgements are within the bound, both for `switchAfterNs`. A flapping link therefore
// switches at most once per `switchAfterNs` each way.

public struct AdaptiveModeController: Sendable {
    public struct Settings: Sendable, Hashable {
        /// `adaptive_latency_ms`: the slowest peer acknowledgement (admission to DataAck) that
        /// still counts as in time.
        public var latencyBoundNs: UInt64
        /// `adaptive_switch_ms`: how long the latency must stay above (or, for the way back,
        /// within) the bound before the mode switches.
        public var switchAfterNs: UInt64

        public init(latencyBoundNs: UInt64, switchAfterNs: UInt64) {
            precondition(latencyBoundNs > 0, "adaptive latency bound 0")
            self.latencyBoundNs = latencyBoundNs
            self.switchAfterNs = switchAfterNs
        }
    }

    /// One look at the link: the slowest acknowledgement since the last look or the age of the
    /// oldest write still waiting for its acknowledgement, whichever is higher; whether the
    /// peer is out of the stream (Ahead: nothing can be sync); whether the async queue is
    /// drained (nothing waits for the peer longer than the bound, no catch-up due).
    public struct Observation: Sendable, Hashable {
        public var latencyNs: UInt64
        public var peerOutOfStream: Bool
        public var drained: Bool

        public init(latencyNs: UInt64, peerOutOfStream: Bool = false, drained: Bool) {
            self.latencyNs = latencyNs
            self.peerOutOfStream = peerOutOfStream
            self.drained = drained
        }
    }

    public struct Switch: Sendable, Hashable {
        public var to: ReplicationAckMode
        public var reason: String
    }

    public let settings: Settings
    /// How writes admitted now are acknowledged. Adaptive starts sync.
    public private(set) var mode: ReplicationAckMode = .sync
    public private(set) var switches: UInt64 = 0
    public private(set) var lastReason: String?
    public private(set) var lastSwitchNs: UInt64 = 0
    /// Since when every observation was above the bound (sync) / within it and drained (async).
    private var conditionSinceNs: UInt64?

    public init(settings: Settings) { self.settings = settings }

    /// When the pending switch is due if nothing changes (nil: none pending); the driver looks
    /// again then, since no acknowledgement may arrive to wake it.
    public var decisionDueNs: UInt64? { conditionSinceNs.map { $0 + settings.switchAfterNs } }

    public mutating func observe(_ seen: Observation, nowNs: UInt64) -> Switch? {
        let bound = settings.latencyBoundNs
        switch mode {
        case .sync:
            if seen.peerOutOfStream {
                return switchTo(.async, "the peer is out of the stream (Ahead): writes are acknowledged on this copy", nowNs)
            }
            guard seen.latencyNs > bound else { conditionSinceNs = nil; return nil }
            // Above since the moment the oldest waiting write crossed the bound, not since
            // this look: a stall is timed from when it began to matter.
            let crossedNs = nowNs - min(seen.latencyNs - bound, nowNs)
            let since = min(conditionSinceNs ?? crossedNs, nowNs)
            conditionSinceNs = since
            guard nowNs - since >= settings.switchAfterNs else { return nil }
            return switchTo(.async, "peer acknowledgements took \(seen.latencyNs / 1_000_000) ms, above "
                + "adaptive_latency_ms \(bound / 1_000_000) for \((nowNs - since) / 1_000_000) ms", nowNs)
        case .async:
            guard !seen.peerOutOfStream, seen.drained, seen.latencyNs <= bound else { conditionSinceNs = nil; return nil }
            let since = conditionSinceNs ?? nowNs
            conditionSinceNs = since
            guard nowNs - since >= settings.switchAfterNs else { return nil }
            return switchTo(.sync, "the async queue drained and peer acknowledgements were within "
                + "adaptive_latency_ms \(bound / 1_000_000) for \((nowNs - since) / 1_000_000) ms", nowNs)
        }
    }

    private mutating func switchTo(_ next: ReplicationAckMode, _ reason: String, _ nowNs: UInt64) -> Switch {
        mode = next
        switches += 1
        lastReason = reason
        lastSwitchNs = nowNs
        conditionSinceNs = nil
        return Switch(to: next, reason: reason)
    }
}
