// RequestTrace: a resource's per-request phase trace (docs/metrics.md "Request phase trace").
// Each hop of a request (NBD receive, admission, local I/O, hand-over to the replicator, the
// Data frame staged, the peer's DataAck, the reply sent) takes a stamp — the monotonic clock
// and the event loop's turn number — and the time and turns between two hops are counted
// into a fixed-bucket histogram per phase. Off by default: then each hop costs one branch on
// `enabled` and nothing else. Storage is allocated the first time the trace is enabled (a
// control command, not the data path) and kept; recording allocates nothing and takes no
// lock. Loop thread only: hops are recorded there, and the control command and the metrics
// scrape read and reset it there (EventLoop.submitAndWait).
import Glibc

/// A hop's time (MonotonicClock) and loop turn (EventLoop.turn). `ns == 0`: not traced (the
/// trace was off when the request passed that hop), and nothing is recorded from it.
public struct TraceStamp: Sendable, Equatable {
    public var ns: UInt64
    public var turn: UInt64

    public init(ns: UInt64, turn: UInt64) {
        self.ns = ns
        self.turn = turn
    }

    public static let none = TraceStamp(ns: 0, turn: 0)

    @inline(__always) public var isSet: Bool { ns != 0 }
}

/// What a traced request is: phases of reads and writes are kept apart (a read's local I/O
/// and a write's differ by an order of magnitude). Flushes, trims and zeroes are not traced.
/// `copy`: a resync's copy chunk on the primary, from its read to its release (CopyTrace).
public enum TraceOperation: Int, CaseIterable, Sendable {
    case read, write, copy

    public var label: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .copy: "copy"
        }
    }
}

/// The phases, in the order a request meets them. The label is the metrics' `phase` value.
public enum TracePhase: Int, CaseIterable, Sendable {
    /// NBD: the receive that carried the request's header → its payload is in (admitted).
    case receive
    /// Admitted → issued to the volume or handed to the replicator (waits behind an
    /// overlapping read-modify-write, if any).
    case admit
    /// Local volume I/O: submitted to the ring → completed.
    case local
    /// Pair, primary: handed to the replicator → its Data frame encoded and staged on the
    /// peer link (the node's admission, the frame's CRC32C, the copy into the staging
    /// buffer). The link encrypts what a turn staged when the turn ends: after this phase.
    case send
    /// Pair, primary: Data frame staged → the peer's DataAck handled here. On the primary's
    /// clock: the TLS encryption at the turn's end, the wire both ways, the secondary's
    /// receive, write and acknowledgement, and the decryption of the ack.
    case peer
    /// Pair, primary: handed to the replicator → answered (local write and peer ack done).
    case replicate
    /// The request answered → its reply's sendmsg completed.
    case reply
    /// NBD: header received → reply sent.
    case total
    /// Secondary: a Data frame handed over by the peer link (decrypted, framed) → its write
    /// submitted (CRC32C check, copy out of the frame, the node's decision).
    case secondaryReceive
    /// Secondary: the write submitted → completed.
    case secondaryApply
    /// Secondary: the write completed → its DataAck staged on the link (encrypted, like
    /// every message, when the turn ends).
    case secondaryAck
    /// Secondary: the frame handed over → its DataAck staged.
    case secondaryTotal
    /// Secondary: a group-commit flush of the volume submitted → completed.
    case secondaryFlush
    /// Secondary: the first write completed after the last DurableAck → the next DurableAck
    /// staged (the group commit's wait, its flush and the record of the durable epoch).
    case secondaryDurable
    /// Copy, primary: the chunk's read submitted → completed.
    case copyRead
    /// Copy: read completed → its Data frame handed to the link (the node's admission, the
    /// bandwidth cap, the turn's other work before it).
    case copyAdmit
    /// Copy: handed to the link → encrypted (the payload's CRC32C and the TLS encryption,
    /// done at once for a chunk, after what the turn staged before it).
    case copyEncrypt
    /// Copy: encrypted → the last byte of its ciphertext taken by the socket (the bytes queued
    /// before it, the turn's end, TCP's window).
    case copySocket
    /// Copy: on the socket → the peer's DataAck handled (the wire, the secondary's receive,
    /// decryption, write and ack, the ack's way back).
    case copyApplied
    /// Copy: DataAck → released (the peer's DurableAck of its epoch: its group commit).
    case copyDurable
    /// Copy: read submitted → released (the chunk's buffer free again).
    case copyTotal

    public var label: String {
        switch self {
        case .receive: "receive"
        case .admit: "admit"
        case .local: "local_io"
        case .send: "send"
        case .peer: "peer_round_trip"
        case .replicate: "replicate"
        case .reply: "reply"
        case .total: "total"
        case .secondaryReceive: "secondary_receive"
        case .secondaryApply: "secondary_apply"
        case .secondaryAck: "secondary_ack"
        case .secondaryTotal: "secondary_total"
        case .secondaryFlush: "secondary_flush"
        case .secondaryDurable: "secondary_durable"
        case .copyRead: "copy_read"
        case .copyAdmit: "copy_admit"
        case .copyEncrypt: "copy_encrypt"
        case .copySocket: "copy_socket"
        case .copyApplied: "copy_peer_applied"
        case .copyDurable: "copy_durable"
        case .copyTotal: "copy_total"
        }
    }
}

/// Stamps of one replicated write, kept by sequence number (the replicator's identity for a
/// write after admission). Primary: `start` handed over, `local` local write submitted,
/// `link` Data frame queued. Secondary: `start` frame handed over, `local` write submitted
/// and then completed.
public struct SequenceStamps {
    public var sequence: UInt64 = .max
    public var start = TraceStamp.none
    public var local = TraceStamp.none
    public var link = TraceStamp.none
}

/// Loop thread only (plain counters).
public final class RequestTrace {
    /// Upper bounds of the time buckets, in nanoseconds: 1 µs to 1 s, ten a decade in steps
    /// of 20-33 % (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8), finer than LatencyHistogram's: most
    /// phases take microseconds, and `tandemctl trace` reads percentiles from these buckets.
    /// +Inf is implicit.
    public static let boundsNs: [UInt64] = {
        var bounds: [UInt64] = []
        var decade: UInt64 = 1_000
        while decade < 1_000_000_000 {
            for step: UInt64 in [10, 12, 15, 20, 25, 30, 40, 50, 60, 80] { bounds.append(decade * step / 10) }
            decade *= 10
        }
        bounds.append(1_000_000_000)
        return bounds
    }()
    /// Upper bounds of the loop-turn buckets (turns between two hops); +Inf is implicit.
    public static let turnBounds: [UInt64] = [0, 1, 2, 3, 4, 5, 6, 8, 16]
    /// Sequence stamps kept: a write whose slot was reused before its ack is not recorded.
    public static let sequenceSlots = 4096

    static let timeBuckets = boundsNs.count + 1
    static let turnBuckets = turnBounds.count + 1
    /// Per (operation, phase): time buckets, count, sum (ns), turn buckets, turn sum.
    static let stride = timeBuckets + 2 + turnBuckets + 1
    static let recorders = TraceOperation.allCases.count * TracePhase.allCases.count

    public private(set) var enabled = false
    /// nil until the first `enable`.
    private var counts: UnsafeMutableBufferPointer<UInt64>?
    private var sequences: UnsafeMutableBufferPointer<SequenceStamps>?
    /// MonotonicClock time of the last reset (enable), 0 before.
    public private(set) var sinceNs: UInt64 = 0
    /// The resync copy's hops and depths (CopyTrace), reset with the rest.
    public let copy = CopyTrace()

    public init() {}

    deinit {
        counts?.deallocate()
        sequences?.deallocate()
    }

    /// Starts tracing with every count at zero (allocates on the first call).
    public func enable() {
        if counts == nil {
            counts = .allocate(capacity: Self.stride * Self.recorders)
            sequences = .allocate(capacity: Self.sequenceSlots)
        }
        counts!.initialize(repeating: 0)
        sequences!.initialize(repeating: SequenceStamps())
        sinceNs = MonotonicClock.nowNs()
        copy.reset(nowNs: sinceNs)
        enabled = true
    }

    /// Stops tracing; the counts stay readable (and published) until the next `enable`.
    public func disable() { enabled = false }

    /// Counts one hop-to-hop interval. `from` unset (the request passed that hop while the
    /// trace was off) records nothing.
    @inline(__always)
    public func record(_ operation: TraceOperation, _ phase: TracePhase, from start: TraceStamp, to end: TraceStamp) {
        guard enabled, start.isSet, let counts else { return }
        let base = (operation.rawValue * TracePhase.allCases.count + phase.rawValue) * Self.stride
        let durationNs = end.ns > start.ns ? end.ns - start.ns : 0
        let turns = end.turn > start.turn ? end.turn - start.turn : 0
        let index = Self.bucket(durationNs)
        counts[base + index] &+= 1
        counts[base + Self.timeBuckets] &+= 1
        counts[base + Self.timeBuckets + 1] &+= durationNs
        let turnBase = base + Self.timeBuckets + 2
        var turnIndex = 0
        let turnBounds = Self.turnBounds
        while turnIndex < turnBounds.count && turns > turnBounds[turnIndex] { turnIndex += 1 }
        counts[turnBase + turnIndex] &+= 1
        counts[turnBase + Self.turnBuckets] &+= turns
    }

    /// The first bucket whose bound is at least `durationNs` (binary search; the last, +Inf,
    /// past every bound).
    @inline(__always)
    static func bucket(_ durationNs: UInt64) -> Int {
        let bounds = boundsNs
        var low = 0
        var high = bounds.count
        while low < high {
            let middle = (low + high) / 2
            if durationNs > bounds[middle] { low = middle + 1 } else { high = middle }
        }
        return low
    }

    // MARK: stamps by sequence (replicated writes)

    /// The stamps slot of `sequence`; the caller checks `.sequence` before trusting it.
    /// Only while enabled.
    @inline(__always)
    public func stamps(_ sequence: UInt64) -> UnsafeMutablePointer<SequenceStamps> {
        sequences!.baseAddress! + Int(sequence % UInt64(Self.sequenceSlots))
    }

    /// The stamps of `sequence` if it was begun (`begin`) and its slot not reused since.
    @inline(__always)
    public func existingStamps(_ sequence: UInt64) -> UnsafeMutablePointer<SequenceStamps>? {
        guard enabled else { return nil }
        let slot = stamps(sequence)
        return slot.pointee.sequence == sequence ? slot : nil
    }

    /// Claims the slot of `sequence`, starting at `start`. Only while enabled.
    @inline(__always)
    public func begin(_ sequence: UInt64, at start: TraceStamp) -> UnsafeMutablePointer<SequenceStamps> {
        let slot = stamps(sequence)
        slot.pointee = SequenceStamps(sequence: sequence, start: start)
        return slot
    }

    // MARK: reading (control command, scrape)

    /// A copy of every phase that counted something (allocates; not the data path).
    public var snapshot: RequestTraceSnapshot {
        var phases: [PhaseSnapshot] = []
        if let counts {
            for operation in TraceOperation.allCases {
                for phase in TracePhase.allCases {
                    let base = (operation.rawValue * TracePhase.allCases.count + phase.rawValue) * Self.stride
                    let count = counts[base + Self.timeBuckets]
                    guard count > 0 else { continue }
                    let turnBase = base + Self.timeBuckets + 2
                    phases.append(PhaseSnapshot(
                        operation: operation, phase: phase,
                        bucketCounts: Array(counts[base..<(base + Self.timeBuckets)]), count: count,
                        sumNs: counts[base + Self.timeBuckets + 1],
                        turnBucketCounts: Array(counts[turnBase..<(turnBase + Self.turnBuckets)]),
                        turnSum: counts[turnBase + Self.turnBuckets]))
                }
            }
        }
        let now = MonotonicClock.nowNs()
        let age = sinceNs == 0 ? 0 : now - sinceNs
        let copyDepths = copy.snapshot(nowNs: now)
        return RequestTraceSnapshot(enabled: enabled, everEnabled: counts != nil, ageNs: age, phases: phases,
                                    copy: copyDepths.spanNs > 0 ? copyDepths : nil)
    }
}

/// One phase of one operation, as counted (non-cumulative buckets; the last is +Inf).
public struct PhaseSnapshot: Sendable, Equatable {
    public var operation: TraceOperation
    public var phase: TracePhase
    public var bucketCounts: [UInt64]
    public var count: UInt64
    public var sumNs: UInt64
    public var turnBucketCounts: [UInt64]
    public var turnSum: UInt64

    public init(operation: TraceOperation, phase: TracePhase, bucketCounts: [UInt64], count: UInt64, sumNs: UInt64,
                turnBucketCounts: [UInt64], turnSum: UInt64) {
        self.operation = operation
        self.phase = phase
        self.bucketCounts = bucketCounts
        self.count = count
        self.sumNs = sumNs
        self.turnBucketCounts = turnBucketCounts
        self.turnSum = turnSum
    }

    /// The `quantile` (0...1) of the time, interpolated linearly inside its bucket as
    /// Prometheus' histogram_quantile does; the +Inf bucket answers its lower bound.
    public func quantileNs(_ quantile: Double) -> Double {
        Self.quantile(quantile, counts: bucketCounts, bounds: RequestTrace.boundsNs, total: count)
    }

    /// The same for loop turns (whole turns: the smallest bound covering the quantile).
    public func quantileTurns(_ quantile: Double) -> UInt64 {
        let rank = quantile * Double(count)
        var seen: UInt64 = 0
        for (index, bucket) in turnBucketCounts.enumerated() {
            seen += bucket
            if Double(seen) >= rank && seen > 0 {
                return index < RequestTrace.turnBounds.count ? RequestTrace.turnBounds[index] : RequestTrace.turnBounds.last! + 1
            }
        }
        return RequestTrace.turnBounds.last! + 1
    }

    static func quantile(_ quantile: Double, counts: [UInt64], bounds: [UInt64], total: UInt64) -> Double {
        guard total > 0 else { return 0 }
        let rank = quantile * Double(total)
        var seen: UInt64 = 0
        for (index, bucket) in counts.enumerated() {
            let before = seen
            seen += bucket
            guard Double(seen) >= rank, bucket > 0 else { continue }
            guard index < bounds.count else { return Double(bounds.last!) }
            let lower = index == 0 ? 0 : Double(bounds[index - 1])
            let upper = Double(bounds[index])
            return lower + (upper - lower) * (rank - Double(before)) / Double(bucket)
        }
        return Double(bounds.last!)
    }
}

/// What the control command and a scrape publish.
public struct RequestTraceSnapshot: Sendable, Equatable {
    public var enabled: Bool
    /// Enabled at least once: the trace's metrics are published from then on.
    public var everEnabled: Bool
    /// Time since the counts were last reset (the last `enable`).
    public var ageNs: UInt64
    public var phases: [PhaseSnapshot]
    /// The copy's depths, once a copy chunk was traced (CopyTrace).
    public var copy: CopyTraceSnapshot?

    public init(enabled: Bool, everEnabled: Bool, ageNs: UInt64, phases: [PhaseSnapshot], copy: CopyTraceSnapshot? = nil) {
        self.enabled = enabled
        self.everEnabled = everEnabled
        self.ageNs = ageNs
        self.phases = phases
        self.copy = copy
    }

    public static let off = RequestTraceSnapshot(enabled: false, everEnabled: false, ageNs: 0, phases: [])
}

extension EventLoop {
    /// Now, for a trace hop: the clock and this loop's turn.
    @inline(__always)
    public func traceStamp() -> TraceStamp { TraceStamp(ns: MonotonicClock.nowNs(), turn: turn) }
}
