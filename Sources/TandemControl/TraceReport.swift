// TraceReport: the `trace` reply (a resource's request phase trace) as the table
// `tandemctl trace` prints: one row per operation and phase, in the order a request meets
// them, with its count, mean, p50/p90/p99 and the loop turns between the phase's two hops.
// Pure text from the reply's fields, so that the daemon's reply and the printout agree.

public enum TraceReport {
    public static func render(_ fields: [String: JSONValue]) -> String {
        let name = fields["name"]?.stringValue ?? "?"
        let enabled = fields["enabled"]?.boolValue == true
        let ageMs = fields["age_ms"]?.intValue ?? 0
        let phases = (fields["phases"]?.arrayValue ?? []).compactMap(\.objectValue)
        var lines = ["trace \(name): \(enabled ? "on" : "off"), counting for \(HumanUnits.duration(milliseconds: UInt64(max(ageMs, 0))))"]
        guard !phases.isEmpty else {
            lines.append(enabled ? "no request traced yet" : "nothing counted (turn it on with --on)")
            return lines.joined(separator: "\n")
        }
        var rows = [["op", "phase", "count", "mean", "p50", "p90", "p99", "turns mean", "turns p50/p99"]]
        for phase in phases {
            let turns = "\(phase["turns_p50"]?.intValue ?? 0)/\(phase["turns_p99"]?.intValue ?? 0)"
            rows.append([
                phase["op"]?.stringValue ?? "?", phase["phase"]?.stringValue ?? "?",
                String(phase["count"]?.intValue ?? 0), micro(phase["mean_us"], quantile: false), micro(phase["p50_us"]),
                micro(phase["p90_us"]), micro(phase["p99_us"]), number(phase["turns_mean"]), turns,
            ])
        }
        lines.append(contentsOf: table(rows))
        lines.append("times in µs; p50/p90/p99 interpolated inside histogram buckets (steps of 20-33 %);")
        lines.append("the pair's peer_round_trip is on this node's clock, secondary_* on the secondary's (run trace there)")
        if let copy = fields["copy_depths"]?.objectValue { lines.append(contentsOf: copyDepths(copy)) }
        return lines.joined(separator: "\n")
    }

    /// The copy's depths: each stage's mean number of chunks, and the chunks held (all
    /// stages) at the 10th, 50th and 90th percentile of the time.
    static func copyDepths(_ copy: [String: JSONValue]) -> [String] {
        let spanMs = copy["span_ms"]?.intValue ?? 0
        let means = copy["mean"]?.objectValue ?? [:]
        let stages = ["reading", "admitting", "unsent", "unacknowledged", "undurable"]
        var lines = ["copy chunks by stage over \(HumanUnits.duration(milliseconds: UInt64(max(spanMs, 0)))), mean: "
            + stages.map { "\($0) \(number(means[$0]))" }.joined(separator: ", ")]
        let shares = (copy["held_share"]?.arrayValue ?? []).compactMap { pair -> (Int64, Double)? in
            guard let values = pair.arrayValue, values.count == 2, let held = values[0].intValue,
                let share = double(values[1]) else { return nil }
            return (held, share)
        }
        let total = shares.reduce(0) { $0 + $1.1 }
        if total > 0 {
            func held(at quantile: Double) -> Int64 {
                var seen = 0.0
                for (held, share) in shares {
                    seen += share
                    if seen >= quantile * total { return held }
                }
                return shares.last!.0
            }
            lines.append("chunks held (all stages), share of the time: p10 \(held(at: 0.1)), p50 \(held(at: 0.5)), p90 \(held(at: 0.9))")
        }
        return lines
    }

    /// Microseconds; "≤1" inside the first bucket, where interpolation from zero says nothing.
    static func micro(_ value: JSONValue?, quantile: Bool = true) -> String {
        guard let value = double(value) else { return "-" }
        if quantile && value <= 1 { return "≤1" }
        return value >= 100 ? String(Int64(value.rounded())) : number(.double(value))
    }

    static func number(_ value: JSONValue?) -> String {
        guard let value = double(value) else { return "-" }
        let tenths = Int64((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    static func double(_ value: JSONValue?) -> Double? {
        switch value {
        case .double(let number)?: return number
        case .int(let number)?: return Double(number)
        default: return nil
        }
    }

    /// Left-aligned first two columns, right-aligned numbers.
    static func table(_ rows: [[String]]) -> [String] {
        var widths = [Int](repeating: 0, count: rows[0].count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        return rows.map { row in
            row.enumerated().map { index, cell in
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                return index < 2 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
    }
}
