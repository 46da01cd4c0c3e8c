// PrimaryReplicator's replication profile: the spec's adaptive mode and RPO target as the
// node's controllers' settings, their status fields, and their notices as events and log lines.
// The decisions are the node's (PrimaryNode+Adaptive).
import Logging
import TandemControl
import TandemCore

extension PrimaryReplicator {
    /// `mode: adaptive` and `rpo_target_ms` into the node's config.
    static func applyProfile(_ spec: ResourceSpec, to config: inout PrimaryNodeConfig) {
        if spec.mode == .adaptive {
            config.adaptive = AdaptiveModeController.Settings(
                latencyBoundNs: UInt64(spec.adaptiveLatencyMs) * 1_000_000,
                switchAfterNs: UInt64(spec.adaptiveSwitchMs) * 1_000_000)
        }
        if let target = spec.rpoTargetMs, spec.mode != .sync {
            config.rpoTarget = RPOPacingController.Settings(
                targetNs: UInt64(target) * 1_000_000, delayMaxNs: UInt64(spec.rpoPacingMaxMs) * 1_000_000)
        }
    }

    /// `effective_mode` always; the `adaptive` and `rpo_target` blocks and `pacing_delay_ms`
    /// when configured.
    func profileStatusFields(into fields: inout [String: JSONValue], nowNs: UInt64) {
        fields["effective_mode"] = .string(node.effectiveMode.rawValue)
        if let adaptive = node.adaptiveMode {
            var block: [String: JSONValue] = [
                "latency_ms": .int(Int64(adaptive.settings.latencyBoundNs / 1_000_000)),
                "switch_ms": .int(Int64(adaptive.settings.switchAfterNs / 1_000_000)),
                "switches": .int(Int64(clamping: adaptive.switches)),
                "peer_latency_ms": .double(Double(node.lastPeerLatencyNs) / 1e6),
            ]
            if let reason = adaptive.lastReason {
                block["last_reason"] = .string(reason)
                block["last_switch_age_ms"] = .int(Int64(clamping: (nowNs - min(adaptive.lastSwitchNs, nowNs)) / 1_000_000))
            }
            fields["adaptive"] = .object(block)
        }
        if let pacer = node.rpoPacer {
            let delayMs = Double(node.pacingDelayActiveNs) / 1e6
            fields["pacing_delay_ms"] = .double(delayMs)
            var block: [String: JSONValue] = [
                "target_ms": .int(Int64(pacer.settings.targetNs / 1_000_000)),
                "pacing_max_ms": .int(Int64(pacer.settings.delayMaxNs / 1_000_000)),
                "pacing": .bool(pacer.admitBytesPerSecond != nil),
                "pacing_delay_ms": .double(delayMs),
                "projected_rpo_ms": .int(Int64(clamping: pacer.projectedNs / 1_000_000)),
                "drain_rate_bytes_per_second": .int(Int64(pacer.drainBytesPerSecond)),
                "held": .bool(!pacer.cannotHold && node.rpoAgeNs(nowNs: nowNs) <= pacer.settings.targetNs),
                "misses": .int(Int64(clamping: pacer.misses)),
            ]
            if let rate = pacer.admitBytesPerSecond { block["admit_rate_bytes_per_second"] = .int(Int64(rate)) }
            if let reason = node.lastRPOMissReason { block["last_miss_reason"] = .string(reason) }
            fields["rpo_target"] = .object(block)
        }
    }

    func noticedProfile(_ notice: PrimaryNotice) {
        switch notice {
        case let .modeSwitched(mode, reason):
            logger.notice("adaptive mode: writes are acknowledged \(mode.rawValue) from now on",
                          metadata: ["reason": "\(reason)"])
            context.events.publish(resource: resource, "mode-switched", [
                "effective_mode": .string(mode.rawValue), "reason": .string(reason),
                "switches": .int(Int64(clamping: node.adaptiveMode?.switches ?? 0)),
            ])
        case let .rpoTargetMissed(reason, rpoMs):
            logger.warning("the RPO target cannot be held: going Ahead", metadata: ["reason": "\(reason)"])
            context.events.publish(resource: resource, "rpo-target-missed", [
                "reason": .string(reason), "rpo_ms": .int(Int64(clamping: rpoMs)),
                "target_ms": .int(Int64((node.rpoPacer?.settings.targetNs ?? 0) / 1_000_000)),
            ])
        default:
            break
        }
    }
}
