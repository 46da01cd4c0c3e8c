// LinkLiveness: when a peer link is alive, from what has arrived on it. A link must finish
// its handshake within `timeoutNs` of its start; once established, it is idle when nothing
// has arrived for `pingIntervalNs`, or when this side has sent nothing for that long (then
// a Ping is due, at most one per interval), and dead when nothing has arrived for
// `timeoutNs`. Anything received counts, so a link busy both ways sends no Pings. The
// second rule keeps a slow link alive for the other side: a secondary that only receives (a
// large copy chunk crossing a capped link) has nothing to say, while the primary's own Ping
// waits behind the chunk; so the receiver pings on its free direction. No I/O and no clock
// reads: the driver passes the time and whether bytes arrived, and were sent, since its last
// check, once per tick. A gap between two checks longer than a ping interval is this side's
// own stall (the process was not scheduled, or its loop was busy), not the peer's silence:
// what arrived meanwhile is still waiting to be read, so the gap beyond one interval is not
// counted against the peer. A dead peer is then noticed one stall later, never not at all.

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
    /// When this side last sent anything (at a check, or the start).
    private var sentNs: UInt64
    private var pingedNs: UInt64?
    /// The previous check (or the start).
    private var checkedNs: UInt64

    public init(config: LinkLivenessConfig, nowNs: UInt64) {
        self.config = config
        startedNs = nowNs
        heardNs = nowNs
        sentNs = nowNs
        checkedNs = nowNs
    }

    /// The handshake finished: idle time counts from here.
    public mutating func established(nowNs: UInt64) {
        isEstablished = true
        heardNs = nowNs
        sentNs = nowNs
    }

    /// `heard`: bytes arrived since the previous check; `sent`: this side sent a frame.
    public mutating func check(nowNs: UInt64, heard: Bool, sent: Bool = true) -> Verdict {
        let gapNs = nowNs &- checkedNs
        checkedNs = nowNs
        if gapNs > config.pingIntervalNs {
            // This side stalled: forgive the silence beyond one interval.
            heardNs = min(nowNs, heardNs &+ (gapNs - config.pingIntervalNs))
        }
        if heard { heardNs = max(heardNs, nowNs) }
        if sent { sentNs = max(sentNs, nowNs) }
        let timeoutMs = config.timeoutNs / 1_000_000
        guard isEstablished else {
            guard nowNs &- startedNs >= config.timeoutNs else { return .alive }
            return .dead("handshake not finished within \(timeoutMs) ms")
        }
        let silentNs = nowNs &- heardNs
        if silentNs >= config.timeoutNs {
            return .dead("nothing received from the peer for \((silentNs / 1_000_000)) ms (ping_timeout_ms \(timeoutMs))")
        }
        guard silentNs >= config.pingIntervalNs || nowNs &- sentNs >= config.pingIntervalNs else { return .alive }
        if let pingedNs, nowNs &- pingedNs < config.pingIntervalNs { return .alive }
        pingedNs = nowNs
        return .ping
    }
}
