// The request phase trace in the metrics (docs/metrics.md "Request phase trace"): per
// resource, operation and phase, a histogram of the time between the phase's two hops and
// one of the loop turns between them. Published for a resource once its trace was enabled
// (the counts stay after `enable: false`, until the next enable resets them); a phase that
// counted nothing has no series.
import TandemIO

extension MetricsExposition {
    static func renderTraces(_ resources: [ResourceMetrics], into writer: inout PrometheusTextWriter) {
        let traced = resources.filter(\.trace.everEnabled)
        writer.family("tandem_trace_enabled", .gauge,
                      help: "1 while the resource's request phase trace is on (tandemctl trace NAME --on).")
        for resource in traced {
            writer.sample("tandem_trace_enabled", [("resource", resource.name)], UInt64(resource.trace.enabled ? 1 : 0))
        }
        writer.family("tandem_trace_phase_seconds", .histogram,
                      help: "Request phase trace: time between a phase's two hops, by operation and phase (docs/metrics.md).")
        for resource in traced {
            for phase in resource.trace.phases {
                writer.histogram("tandem_trace_phase_seconds", labels(resource, phase), boundsNs: RequestTrace.boundsNs,
                                 bucketCounts: phase.bucketCounts, count: phase.count, sumNs: phase.sumNs)
            }
        }
        writer.family("tandem_trace_phase_loop_turns", .histogram,
                      help: "Request phase trace: event-loop turns between a phase's two hops (0: the same turn).")
        for resource in traced {
            for phase in resource.trace.phases {
                writer.countHistogram("tandem_trace_phase_loop_turns", labels(resource, phase), bounds: RequestTrace.turnBounds,
                                      bucketCounts: phase.turnBucketCounts, count: phase.count, sum: phase.turnSum)
            }
        }
    }

    private static func labels(_ resource: ResourceMetrics, _ phase: PhaseSnapshot) -> [(String, String)] {
        [("resource", resource.name), ("op", phase.operation.label), ("phase", phase.phase.label)]
    }
}

extension PrometheusTextWriter {
    /// A histogram of durations with its own bounds (nanoseconds, published in seconds).
    mutating func histogram(_ name: String, _ labels: [(String, String)], boundsNs: [UInt64], bucketCounts: [UInt64],
                            count: UInt64, sumNs: UInt64) {
        var cumulative: UInt64 = 0
        for (index, bound) in boundsNs.enumerated() {
            cumulative += index < bucketCounts.count ? bucketCounts[index] : 0
            sample(name + "_bucket", labels + [("le", Self.seconds(nanoseconds: bound))], cumulative)
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], count)
        sample(name + "_sum", labels, Double(sumNs) / 1e9)
        sample(name + "_count", labels, count)
    }

    /// A histogram of whole counts (loop turns): `le` is the count itself.
    mutating func countHistogram(_ name: String, _ labels: [(String, String)], bounds: [UInt64], bucketCounts: [UInt64],
                                 count: UInt64, sum: UInt64) {
        var cumulative: UInt64 = 0
        for (index, bound) in bounds.enumerated() {
            cumulative += index < bucketCounts.count ? bucketCounts[index] : 0
            sample(name + "_bucket", labels + [("le", String(bound))], cumulative)
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], count)
        sample(name + "_sum", labels, sum)
        sample(name + "_count", labels, count)
    }
}
