// RPOPacingController: `rpo_target_ms`'s write pacing. Pure: fed the lag (the RPO age, the lag
// bytes) and the bytes the peer confirmed durable, with their `nowNs`; it answers with the
// delay a write of a given length waits before it is admitted (so before it is acknowledged).
// PrimaryNode+Adaptive spaces admissions by it.
//
// The signal is the projected RPO: the higher of the oldest unconfirmed write's age and the
// time the link needs to carry the lag bytes at the measured drain rate (where the newest write
// will be when it is confirmed). Below half of `startFraction` of the target nothing is paced.
// Above it writes are admitted at the drain rate scaled linearly: 1.5 times it where pacing
// begins, the drain rate itself at `startFraction` (the lag holds steady), 0 at the target. A write's delay is its length over that
// rate, at most `delayMaxNs`. When the RPO age stays above the target with the delay at its
// maximum for `delayMaxNs`, pacing cannot hold the target (the link carries less than writes
// paced at the maximum delay): `cannotHold` says so, and the node goes Ahead.

public struct RPOPacingController: Sendable {
    public struct Settings: Sendable, Hashable {
        /// `rpo_target_ms`.
        public var targetNs: UInt64
        /// `rpo_pacing_max_ms`: the longest a write is delayed.
        public var delayMaxNs: UInt64
        /// At this fraction of the target writes are admitted at the drain rate; pacing begins
        /// at half of it.
        public var startFraction: Double
        /// The drain rate is measured over windows of at least this long.
        public var sampleWindowNs: UInt64
        /// Only for the simulator's seeded-fault tests (nil in production): the controller
        /// starts with it.
        public var testingFault: RPOPacingTestingFault?

        public init(targetNs: UInt64, delayMaxNs: UInt64, startFraction: Double = 0.5, sampleWindowNs: UInt64 = 100_000_000) {
            precondition(targetNs > 0 && delayMaxNs > 0, "RPO target or pacing maximum 0")
            precondition(startFraction > 0 && startFraction < 1 && sampleWindowNs > 0)
            self.targetNs = targetNs
            self.delayMaxNs = delayMaxNs
            self.startFraction = startFraction
            self.sampleWindowNs = sampleWindowNs
        }
    }

    public let settings: Settings
    /// Bytes per second the peer confirmed durable, smoothed (0: not measured yet).
    public private(set) var drainBytesPerSecond: Double = 0
    /// The rate writes are admitted at while pacing (nil: not pacing).
    public private(set) var admitBytesPerSecond: Double?
    /// The projected RPO at the last update.
    public private(set) var projectedNs: UInt64 = 0
    /// The RPO age has stayed above the target with pacing at its maximum for `delayMaxNs`.
    public private(set) var cannotHold = false
    /// How often pacing could not hold the target.
    public private(set) var misses: UInt64 = 0
    /// Below where pacing begins: the bytes that may still be admitted unpaced before the
    /// projection would reach it (infinite while the drain is not measured). Without it a queue
    /// the pacer had held went in all at once the moment pacing stopped, and the lag jumped
    /// past the target (the simulator's pacing model, seed 135: 0.2 → 1.6 MB in 1 ms).
    public private(set) var unpacedBudgetBytes: Double = .infinity
    private var windowStartNs: UInt64?
    private var windowStartBytes: UInt64 = 0
    private var overSinceNs: UInt64?
    /// Only for the simulator's seeded-fault tests (nil in production): `settings`' own.
    var testingFault: RPOPacingTestingFault? { settings.testingFault }

    public init(settings: Settings) { self.settings = settings }

    /// One look: the RPO age, the lag bytes and the peer's durable byte count so far.
    /// True when pacing has just found it cannot hold the target.
    public mutating func update(ageNs: UInt64, lagBytes: UInt64, peerDurableBytes: UInt64, nowNs: UInt64) -> Bool {
        sampleDrain(peerDurableBytes, nowNs: nowNs)
        let target = Double(settings.targetNs)
        var projected = Double(ageNs)
        if drainBytesPerSecond > 0 {
            projected = max(projected, Double(lagBytes) / drainBytesPerSecond * 1e9)
        } else if lagBytes > 0 && ageNs > 0 {
            projected = max(projected, target)  // nothing drains: the lag only grows
        }
        projectedNs = UInt64(min(projected, 1e18))
        // The scale is 1 (admit at the drain rate: the lag holds) at `startFraction` of the
        // target, 0 at the target, and 1.5 where pacing begins (half of `startFraction`): it
        // fades in, so that pacing never stops abruptly and lets a queue's worth in at once.
        let steady = target * settings.startFraction
        if projected <= steady / 2 {
            admitBytesPerSecond = nil
            unpacedBudgetBytes = drainBytesPerSecond > 0
                ? max(0, steady / 2 / 1e9 * drainBytesPerSecond - Double(lagBytes)) : .infinity
        } else {
            let scale = max(0, (target - projected) / (target - steady))
            admitBytesPerSecond = drainBytesPerSecond * scale
        }
        return checkHold(ageNs: ageNs, nowNs: nowNs)
    }

    /// The delay before a write of `lengthBytes` is admitted now (0: not pacing).
    public func delayNs(lengthBytes: UInt64) -> UInt64 {
        guard let rate = admitBytesPerSecond else { return 0 }
        return delayNs(lengthBytes: lengthBytes, atBytesPerSecond: rate)
    }

    /// `lengthBytes` at `rate`, at most `delayMaxNs` (the maximum when nothing is admitted).
    private func delayNs(lengthBytes: UInt64, atBytesPerSecond rate: Double) -> UInt64 {
        guard rate > 0 else { return settings.delayMaxNs }
        if testingFault == .delayUncapped { return UInt64(min(1e15, Double(lengthBytes) / rate * 1e9)) }
        return UInt64(min(Double(settings.delayMaxNs), Double(lengthBytes) / rate * 1e9))
    }

    /// Admits a write of `lengthBytes` now and answers how long the next admission waits:
    /// `delayNs` while pacing; below where pacing begins, 0 while the unpaced budget lasts, then
    /// the rate pacing begins at (1.5 times the drain rate) until the next `update`.
    public mutating func admit(lengthBytes: UInt64) -> UInt64 {
        guard admitBytesPerSecond == nil else { return delayNs(lengthBytes: lengthBytes) }
        if testingFault == .releasesQueueAtOnce || unpacedBudgetBytes >= Double(lengthBytes) {
            unpacedBudgetBytes -= Double(lengthBytes)
            return 0
        }
        unpacedBudgetBytes = 0
        return delayNs(lengthBytes: lengthBytes, atBytesPerSecond: 1.5 * drainBytesPerSecond)
    }

    /// What a copy sharing the stream may hold in flight: the drain rate over the part of the
    /// target pacing leaves free, half of what lies above `startFraction` (a quarter of the
    /// target by default), so that an application write sent behind the copy still meets the
    /// target where pacing holds it. 0 while the drain is not measured.
    public var copyInFlightBytesMax: UInt64 {
        UInt64(drainBytesPerSecond * Double(settings.targetNs) / 1e9 * (1 - settings.startFraction) / 2)
    }

    /// Pacing is at its maximum delay for a write of this length.
    public func atMaximum(lengthBytes: UInt64) -> Bool { delayNs(lengthBytes: lengthBytes) >= settings.delayMaxNs }

    /// The peer left the stream (Ahead): the lag is tracked in the bitmap, nothing is paced,
    /// and the next stream starts measuring afresh.
    public mutating func reset() {
        admitBytesPerSecond = nil
        unpacedBudgetBytes = .infinity
        projectedNs = 0
        cannotHold = false
        overSinceNs = nil
        windowStartNs = nil
        drainBytesPerSecond = 0
    }

    private mutating func sampleDrain(_ bytes: UInt64, nowNs: UInt64) {
        guard let start = windowStartNs, bytes >= windowStartBytes, nowNs >= start else {
            windowStartNs = nowNs
            windowStartBytes = bytes
            return
        }
        let elapsed = nowNs - start
        guard elapsed >= settings.sampleWindowNs else { return }
        let rate = Double(bytes - windowStartBytes) / (Double(elapsed) / 1e9)
        // A window where nothing waited says nothing of the link: keep the last rate then.
        // Weighted toward the new window: a link whose rate drops must be followed within a
        // few windows, or the projection trails the lag it should foresee.
        if testingFault == .ignoresSlowerWindows, rate < drainBytesPerSecond {
            windowStartNs = nowNs
            windowStartBytes = bytes
            return
        }
        if rate > 0 || admitBytesPerSecond != nil {
            drainBytesPerSecond = drainBytesPerSecond == 0 ? rate : 0.25 * drainBytesPerSecond + 0.75 * rate
        }
        windowStartNs = nowNs
        windowStartBytes = bytes
    }

    private mutating func checkHold(ageNs: UInt64, nowNs: UInt64) -> Bool {
        let maxed = admitBytesPerSecond.map { $0 <= 0 || projectedNs >= settings.targetNs } ?? false
        guard ageNs > settings.targetNs, maxed else {
            overSinceNs = nil
            if ageNs <= settings.targetNs { cannotHold = false }
            return false
        }
        let since = overSinceNs ?? nowNs
        overSinceNs = since
        let waitNs = testingFault == .missesWithoutWaiting ? 0 : settings.delayMaxNs
        guard !cannotHold, nowNs - since >= waitNs else { return false }
        cannotHold = true
        misses += 1
        return true
    }
}

/// A deliberately wrong pacer, only for proving that the simulator's pacing checker fails.
public enum RPOPacingTestingFault: Sendable, Hashable {
    /// A write's delay is its length over the admission rate, not capped at `delayMaxNs`.
    case delayUncapped
    /// A window that drained slower than the smoothed rate is ignored: a link that slows is
    /// never followed.
    case ignoresSlowerWindows
    /// Says the target cannot be held (and so the node goes Ahead) as soon as the RPO age is
    /// above it, without pacing at the maximum for `delayMaxNs` first.
    case missesWithoutWaiting
    /// Below where pacing begins every write is admitted at once, however many the pacer had
    /// held: the queue goes in together (the controller before its unpaced budget).
    case releasesQueueAtOnce
    /// The node feeds the pacer a copy's chunks as application writes and lets the copy fill
    /// its half of the buffer (PrimaryNode+Adaptive before 2026-12-07): a catch-up on a slow
    /// link says the target missed and goes Ahead again and again.
    case copyCountsAsApplication
}
