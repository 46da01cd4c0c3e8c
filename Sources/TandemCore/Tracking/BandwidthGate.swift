// BandwidthGate: the `bandwidth` cap (docs/design-v3.md section 5, docs/replication.md,
// *Bandwidth*): every frame a primary hands to its link (the stream's writes and the copy's
// chunks, which travel as writes, barriers, SyncComplete, digest requests) passes here in
// order. A frame goes when a TokenBucket admits its bytes and nothing waits before it;
// otherwise it waits in a bounded FIFO, so frames never overtake each other (a SyncComplete
// never passes the write it names). So the bytes handed to the link from the moment the cap
// was set are at most rate × elapsed + burst. What waits here is unconfirmed, so the stream's
// own bounds apply: a sync primary's writes wait, an async one's buffer fills and it goes
// Ahead, as with a slow link. No I/O and no clock: `nowNs` comes with each call; the driver
// arms a timer for `retryAtNs`. Confined to one thread.

public struct BandwidthGate<Frame: Sendable>: Sendable {
    public enum Offer: Sendable, Equatable {
        /// Send it now.
        case send
        /// It waits (nextReady hands it out later, in order).
        case waiting
        /// The FIFO is full: the frame was not taken (the driver drops the link).
        case full
    }

    /// 0: no cap.
    public private(set) var rateBytesPerSecond: UInt64
    public let burstBytes: UInt64
    private var bucket: TokenBucket?
    private var waiting: BoundedQueue<(frame: Frame, bytes: UInt64)>
    private var lastNs: UInt64 = 0
    /// Bytes admitted since the gate was made (status and metrics).
    public private(set) var admittedBytes: UInt64 = 0

    /// `burstBytes` must hold the largest frame; `framesMax` bounds what may wait.
    public init(rateBytesPerSecond: UInt64, burstBytes: UInt64, framesMax: Int) {
        precondition(burstBytes > 0 && framesMax > 0)
        self.rateBytesPerSecond = rateBytesPerSecond
        self.burstBytes = burstBytes
        waiting = BoundedQueue(capacity: framesMax)
    }

    public var waitingFrames: Int { waiting.count }
    public var isIdle: Bool { waiting.isEmpty }

    /// A frame of `bytes` (at most the burst) to send after everything offered before it.
    public mutating func offer(_ frame: Frame, bytes: UInt64, nowNs: UInt64) -> Offer {
        precondition(bytes <= burstBytes, "a frame of \(bytes) bytes exceeds the burst of \(burstBytes)")
        let now = advance(nowNs)
        if waiting.isEmpty && admits(bytes, nowNs: now) { return .send }
        guard !waiting.isFull else { return .full }
        waiting.append((frame, bytes))
        return .waiting
    }

    /// The oldest waiting frame if the cap lets it go now (call until nil).
    public mutating func nextReady(nowNs: UInt64) -> Frame? {
        let now = advance(nowNs)
        guard let head = waiting.first, admits(head.bytes, nowNs: now) else { return nil }
        return waiting.removeFirst().frame
    }

    /// When the oldest waiting frame may go (nil: nothing waits).
    public mutating func retryAtNs(nowNs: UInt64) -> UInt64? {
        let now = advance(nowNs)
        guard let head = waiting.first else { return nil }
        guard var bucket else { return now }
        let delay = bucket.delayNs(until: head.bytes, nowNs: now)
        self.bucket = bucket
        return now + max(1, delay)
    }

    /// The link is gone: what waits was for it (the stream re-sends what is unconfirmed).
    public mutating func dropWaiting() { waiting.removeAll() }

    /// `set bandwidth`: the new cap from now on (tokens earned so far are kept, at most the
    /// burst); 0 lifts it, and what waits may go at once.
    public mutating func setRate(_ rate: UInt64, nowNs: UInt64) {
        let now = advance(nowNs)
        rateBytesPerSecond = rate
        if rate == 0 {
            bucket = nil
        } else {
            bucket?.setRate(rate, nowNs: now)
        }
    }

    private mutating func advance(_ nowNs: UInt64) -> UInt64 {
        lastNs = max(lastNs, nowNs)
        return lastNs
    }

    /// The bucket is made at the first frame under a cap and starts full.
    private mutating func admits(_ bytes: UInt64, nowNs: UInt64) -> Bool {
        guard rateBytesPerSecond > 0 else {
            admittedBytes += bytes
            return true
        }
        var bucket = self.bucket ?? TokenBucket(rateBytesPerSecond: rateBytesPerSecond, burstBytes: burstBytes, nowNs: nowNs)
        let admitted = bucket.tryConsume(bytes, nowNs: nowNs)
        self.bucket = bucket
        if admitted { admittedBytes += bytes }
        return admitted
    }
}
