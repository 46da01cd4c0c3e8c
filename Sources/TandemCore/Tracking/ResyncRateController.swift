// ResyncRateController: `resync_rate: 0`, the dynamic controller (docs/design-v3.md section 5,
// docs/tracking.md). It is DRBD's c-plan-ahead / c-fill-target controller (drbd_rs_controller)
// in bytes and nanoseconds: every step it plans, over the next `planAheadNs`, the correction
// that brings the bytes in flight to `fillTargetBytes`, spread evenly over the plan's steps,
// and asks for what completed since the last step plus this step's share of the correction.
// On top of DRBD's c-min-rate rule (throttle resync while the application does I/O, but
// never below the floor) it keeps a ceiling that halves each step the application is active,
// down to `rateMinBytesPerSecond`, and doubles back each idle step, up to the maximum.
// The caller counts bytes completed and in flight and says whether the application did I/O
// since the last step; time comes in as `nowNs`. Step results are bounded by
// rate_max × elapsed, elapsed itself capped at 10 steps (a late timer cannot burst).

public struct ResyncRateController: Sendable {
    public struct Settings: Equatable, Sendable {
        /// `resync_plan_ahead_ms` (c-plan-ahead): how far ahead corrections are spread.
        public var planAheadNs: UInt64
        /// The driver's step interval; plan-ahead / step = the plan's length.
        public var stepNs: UInt64
        /// `resync_fill_target_bytes` (c-fill-target): bytes to keep in flight.
        public var fillTargetBytes: UInt64
        /// `resync_rate_min` (c-min-rate): the floor while the application does I/O.
        public var rateMinBytesPerSecond: UInt64
        /// c-max-rate: the most the controller ever asks for.
        public var rateMaxBytesPerSecond: UInt64

        public static let planStepsMax: UInt64 = 1000

        public init(
            planAheadNs: UInt64 = 200_000_000, stepNs: UInt64 = 10_000_000, fillTargetBytes: UInt64 = 4 << 20,
            rateMinBytesPerSecond: UInt64 = 32 << 20, rateMaxBytesPerSecond: UInt64 = 10 << 30
        ) {
            self.planAheadNs = planAheadNs
            self.stepNs = stepNs
            self.fillTargetBytes = fillTargetBytes
            self.rateMinBytesPerSecond = rateMinBytesPerSecond
            self.rateMaxBytesPerSecond = rateMaxBytesPerSecond
        }

        var planSteps: Int { Int(max(1, planAheadNs / stepNs)) }

        func validate() {
            precondition(stepNs >= 1_000_000 && stepNs <= 1_000_000_000, "step \(stepNs) ns outside 1 ms...1 s")
            precondition(planAheadNs >= stepNs && planAheadNs / stepNs <= Self.planStepsMax, "plan-ahead \(planAheadNs) ns")
            precondition(fillTargetBytes > 0 && fillTargetBytes <= 1 << 40, "fill target \(fillTargetBytes)")
            precondition(rateMinBytesPerSecond > 0 && rateMinBytesPerSecond <= rateMaxBytesPerSecond, "rate floor above the maximum")
            precondition(rateMaxBytesPerSecond <= 1 << 40, "rate maximum \(rateMaxBytesPerSecond)")
        }
    }

    public private(set) var settings: Settings
    /// Corrections planned for the coming steps (DRBD's rs_plan_s), in bytes.
    private var plan: [Int64]
    private var planHead = 0
    private var planTotal: Int64 = 0
    private var lastStepNs: UInt64
    /// The application back-off: halves while the application is active, never below the floor.
    public private(set) var ceilingBytesPerSecond: UInt64

    public init(settings: Settings = Settings(), nowNs: UInt64) {
        settings.validate()
        self.settings = settings
        self.plan = Array(repeating: 0, count: settings.planSteps)
        self.lastStepNs = nowNs
        self.ceilingBytesPerSecond = settings.rateMaxBytesPerSecond
    }

    /// A live `set`: a new plan length starts an empty plan; the ceiling is clamped.
    public mutating func update(settings newSettings: Settings) {
        newSettings.validate()
        if newSettings.planSteps != settings.planSteps {
            plan = Array(repeating: 0, count: newSettings.planSteps)
            planHead = 0
            planTotal = 0
        }
        settings = newSettings
        ceilingBytesPerSecond = min(max(ceilingBytesPerSecond, newSettings.rateMinBytesPerSecond),
                                    newSettings.rateMaxBytesPerSecond)
    }

    /// One step: returns the bytes of resync reads to issue now.
    /// - completedBytes: resync bytes acknowledged since the last step (DRBD's sect_in).
    /// - inFlightBytes: resync bytes issued and not yet acknowledged, after those completions.
    public mutating func step(
        nowNs: UInt64, completedBytes: UInt64, inFlightBytes: UInt64, applicationActive: Bool
    ) -> UInt64 {
        precondition(nowNs >= lastStepNs, "time went backwards")
        let durationNs = min(max(nowNs - lastStepNs, 1), settings.stepNs * 10)
        lastStepNs = nowNs
        // What completed, scaled to a nominal step (a late step is not a faster link).
        let completedPerStep = Int64(clamping: Self.scale(completedBytes, settings.stepNs, durationNs))
        let correction = Int64(clamping: settings.fillTargetBytes) - Int64(clamping: inFlightBytes) - planTotal
        let steps = Int64(plan.count)
        let perStep = correction / steps
        for index in 0..<plan.count { plan[index] += perStep }
        planTotal += perStep * steps
        let due = plan[planHead]  // this step's share of the planned corrections
        plan[planHead] = 0
        planHead = (planHead + 1) % plan.count
        planTotal -= due
        let wanted = UInt64(max(0, completedPerStep + due))

        if applicationActive {
            ceilingBytesPerSecond = max(settings.rateMinBytesPerSecond, ceilingBytesPerSecond / 2)
        } else {
            ceilingBytesPerSecond = min(settings.rateMaxBytesPerSecond, ceilingBytesPerSecond.multipliedReportingOverflow(by: 2).partialValue)
        }
        let ceilingBytes = Self.scale(ceilingBytesPerSecond, durationNs, TokenBucket.nanosPerSecond)
        return min(wanted, ceilingBytes)
    }

    /// value × numerator / denominator without overflow for the ranges validated above.
    static func scale(_ value: UInt64, _ numerator: UInt64, _ denominator: UInt64) -> UInt64 {
        let (high, low) = value.multipliedFullWidth(by: numerator)
        guard high < denominator else { return .max }
        return denominator.dividingFullWidth((high, low)).quotient
    }
}
