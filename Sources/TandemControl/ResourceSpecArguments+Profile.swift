// ResourceSpecArguments+Profile: the replication profile's `create` keys (issue 16 §1, §2):
// `adaptive_latency_ms` and `adaptive_switch_ms` (mode adaptive), `rpo_target_ms` and
// `rpo_pacing_max_ms` (write pacing, async and adaptive), `group_commit_us` (the secondary's
// group commit). A key that would do nothing with the
// mode given is refused, not ignored.
import TandemCore

extension ResourceSpec {
    public static let adaptiveLatencyMsRange: ClosedRange<Int64> = 1...60_000
    public static let adaptiveSwitchMsRange: ClosedRange<Int64> = 0...600_000
    public static let rpoTargetMsRange: ClosedRange<Int64> = 1...86_400_000
    public static let rpoPacingMaxMsRange: ClosedRange<Int64> = 1...10_000
    /// `group_commit_us`: 0 (a flush as soon as an epoch completes) to one second.
    public static let groupCommitUsRange: ClosedRange<Int64> = 0...1_000_000

    static func parseProfile(_ reader: inout ArgumentReader, into spec: inout ResourceSpec) throws(ControlError) {
        let latency = try reader.optionalInteger("adaptive_latency_ms", in: adaptiveLatencyMsRange, unit: "milliseconds")
        let hysteresis = try reader.optionalInteger("adaptive_switch_ms", in: adaptiveSwitchMsRange, unit: "milliseconds")
        if spec.mode != .adaptive, latency != nil || hysteresis != nil {
            throw reader.invalid(latency != nil ? "adaptive_latency_ms" : "adaptive_switch_ms",
                                 "is only allowed with mode adaptive (mode is \(spec.mode.rawValue))")
        }
        if let latency { spec.adaptiveLatencyMs = UInt32(latency) }
        if let hysteresis { spec.adaptiveSwitchMs = UInt32(hysteresis) }
        let target = try reader.optionalInteger("rpo_target_ms", in: rpoTargetMsRange, unit: "milliseconds")
        let pacingMax = try reader.optionalInteger("rpo_pacing_max_ms", in: rpoPacingMaxMsRange, unit: "milliseconds")
        if target != nil, spec.mode == .sync {
            throw reader.invalid("rpo_target_ms", "is only allowed with mode async or adaptive: a sync write has no lag to pace")
        }
        if pacingMax != nil, target == nil {
            throw reader.invalid("rpo_pacing_max_ms", "is only allowed with rpo_target_ms")
        }
        spec.rpoTargetMs = target.map { UInt32($0) }
        if let pacingMax { spec.rpoPacingMaxMs = UInt32(pacingMax) }
        if let groupCommit = try reader.optionalInteger("group_commit_us", in: groupCommitUsRange, unit: "microseconds") {
            spec.groupCommitUs = UInt32(groupCommit)
        }
    }

    /// The profile's keys for `status` and persistence: each only where it applies.
    func profileFields(into fields: inout [String: JSONValue]) {
        if mode == .adaptive {
            fields["adaptive_latency_ms"] = .int(Int64(adaptiveLatencyMs))
            fields["adaptive_switch_ms"] = .int(Int64(adaptiveSwitchMs))
        }
        if let rpoTargetMs {
            fields["rpo_target_ms"] = .int(Int64(rpoTargetMs))
            fields["rpo_pacing_max_ms"] = .int(Int64(rpoPacingMaxMs))
        }
        fields["group_commit_us"] = .int(Int64(groupCommitUs))
    }
}
