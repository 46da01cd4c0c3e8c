// MetricsExposition's replication-profile families (issue 16 §1, §2), read from the same
// `status` fields as the control socket: the adaptive mode's effective mode and switch count,
// and the RPO target's pacing delay and misses. Only primaries have them.
import TandemControl

extension MetricsExposition {
    static func renderProfile(_ resources: [ResourceMetrics], into writer: inout PrometheusTextWriter) {
        writer.family("tandem_effective_mode", .gauge,
                      help: "How writes admitted now are acknowledged: 1 for the current mode, 0 for the other (status: effective_mode).")
        for resource in resources {
            guard let current = string(resource.status["effective_mode"]) else { continue }
            for mode in ["sync", "async"] {
                writer.sample("tandem_effective_mode", [("resource", resource.name), ("mode", mode)], UInt64(mode == current ? 1 : 0))
            }
        }
        writer.family("tandem_mode_switches_total", .counter,
                      help: "Mode adaptive: switches between sync and async (status: adaptive.switches).")
        for resource in resources {
            guard case .object(let block)? = resource.status["adaptive"], let switches = number(block["switches"]) else { continue }
            writer.sample("tandem_mode_switches_total", [("resource", resource.name)], UInt64(switches))
        }
        writer.family("tandem_pacing_delay_seconds", .gauge,
                      help: "rpo_target_ms: the delay pacing puts between async writes now, 0 when not pacing (status: pacing_delay_ms / 1000).")
        for resource in resources {
            guard let delay = number(resource.status["pacing_delay_ms"]) else { continue }
            writer.sample("tandem_pacing_delay_seconds", [("resource", resource.name)], delay * 0.001)
        }
        writer.family("tandem_rpo_target_misses_total", .counter,
                      help: "rpo_target_ms: times pacing at its maximum delay could not hold the target (status: rpo_target.misses).")
        for resource in resources {
            guard case .object(let block)? = resource.status["rpo_target"], let misses = number(block["misses"]) else { continue }
            writer.sample("tandem_rpo_target_misses_total", [("resource", resource.name)], UInt64(misses))
        }
    }
}
