// PrimaryNode's copy throttle (docs/design-v3.md section 5). A nonzero `resync_rate` is a hard
// cap: the copy reads a chunk only when a TokenBucket admits its bytes, so that the bytes the
// copy reads (and so sends) from the moment the cap was set are at most rate × elapsed +
// burst, burst = max(1 MiB, one chunk, 10 ms of the rate up to the copy's window). `resync_rate: 0` selects the dynamic controller
// (ResyncRateController, DRBD's c-plan-ahead / c-fill-target / c-min-rate): every step it is
// told the copy's bytes released (durable on the peer) and in flight, and whether application
// writes were admitted since the last step, and answers the next step's byte budget; never
// less than `resync_rate_min` × the step, so the copy restores redundancy at the floor however
// busy the application is. Application writes are never throttled here. Time is each event's
// `nowNs`: TandemCore reads no clock. A refused read leaves `resyncRetryAtNs`, the instant the
// bucket (or the controller's next step) will admit it; nothing else wakes a throttled copy
// (no chunk need be in flight), so the driver feeds `.tick` at that instant.

extension PrimaryNode {
    /// The bucket is made at the first copy read under a cap (it needs a `nowNs`) and starts
    /// full: the bound holds from that instant. The controller likewise, at the first copy
    /// read under `resync_rate: 0`.
    struct ResyncThrottle: Sendable {
        /// Set by `.setResyncRate`; nil: the config's rate.
        var rateOverride: UInt64?
        /// Set by `.setResyncRateMin`; nil: the config's floor.
        var rateMinOverride: UInt64?
        var bucket: TokenBucket?
        var dynamic: DynamicRate?
        /// When the last refused read may go (nil: none refused since the last admitted one).
        var retryAtNs: UInt64?
        /// The latest `nowNs` seen: the bucket never sees time go backwards.
        var lastNs: UInt64 = 0
    }

    /// A copy chunk admitted and not yet released, known by its sequence.
    struct CopyChunkInFlight: Sendable {
        var sequence: WriteSequence
        var bytes: UInt64
    }

    /// `resync_rate: 0`: the controller, its budget and what it is told at each step.
    struct DynamicRate: Sendable {
        var controller: ResyncRateController
        /// Bytes the copy may still read; a read goes while it is positive and may take it
        /// below 0 by at most one chunk (a step's budget can be smaller than a chunk).
        var budgetBytes: Int64
        var lastStepNs: UInt64
        /// The newest sequence admitted at the last step, and copy chunks admitted since:
        /// the difference is application writes (and WRITE_ZEROES chunks).
        var sequenceAtStep: WriteSequence
        var chunksSinceStep: UInt64 = 0
        /// `copiedBytes` and `copyLastSequence` as last seen: a change is a new copy chunk.
        var copiedSeenBytes: UInt64
        var chunkSeenSequence: WriteSequence
        /// At most `writesInFlightMax` entries (each holds a sequence of the stream).
        var inFlight: [CopyChunkInFlight] = []
        var releasedSinceStepBytes: UInt64 = 0
        /// The last step's budget as a rate (status: `resync_rate_target_bytes_per_second`).
        var targetBytesPerSecond: UInt64 = 0
    }

    /// The controller's step (DRBD's default SLEEP_TIME, 100 ms, is coarser; 10 ms keeps a
    /// 1 MiB chunk at the floor within a few steps).
    static let resyncStepNs: UInt64 = 10_000_000

    /// `resync_rate` as it stands now, bytes per second (0: the dynamic controller).
    public var resyncRateBytesPerSecond: UInt64 {
        resyncThrottle.rateOverride ?? config.resyncRateBytesPerSecond
    }

    /// `resync_rate_min` as it stands now: the controller's floor, bytes per second.
    public var resyncRateMinBytesPerSecond: UInt64 {
        resyncThrottle.rateMinOverride ?? config.resyncRateMinBytesPerSecond
    }

    /// The dynamic controller's latest budget as a rate (0: not running: a fixed cap, or no
    /// copy read asked yet).
    public var resyncTargetBytesPerSecond: UInt64 {
        resyncRateBytesPerSecond == 0 ? resyncThrottle.dynamic?.targetBytesPerSecond ?? 0 : 0
    }

    /// How much of the cap may go at once beyond one chunk: `resyncBurstNs` of the rate.
    static let resyncBurstNs: UInt64 = 10_000_000

    /// The burst: one chunk always fits, at least 1 MiB may go at once, and so may 10 ms of
    /// the rate, up to the copy's whole window (`copyBuffersMax` chunks; more could not be
    /// in flight anyway). With a burst of one chunk, a high cap (the benchmark's 1 TiB/s)
    /// admitted one chunk per event and refused the next for the microsecond it takes to
    /// earn it, so every chunk also cost a pacer timer and a loop turn; 10 ms of the rate is
    /// below one chunk, so no change, at every cap up to 100 MiB/s.
    var resyncBurstBytes: UInt64 {
        let window = UInt64(config.copyBuffersMax) * UInt64(config.chunkBytes)
        let share = ResyncRateController.scale(resyncRateBytesPerSecond, Self.resyncBurstNs, TokenBucket.nanosPerSecond)
        return max(1 << 20, UInt64(config.chunkBytes), min(share, window))
    }

    /// When a copy read refused by the cap may go: the driver feeds `.tick` then. Nil while
    /// the copy is not throttled (or not running).
    public var resyncRetryAtNs: UInt64? {
        guard copyWanted, resyncPermitted, isPeerReady, !stopping else { return nil }
        return resyncThrottle.retryAtNs
    }

    /// Whether the cap lets the next copy read of `length` bytes go now; if so the read
    /// follows at once and its bytes are taken from the bucket (or the controller's budget).
    mutating func resyncAdmits(_ length: UInt32, nowNs: UInt64) -> Bool {
        let now = max(nowNs, resyncThrottle.lastNs)
        resyncThrottle.lastNs = now
        let rate = resyncRateBytesPerSecond
        guard rate > 0 else { return dynamicAdmits(length, nowNs: now) }
        var bucket = resyncThrottle.bucket
            ?? TokenBucket(rateBytesPerSecond: rate, burstBytes: resyncBurstBytes, nowNs: now)
        let bytes = UInt64(length)
        let admitted = bucket.tryConsume(bytes, nowNs: now)
        resyncThrottle.retryAtNs = admitted ? nil : now + max(1, bucket.delayNs(until: bytes, nowNs: now))
        resyncThrottle.bucket = bucket
        return admitted
    }

    /// `resync_rate: 0`: steps the controller when a step is due, then admits the read while
    /// the budget is positive; refused, the read waits for the next step.
    private mutating func dynamicAdmits(_ length: UInt32, nowNs: UInt64) -> Bool {
        // It starts with the fill target to spend, as the bucket starts full.
        let settings = resyncControllerSettings
        var dynamic = resyncThrottle.dynamic ?? DynamicRate(
            controller: ResyncRateController(settings: settings, nowNs: nowNs),
            budgetBytes: resyncBudgetMaxBytes(settings), lastStepNs: nowNs, sequenceAtStep: primary.lastSequence,
            copiedSeenBytes: copiedBytes, chunkSeenSequence: copyLastSequence)
        observeCopyChunks(&dynamic)
        if nowNs >= dynamic.lastStepNs + Self.resyncStepNs { stepController(&dynamic, nowNs: nowNs) }
        let admitted = dynamic.budgetBytes > 0
        if admitted { dynamic.budgetBytes -= Int64(length) }
        resyncThrottle.retryAtNs = admitted ? nil : dynamic.lastStepNs + Self.resyncStepNs
        resyncThrottle.dynamic = dynamic
        return admitted
    }

    /// Notes the copy chunks admitted since the last look (several reads may end between two
    /// looks: their bytes count under the newest one's sequence, so they leave the in-flight
    /// figure together, a little late), and drops the chunks the peer has released.
    private func observeCopyChunks(_ dynamic: inout DynamicRate) {
        if copiedBytes < dynamic.copiedSeenBytes || primary.lastSequence < dynamic.sequenceAtStep {
            // The copy or the stream started over: what was in flight is the old one's.
            dynamic.inFlight.removeAll()
            dynamic.sequenceAtStep = primary.lastSequence
            dynamic.chunksSinceStep = 0
        } else if copyLastSequence != dynamic.chunkSeenSequence && copiedBytes > dynamic.copiedSeenBytes {
            if dynamic.inFlight.count == config.primary.writesInFlightMax { dynamic.inFlight.removeFirst() }
            dynamic.inFlight.append(CopyChunkInFlight(
                sequence: copyLastSequence, bytes: copiedBytes - dynamic.copiedSeenBytes))
            dynamic.chunksSinceStep += 1
        }
        dynamic.copiedSeenBytes = copiedBytes
        dynamic.chunkSeenSequence = copyLastSequence
        let held = primary.oldestHeldSequence
        let released = dynamic.inFlight.prefix { $0.sequence < held || $0.sequence > primary.lastSequence }
        dynamic.releasedSinceStepBytes += released.reduce(0) { $0 + $1.bytes }
        dynamic.inFlight.removeFirst(released.count)
    }

    /// One controller step: its answer, at least the floor × the step, is added to the budget
    /// (bounded: an idle copy does not hoard a burst).
    private func stepController(_ dynamic: inout DynamicRate, nowNs: UInt64) {
        let sequences = primary.lastSequence - dynamic.sequenceAtStep
        let answer = dynamic.controller.step(
            nowNs: nowNs, completedBytes: dynamic.releasedSinceStepBytes,
            inFlightBytes: dynamic.inFlight.reduce(0) { $0 + $1.bytes },
            applicationActive: sequences > dynamic.chunksSinceStep)
        let elapsedNs = min(nowNs - dynamic.lastStepNs, Self.resyncStepNs * 10)
        let floorBytes = ResyncRateController.scale(resyncRateMinBytesPerSecond, elapsedNs, TokenBucket.nanosPerSecond)
        let grantBytes = max(answer, floorBytes)
        dynamic.budgetBytes = min(dynamic.budgetBytes + Int64(clamping: grantBytes),
                                  resyncBudgetMaxBytes(dynamic.controller.settings))
        dynamic.targetBytesPerSecond = max(
            ResyncRateController.scale(answer, TokenBucket.nanosPerSecond, max(elapsedNs, 1)), resyncRateMinBytesPerSecond)
        dynamic.lastStepNs = nowNs
        dynamic.sequenceAtStep = primary.lastSequence
        dynamic.chunksSinceStep = 0
        dynamic.releasedSinceStepBytes = 0
    }

    /// What the budget may hold: the fill target (at least a chunk).
    private func resyncBudgetMaxBytes(_ settings: ResyncRateController.Settings) -> Int64 {
        Int64(max(UInt64(config.chunkBytes), settings.fillTargetBytes))
    }

    var resyncControllerSettings: ResyncRateController.Settings {
        ResyncRateController.Settings(stepNs: Self.resyncStepNs, rateMinBytesPerSecond: resyncRateMinBytesPerSecond)
    }

    /// `.setResyncRate`: the new cap holds from now on. Tokens earned at the old rate are
    /// kept (at most the burst); from the controller, a new bucket starts full.
    mutating func setResyncRate(_ rate: UInt64, nowNs: UInt64) {
        resyncThrottle.rateOverride = rate
        resyncThrottle.retryAtNs = nil
        guard rate > 0 else {
            resyncThrottle.bucket = nil
            return
        }
        let now = max(nowNs, resyncThrottle.lastNs)
        resyncThrottle.lastNs = now
        let burst = resyncBurstBytes
        resyncThrottle.bucket?.setRate(rate, burstBytes: burst, nowNs: now)
    }

    /// `.setResyncRateMin`: the controller's floor from its next step on.
    mutating func setResyncRateMin(_ rate: UInt64) {
        precondition(rate > 0 && rate <= ResyncRateController.Settings().rateMaxBytesPerSecond, "resync_rate_min \(rate)")
        resyncThrottle.rateMinOverride = rate
        let settings = resyncControllerSettings
        resyncThrottle.dynamic?.controller.update(settings: settings)
    }
}
