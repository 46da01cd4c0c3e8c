// TokenBucket: the hard cap of `resync_rate` and `bandwidth` (docs/design-v3.md section 5).
// Guarantee: over any interval starting at init or at the last rate change, the bytes
// admitted are at most rate × elapsed + burst. Tokens are kept in nanobyte units (bytes ×
// 10^9) so that refills are exact integers: no rounding can creep above the bound. Time
// comes in as `nowNs` (monotonic); TandemCore reads no clock.

public struct TokenBucket: Equatable, Sendable {
    static let nanosPerSecond: UInt64 = 1_000_000_000

    public private(set) var rateBytesPerSecond: UInt64
    public private(set) var burstBytes: UInt64
    /// Bytes × 10^9; never above burstBytes × 10^9.
    private var tokensNanobytes: UInt64
    private var lastNs: UInt64

    /// Starts full: the first `burstBytes` go at once.
    public init(rateBytesPerSecond: UInt64, burstBytes: UInt64, nowNs: UInt64) {
        precondition(rateBytesPerSecond > 0, "a token bucket needs a positive rate (0 selects the dynamic controller)")
        precondition(burstBytes > 0 && burstBytes <= (UInt64.max / Self.nanosPerSecond), "burst \(burstBytes) out of range")
        self.rateBytesPerSecond = rateBytesPerSecond
        self.burstBytes = burstBytes
        self.tokensNanobytes = burstBytes * Self.nanosPerSecond
        self.lastNs = nowNs
    }

    private var capacityNanobytes: UInt64 { burstBytes * Self.nanosPerSecond }

    private mutating func refill(nowNs: UInt64) {
        precondition(nowNs >= lastNs, "time went backwards: \(nowNs) < \(lastNs)")
        let missing = capacityNanobytes - tokensNanobytes
        // Past this many ns the bucket is full anyway; capping keeps the product in range.
        let fullAfterNs = missing / rateBytesPerSecond + 1
        let elapsedNs = min(nowNs - lastNs, fullAfterNs)
        let (product, overflow) = elapsedNs.multipliedReportingOverflow(by: rateBytesPerSecond)
        tokensNanobytes = overflow ? capacityNanobytes : min(capacityNanobytes, tokensNanobytes + min(product, missing))
        lastNs = nowNs
    }

    /// Bytes that may be sent now.
    public mutating func availableBytes(nowNs: UInt64) -> UInt64 {
        refill(nowNs: nowNs)
        return tokensNanobytes / Self.nanosPerSecond
    }

    /// Admits `bytes` if the bound allows it now. A request never fits if it exceeds the
    /// burst: regions are at most 1 MiB and the burst is at least one region.
    public mutating func tryConsume(_ bytes: UInt64, nowNs: UInt64) -> Bool {
        precondition(bytes <= burstBytes, "a request of \(bytes) bytes exceeds the burst of \(burstBytes)")
        refill(nowNs: nowNs)
        let needed = bytes * Self.nanosPerSecond
        guard tokensNanobytes >= needed else { return false }
        tokensNanobytes -= needed
        return true
    }

    /// Nanoseconds from `nowNs` until `bytes` may be sent (0: now). For the driver's timer.
    public mutating func delayNs(until bytes: UInt64, nowNs: UInt64) -> UInt64 {
        precondition(bytes <= burstBytes, "a request of \(bytes) bytes exceeds the burst of \(burstBytes)")
        refill(nowNs: nowNs)
        let needed = bytes * Self.nanosPerSecond
        guard tokensNanobytes < needed else { return 0 }
        let missing = needed - tokensNanobytes
        return (missing + rateBytesPerSecond - 1) / rateBytesPerSecond
    }

    /// A live change (`set resync_rate`): tokens earned so far at the old rate are kept (at
    /// most the burst), so from the change on the bound holds with the new rate.
    public mutating func setRate(_ rate: UInt64, nowNs: UInt64) {
        precondition(rate > 0, "a token bucket needs a positive rate")
        refill(nowNs: nowNs)
        rateBytesPerSecond = rate
    }

    /// A live change of rate and burst: as `setRate`, and the tokens kept are at most the
    /// new burst (a smaller burst drops what exceeds it; a larger one fills up from here).
    public mutating func setRate(_ rate: UInt64, burstBytes burst: UInt64, nowNs: UInt64) {
        precondition(burst > 0 && burst <= (UInt64.max / Self.nanosPerSecond), "burst \(burst) out of range")
        setRate(rate, nowNs: nowNs)
        burstBytes = burst
        tokensNanobytes = min(tokensNanobytes, capacityNanobytes)
    }
}
