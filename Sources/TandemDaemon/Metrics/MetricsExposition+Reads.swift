// MetricsExposition's read-balancing families (issue 16 §4), read from the same `status`
// fields as the control socket: on a primary, the reads its peer served and those that came
// back to be read locally; on a secondary, the reads it served for its primary.
import TandemControl

extension MetricsExposition {
    static func renderReads(_ resources: [ResourceMetrics], into writer: inout PrometheusTextWriter) {
        writer.family("tandem_reads_served_by_peer_total", .counter,
                      help: "Primary: application reads the peer served (read_balancing, or a failed disk; status: read_routing.reads_served_by_peer).")
        for resource in resources {
            guard case .object(let block)? = resource.status["read_routing"], let count = number(block["reads_served_by_peer"]) else { continue }
            writer.sample("tandem_reads_served_by_peer_total", [("resource", resource.name)], UInt64(count))
        }
        writer.family("tandem_peer_read_fallbacks_total", .counter,
                      help: "Primary: reads sent to the peer that it refused or lost with the link, then read locally (status: read_routing.fallbacks).")
        for resource in resources {
            guard case .object(let block)? = resource.status["read_routing"], let count = number(block["fallbacks"]) else { continue }
            writer.sample("tandem_peer_read_fallbacks_total", [("resource", resource.name)], UInt64(count))
        }
        writer.family("tandem_reads_served_for_peer_total", .counter,
                      help: "Secondary: ReadRequests of the primary served from this volume (status: reads_served_for_peer).")
        for resource in resources {
            guard let count = number(resource.status["reads_served_for_peer"]) else { continue }
            writer.sample("tandem_reads_served_for_peer_total", [("resource", resource.name)], UInt64(count))
        }
    }
}
