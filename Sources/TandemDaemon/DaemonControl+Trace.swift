// DaemonControl's `trace` command: turns a resource's request phase trace on or off
// (RequestTrace; on resets its counts) and answers its summary per phase — count, mean,
// p50/p90/p99 in microseconds and the loop turns between the phase's two hops. Reads and
// changes happen on the loop thread, like every other command.
import TandemControl
import TandemIO

extension DaemonControl {
    static let traceArguments: Set<String> = ["name", "enable"]

    func trace(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        if let unknown = args.keys.sorted().first(where: { !Self.traceArguments.contains($0) }) {
            return .failure(ControlError(.invalidArgument, "\(unknown): not an argument of trace (name, enable)"))
        }
        guard let nameValue = args["name"] else { return .failure(ControlError(.missingArgument, "name: required")) }
        guard case .string(let name) = nameValue else {
            return .failure(ControlError(.invalidArgument, "name: must be a string"))
        }
        var enable: Bool?
        if let value = args["enable"] {
            guard case .bool(let flag) = value else {
                return .failure(ControlError(.invalidArgument, "enable: must be true or false"))
            }
            enable = flag
        }
        let registry = self.registry
        let wanted = enable
        return loop.submitAndWait {
            Result { () throws(ControlError) in
                let trace = try registry.resource(name).counters.trace
                switch wanted {
                case true?: trace.enable()
                case false?: trace.disable()
                case nil: break
                }
                return Self.traceReply(name: name, trace.snapshot)
            }
        }
    }

    static func traceReply(name: String, _ snapshot: RequestTraceSnapshot) -> [String: JSONValue] {
        func microseconds(_ ns: Double) -> JSONValue { .double((ns / 100).rounded() / 10) }
        let phases: [JSONValue] = snapshot.phases.map { phase in
            let count = Double(phase.count)
            return .object([
                "op": .string(phase.operation.label), "phase": .string(phase.phase.label),
                "count": .int(Int64(clamping: phase.count)),
                "mean_us": microseconds(Double(phase.sumNs) / count),
                "p50_us": microseconds(phase.quantileNs(0.5)), "p90_us": microseconds(phase.quantileNs(0.9)),
                "p99_us": microseconds(phase.quantileNs(0.99)),
                "turns_mean": .double((Double(phase.turnSum) / count * 100).rounded() / 100),
                "turns_p50": .int(Int64(phase.quantileTurns(0.5))), "turns_p99": .int(Int64(phase.quantileTurns(0.99))),
            ])
        }
        var reply: [String: JSONValue] = [
            "name": .string(name), "enabled": .bool(snapshot.enabled),
            "age_ms": .int(Int64(snapshot.ageNs / 1_000_000)), "phases": .array(phases),
        ]
        if let copy = snapshot.copy { reply["copy_depths"] = copyDepths(copy) }
        return reply
    }

    /// The copy's depths (CopyTrace): each stage's mean, the window's occupancy over time and
    /// the samples, each `[ms, reading, admitting, unsent, unacknowledged, undurable]`.
    static func copyDepths(_ copy: CopyTraceSnapshot) -> JSONValue {
        func rounded(_ value: Double) -> JSONValue { .double((value * 100).rounded() / 100) }
        var means: [String: JSONValue] = [:]
        for stage in CopyStage.allCases { means[stage.label] = rounded(copy.meanDepths[stage.rawValue]) }
        return .object([
            "span_ms": .int(Int64(copy.spanNs / 1_000_000)),
            "mean": .object(means),
            "held_share": .array(copy.heldShares.map { .array([.int(Int64($0[0])), rounded($0[1])]) }),
            "samples": .array(copy.samples.map { sample in
                .array([.int(Int64(sample.ms))] + sample.depths.map { .int(Int64($0)) })
            }),
        ])
    }
}
