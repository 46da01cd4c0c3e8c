// PrometheusTextWriter: the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): `# HELP` and `# TYPE` once
// per family, then the family's samples together, label values escaped. Hand-written rather
// than swift-prometheus: see docs/metrics.md, "Why not swift-prometheus". Scrape time only.
import TandemIO

public struct PrometheusTextWriter: Sendable {
    public enum MetricType: String, Sendable { case counter, gauge, histogram }

    public private(set) var text = ""
    private var families: Set<String> = []

    public init() {}

    /// Starts a family; every sample of it must follow before the next family starts.
    public mutating func family(_ name: String, _ type: MetricType, help: String) {
        precondition(Self.isValidName(name) && families.insert(name).inserted, "metric family \(name)")
        text += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(type.rawValue)\n"
    }

    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: UInt64) {
        line(name, labels, String(value))
    }

    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Int64) {
        line(name, labels, String(value))
    }

    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        line(name, labels, Self.format(value))
    }

    /// A histogram's cumulative `_bucket` series, `_sum` (seconds) and `_count`.
    public mutating func histogram(_ name: String, _ labels: [(String, String)], _ snapshot: LatencyHistogramSnapshot) {
        var cumulative: UInt64 = 0
        for (index, bound) in LatencyHistogram.boundsNs.enumerated() {
            cumulative += index < snapshot.bucketCounts.count ? snapshot.bucketCounts[index] : 0
            line(name + "_bucket", labels + [("le", Self.seconds(nanoseconds: bound))], String(cumulative))
        }
        line(name + "_bucket", labels + [("le", "+Inf")], String(snapshot.count))
        line(name + "_sum", labels, Self.format(Double(snapshot.sumNs) / 1e9))
        line(name + "_count", labels, String(snapshot.count))
    }

    private mutating func line(_ name: String, _ labels: [(String, String)], _ value: String) {
        text += name
        if !labels.isEmpty {
            text += "{"
            for (index, (label, labelValue)) in labels.enumerated() {
                if index > 0 { text += "," }
                text += label + "=\"" + Self.escapeLabelValue(labelValue) + "\""
            }
            text += "}"
        }
        text += " " + value + "\n"
    }

    // MARK: encoding rules

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    static func isValidName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return name.utf8.allSatisfy { byte in
            (0x61...0x7A).contains(byte) || (0x41...0x5A).contains(byte) || (0x30...0x39).contains(byte)
                || byte == 0x5F || byte == 0x3A
        }
    }

    /// Label values escape backslash, double quote and line feed.
    public static func escapeLabelValue(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    /// HELP text escapes backslash and line feed.
    static func escapeHelp(_ help: String) -> String {
        help.replacingAll("\\", with: "\\\\").replacingAll("\n", with: "\\n")
    }

    /// Go's float syntax: NaN, +Inf, -Inf, else Swift's shortest round-tripping form.
    public static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// An exact decimal number of seconds: 50_000 ns is "0.00005", 2_500_000_000 is "2.5".
    public static func seconds(nanoseconds: UInt64) -> String {
        let whole = nanoseconds / 1_000_000_000
        var fraction = String(nanoseconds % 1_000_000_000)
        guard fraction != "0" else { return String(whole) }
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(whole).\(fraction)"
    }
}

extension String {
    fileprivate func replacingAll(_ target: Character, with replacement: String) -> String {
        guard contains(target) else { return self }
        var result = ""
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}
