// LinkLiveness: when a peer link is alive, from what has arrived on it. A link must finish
// its handshake within `timeoutNs` of its start; once established, it is idle when nothing
// has arrived for `pingIntervalNs` (then a Ping is due, at most one per interval) and dead
// when nothing has arrived for `timeoutNs`. Anything received counts, so a busy link sends
// no Pings. No I/O and no clock reads: the driver passes the time and whether bytes arrived
// since its last check, once per tick.

public struct LinkLivenessConfig: Sendable, Hashable {
    public var pingIntervalNs: UInt64
    public var timeoutNs: UInt64

    public init(pingIntervalNs: UInt64, timeoutNs: UInt64) {
        precondition(pingIntervalNs > 0 && timeoutNs > pingIntervalNs, "a link must be pinged before it times out")
        self.pingIntervalNs = pingIntervalNs
        self.timeoutNs = timeoutNs
    }
}

public struct LinkLiveness: Sendable {
    public enum Verdict: Sendable, Equatable {
        case alive
        /// Nothing arrived for a ping interval: send a Ping.
        case ping
        /// End the link; the reason says what was missed and for how long.
        case dead(String)
    }

    public let config: LinkLivenessConfig
    public private(set) var isEstablished = false
    private let startedNs: UInt64
    /// When bytes were last seen arriving (at a check, or the start).
    private var heardNs: UInt64
    private var pingedNs: UInt64?

    public init(config: LinkLivenessConfig, nowNs: UInt64) {
        self.config = config
        startedNs = nowNs
        heardNs = nowNs
    }

    /// The handshake finished: idle time counts from here.
    public mutating func established(nowNs: UInt64) {
        isEstablished = true
        heardNs = nowNs
    }

    /// `heard`: bytes arrived since the previous check.
    public mutating func check(nowNs: UInt64, heard: Bool) -> Verdict {
        if heard { heardNs = max(heardNs, nowNs) }
        let timeoutMs = config.timeoutNs / 1_000_000
        guard isEstablished else {
            guard nowNs &- startedNs >= config.timeoutNs else { return .alive }
            return .dead("handshake not finished within \(timeoutMs) ms")
        }
        let silentNs = nowNs &- heardNs
        if silentNs >= config.timeoutNs {
            return .dead("nothing received from the peer for \((silentNs / 1_000_000)) ms (ping_timeout_ms \(timeoutMs))")
        }
        guard silentNs >= config.pingIntervalNs else { return .alive }
        if let pingedNs, nowNs &- pingedNs < config.pingIntervalNs { return .alive }
        pingedNs = nowNs
        return .ping
    }
}
