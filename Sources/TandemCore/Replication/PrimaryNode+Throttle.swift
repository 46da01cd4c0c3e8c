// PrimaryNode's `resync_rate` (docs/design-v3.md section 5): the copy reads a chunk only when
// a TokenBucket admits its bytes, so that the bytes the copy reads (and so sends) from the
// moment the cap was set are at most rate × elapsed + burst, burst = max(1 MiB, one chunk).
// Application writes are never throttled here. Time is each event's `nowNs`: TandemCore
// reads no clock. A refused read leaves `resyncRetryAtNs`, the instant the bucket will admit
// it; nothing else wakes a throttled copy (no chunk is in flight), so the driver feeds
// `.tick` at that instant.
// 0 means unthrottled in this version (the dynamic controller, ResyncRateController, is not
// wired yet).

extension PrimaryNode {
    /// The bucket is made at the first copy read under a cap (it needs a `nowNs`) and starts
    /// full: the bound holds from that instant.
    struct ResyncThrottle: Sendable {
        /// Set by `.setResyncRate`; nil: the config's rate.
        var rateOverride: UInt64?
        var bucket: TokenBucket?
        /// When the last refused read may go (nil: none refused since the last admitted one).
        var retryAtNs: UInt64?
        /// The latest `nowNs` seen: the bucket never sees time go backwards.
        var lastNs: UInt64 = 0
    }

    /// `resync_rate` as it stands now, bytes per second (0: unthrottled).
    public var resyncRateBytesPerSecond: UInt64 {
        resyncThrottle.rateOverride ?? config.resyncRateBytesPerSecond
    }

    /// The burst: one chunk always fits, and at least 1 MiB may go at once.
    var resyncBurstBytes: UInt64 { max(1 << 20, UInt64(config.chunkBytes)) }

    /// When a copy read refused by the cap may go: the driver feeds `.tick` then. Nil while
    /// the copy is not throttled (or not running).
    public var resyncRetryAtNs: UInt64? {
        guard copyWanted, isPeerReady, !stopping else { return nil }
        return resyncThrottle.retryAtNs
    }

    /// Whether the cap lets the next copy read of `length` bytes go now. `consuming`: the
    /// read follows at once (its bytes are taken from the bucket); otherwise only whether it
    /// could (the copy then waits for local writes to finish, and asks again).
    mutating func resyncAdmits(_ length: UInt32, consuming: Bool, nowNs: UInt64) -> Bool {
        let rate = resyncRateBytesPerSecond
        guard rate > 0 else {
            resyncThrottle.retryAtNs = nil
            return true
        }
        let now = max(nowNs, resyncThrottle.lastNs)
        resyncThrottle.lastNs = now
        var bucket = resyncThrottle.bucket
            ?? TokenBucket(rateBytesPerSecond: rate, burstBytes: resyncBurstBytes, nowNs: now)
        let bytes = UInt64(length)
        let admitted = consuming ? bucket.tryConsume(bytes, nowNs: now) : bucket.availableBytes(nowNs: now) >= bytes
        resyncThrottle.retryAtNs = admitted ? nil : now + max(1, bucket.delayNs(until: bytes, nowNs: now))
        resyncThrottle.bucket = bucket
        return admitted
    }

    /// `.setResyncRate`: the new cap holds from now on. Tokens earned at the old rate are
    /// kept (at most the burst); from unthrottled, a new bucket starts full.
    mutating func setResyncRate(_ rate: UInt64, nowNs: UInt64) {
        resyncThrottle.rateOverride = rate
        resyncThrottle.retryAtNs = nil
        guard rate > 0 else {
            resyncThrottle.bucket = nil
            return
        }
        let now = max(nowNs, resyncThrottle.lastNs)
        resyncThrottle.lastNs = now
        resyncThrottle.bucket?.setRate(rate, nowNs: now)
    }
}
