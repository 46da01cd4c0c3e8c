// CopyTrace: the resync copy's pipeline in the request trace (docs/metrics.md, *Copy trace*).
// A primary's copy chunk passes six hops — read submitted, read complete, handed to the link,
// encrypted, its last ciphertext byte taken by the socket, the peer's DataAck, released (the
// peer's DurableAck; its buffer free) — and each interval is counted as a `copy` phase of the
// RequestTrace. Beside them, how many chunks sit in each stage, integrated over time (the
// mean depth of each stage, the share of time the whole window spends at each occupancy) and
// sampled every `sampleIntervalNs` into a ring, so that a run shows where the window's chunks
// wait. A chunk is named by its copy buffer's slot (CopyBuffers) from its read to its
// release. Off with the request trace: then every hop is one branch. Storage is allocated at
// the first `enable`; recording allocates nothing. Loop thread only.

/// Where a copy chunk is (the depth counters), in the order it passes.
public enum CopyStage: Int, CaseIterable, Sendable {
    /// Read submitted, not complete.
    case reading
    /// Read complete, its Data frame not yet handed to the link (the node's admission).
    case admitting
    /// Handed to the link, its ciphertext not all taken by the socket (encryption, the queue
    /// of ciphertext before it, TCP's window).
    case unsent
    /// On the socket, no DataAck yet.
    case unacknowledged
    /// DataAck handled, not released (the peer's DurableAck of its epoch).
    case undurable

    public var label: String {
        switch self {
        case .reading: "reading"
        case .admitting: "admitting"
        case .unsent: "unsent"
        case .unacknowledged: "unacknowledged"
        case .undurable: "undurable"
        }
    }
}

/// The copy's stamps and depth counters (RequestTrace.copy). Loop thread only.
public final class CopyTrace {
    /// Slots kept: a chunk whose slot is above this is not traced (copyBuffersMax is 64).
    public static let slotsMax = 256
    /// Depth samples kept (the newest), one per `sampleIntervalNs` at most.
    public static let samplesMax = 2048
    public static let sampleIntervalNs: UInt64 = 5_000_000

    struct Chunk {
        var stage: CopyStage?
        var sequence: UInt64 = 0
        var read = TraceStamp.none
        var last = TraceStamp.none
        /// The ciphertext total (TLSWireChannel.ciphertextQueuedBytes) its last byte reaches.
        var mark: UInt64 = 0
    }

    /// One sample: milliseconds since the trace was enabled, then each stage's depth.
    public struct Sample: Sendable, Equatable {
        public var ms: UInt32
        public var depths: [UInt16]
    }

    private var chunks: UnsafeMutableBufferPointer<Chunk>?
    /// Slots of unsent chunks in the order they were encrypted (a ring; their marks rise).
    private var unsentSlots: UnsafeMutableBufferPointer<Int>?
    private var unsentHead = 0
    private var unsentCount = 0
    var depths = [Int](repeating: 0, count: CopyStage.allCases.count)
    /// Per stage, depth × ns summed since the first copy hop.
    private var integralNs = [UInt64](repeating: 0, count: CopyStage.allCases.count)
    /// Per count of chunks held (all stages, up to slotsMax), the ns spent at it.
    private var heldNs = [UInt64](repeating: 0, count: slotsMax + 1)
    private var firstNs: UInt64 = 0
    private var lastChangeNs: UInt64 = 0
    private var sinceNs: UInt64 = 0
    private var samples: UnsafeMutableBufferPointer<(ms: UInt32, depths: (UInt16, UInt16, UInt16, UInt16, UInt16))>?
    private var samplesNext = 0
    private var samplesCount = 0
    private var lastSampleNs: UInt64 = 0

    init() {}

    deinit {
        chunks?.deallocate()
        unsentSlots?.deallocate()
        samples?.deallocate()
    }

    func reset(nowNs: UInt64) {
        if chunks == nil {
            chunks = .allocate(capacity: Self.slotsMax)
            unsentSlots = .allocate(capacity: Self.slotsMax)
            samples = .allocate(capacity: Self.samplesMax)
        }
        chunks!.initialize(repeating: Chunk())
        (unsentHead, unsentCount) = (0, 0)
        for index in depths.indices { (depths[index], integralNs[index]) = (0, 0) }
        for index in heldNs.indices { heldNs[index] = 0 }
        (firstNs, lastChangeNs, sinceNs) = (0, 0, nowNs)
        (samplesNext, samplesCount, lastSampleNs) = (0, 0, 0)
    }

    @inline(__always)
    func chunk(_ slot: Int) -> UnsafeMutablePointer<Chunk>? {
        guard let chunks, slot >= 0, slot < Self.slotsMax else { return nil }
        return chunks.baseAddress! + slot
    }

    /// Moves a chunk between stages (nil: not held), integrating the depths up to `nowNs`.
    func move(_ chunk: UnsafeMutablePointer<Chunk>, to stage: CopyStage?, nowNs: UInt64) {
        integrate(nowNs: nowNs)
        if let from = chunk.pointee.stage { depths[from.rawValue] -= 1 }
        if let stage { depths[stage.rawValue] += 1 }
        chunk.pointee.stage = stage
        sample(nowNs: nowNs)
    }

    private func integrate(nowNs: UInt64) {
        guard firstNs != 0 else {
            (firstNs, lastChangeNs) = (nowNs, nowNs)
            return
        }
        let elapsed = nowNs > lastChangeNs ? nowNs - lastChangeNs : 0
        var held = 0
        for index in depths.indices {
            integralNs[index] &+= UInt64(depths[index]) &* elapsed
            held += depths[index]
        }
        heldNs[min(held, Self.slotsMax)] &+= elapsed
        lastChangeNs = max(lastChangeNs, nowNs)
    }

    private func sample(nowNs: UInt64) {
        guard let samples, lastSampleNs == 0 || nowNs >= lastSampleNs + Self.sampleIntervalNs else { return }
        lastSampleNs = nowNs
        func depth(_ stage: CopyStage) -> UInt16 { UInt16(clamping: depths[stage.rawValue]) }
        let ms = UInt32(clamping: (nowNs - min(sinceNs, nowNs)) / 1_000_000)
        samples[samplesNext] = (ms, (depth(.reading), depth(.admitting), depth(.unsent), depth(.unacknowledged),
                                     depth(.undurable)))
        samplesNext = (samplesNext + 1) % Self.samplesMax
        samplesCount = min(samplesCount + 1, Self.samplesMax)
    }

    // MARK: the unsent queue (in encryption order)

    func pushUnsent(_ slot: Int) {
        guard let unsentSlots, unsentCount < Self.slotsMax else { return }
        unsentSlots[(unsentHead + unsentCount) % Self.slotsMax] = slot
        unsentCount += 1
    }

    /// The oldest unsent chunk's slot, if any.
    var oldestUnsent: Int? { unsentCount > 0 ? unsentSlots![unsentHead] : nil }

    func popUnsent() {
        unsentHead = (unsentHead + 1) % Self.slotsMax
        unsentCount -= 1
    }

    func clearUnsent() { (unsentHead, unsentCount) = (0, 0) }

    // MARK: reading

    /// What the control command publishes (allocates; not the data path).
    public func snapshot(nowNs: UInt64) -> CopyTraceSnapshot {
        let spanNs = firstNs == 0 ? 0 : lastChangeNs - firstNs
        let means = integralNs.map { spanNs == 0 ? 0 : Double($0) / Double(spanNs) }
        var heldShares: [(held: Int, share: Double)] = []
        for (held, ns) in heldNs.enumerated() where ns > 0 && spanNs > 0 {
            heldShares.append((held, Double(ns) / Double(spanNs)))
        }
        var series: [Sample] = []
        if let samples {
            let start = (samplesNext - samplesCount + Self.samplesMax) % Self.samplesMax
            for index in 0..<samplesCount {
                let entry = samples[(start + index) % Self.samplesMax]
                let (a, b, c, d, e) = entry.depths
                series.append(Sample(ms: entry.ms, depths: [a, b, c, d, e]))
            }
        }
        return CopyTraceSnapshot(spanNs: spanNs, meanDepths: means, heldShares: heldShares.map { [Double($0.held), $0.share] },
                                 samples: series)
    }
}

/// The copy's depths as published: the span they cover, each stage's mean depth (in
/// CopyStage order), the share of that span spent at each count of chunks held ([count,
/// share] pairs) and the samples.
public struct CopyTraceSnapshot: Sendable, Equatable {
    public var spanNs: UInt64
    public var meanDepths: [Double]
    public var heldShares: [[Double]]
    public var samples: [CopyTrace.Sample]
}

extension RequestTrace {
    // The hops, from the primary's driver. A chunk's slot is its CopyBuffers slot.

    /// A copy read was submitted into `slot`.
    @inline(__always)
    public func copyReadSubmitted(slot: Int, at now: TraceStamp) {
        guard enabled, let chunk = copy.chunk(slot) else { return }
        chunk.pointee = CopyTrace.Chunk(stage: chunk.pointee.stage, read: now, last: now)
        copy.move(chunk, to: .reading, nowNs: now.ns)
    }

    /// The chunk of `slot`, if it is in `stage`: `phase` counts since its last hop, and it
    /// moves on to `next` (nil: it stays).
    @inline(__always)
    @discardableResult
    func copyHop(_ slot: Int, from stage: CopyStage, _ phase: TracePhase, to next: CopyStage?, at now: TraceStamp)
        -> UnsafeMutablePointer<CopyTrace.Chunk>?
    {
        guard enabled, let chunk = copy.chunk(slot), chunk.pointee.stage == stage else { return nil }
        record(.copy, phase, from: chunk.pointee.last, to: now)
        chunk.pointee.last = now
        if let next { copy.move(chunk, to: next, nowNs: now.ns) }
        return chunk
    }

    /// The read of `slot` completed.
    @inline(__always)
    public func copyReadCompleted(slot: Int, at now: TraceStamp) {
        copyHop(slot, from: .reading, .copyRead, to: .admitting, at: now)
    }

    /// The node admitted the chunk of `slot` under `sequence`.
    @inline(__always)
    public func copyAdmitted(slot: Int, sequence: UInt64) {
        guard enabled, let chunk = copy.chunk(slot) else { return }
        chunk.pointee.sequence = sequence
    }

    /// The chunk's Data frame is about to be prepared and encrypted (its first send only).
    @inline(__always)
    public func copyHanded(slot: Int, at now: TraceStamp) {
        copyHop(slot, from: .admitting, .copyAdmit, to: .unsent, at: now)
    }

    /// The chunk's frame is encrypted; its ciphertext ends at `mark` (the channel's total).
    @inline(__always)
    public func copyEncrypted(slot: Int, mark: UInt64, at now: TraceStamp) {
        guard enabled, copy.chunk(slot)?.pointee.mark == 0,
            let chunk = copyHop(slot, from: .unsent, .copyEncrypt, to: nil, at: now)
        else { return }
        chunk.pointee.mark = mark
        copy.pushUnsent(slot)
    }

    /// The socket has taken the channel's ciphertext through `sentBytes` (its total).
    @inline(__always)
    public func copyCiphertextSent(through sentBytes: UInt64, at now: @autoclosure () -> TraceStamp) {
        guard enabled, var slot = copy.oldestUnsent else { return }
        let stamp = now()
        while true {
            guard let chunk = copy.chunk(slot), chunk.pointee.mark <= sentBytes else { return }
            copy.popUnsent()
            copyHop(slot, from: .unsent, .copySocket, to: .unacknowledged, at: stamp)
            guard let next = copy.oldestUnsent else { return }
            slot = next
        }
    }

    /// The peer's DataAck for the chunk of `slot`.
    @inline(__always)
    public func copyAcknowledged(slot: Int, at now: TraceStamp) {
        copyHop(slot, from: .unacknowledged, .copyApplied, to: .undurable, at: now)
    }

    /// The chunk of `slot` was released (or discarded): its buffer is free.
    @inline(__always)
    public func copyReleased(slot: Int, at now: @autoclosure () -> TraceStamp) {
        guard enabled, let chunk = copy.chunk(slot), chunk.pointee.stage != nil else { return }
        let stamp = now()
        if chunk.pointee.stage == .undurable {
            record(.copy, .copyDurable, from: chunk.pointee.last, to: stamp)
            record(.copy, .copyTotal, from: chunk.pointee.read, to: stamp)
        }
        copy.move(chunk, to: nil, nowNs: stamp.ns)
        chunk.pointee = CopyTrace.Chunk()
    }

    /// The link went down: chunks on their way go back to waiting for a re-send (not traced
    /// again: their stamps would count the outage).
    public func copyLinkLost(at now: TraceStamp) {
        guard enabled, copy.chunk(0) != nil else { return }
        copy.clearUnsent()
        for slot in 0..<CopyTrace.slotsMax {
            let chunk = copy.chunk(slot)!
            guard let stage = chunk.pointee.stage, stage.rawValue >= CopyStage.unsent.rawValue else { continue }
            chunk.pointee.mark = 0
            chunk.pointee.last = .none
            copy.move(chunk, to: .admitting, nowNs: now.ns)
        }
    }
}
