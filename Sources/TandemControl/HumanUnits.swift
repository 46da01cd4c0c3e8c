// HumanUnits: sizes, rates and durations as people read them in `tandemctl status`
// ("1.5MiB", "12MiB/s", "350ms", "2m05s"). Pure functions; the clock is the caller's.

public enum HumanUnits {
    static let binaryUnits: [(String, Double)] = [
        ("TiB", 1_099_511_627_776), ("GiB", 1_073_741_824), ("MiB", 1_048_576), ("KiB", 1024),
    ]

    /// Binary units, one decimal below 10 of a unit: "0B", "512B", "1.5KiB", "64MiB".
    public static func bytes(_ count: UInt64) -> String {
        for (suffix, size) in binaryUnits where Double(count) >= size {
            return decimal(Double(count) / size) + suffix
        }
        return "\(count)B"
    }

    public static func rate(bytesPerSecond: UInt64) -> String { bytes(bytesPerSecond) + "/s" }

    /// "0ms", "350ms", "1.2s", "42s", "2m05s", "1h02m", "3d04h".
    public static func duration(milliseconds: UInt64) -> String {
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        return duration(seconds: milliseconds / 1000, fractionMs: milliseconds % 1000)
    }

    public static func duration(seconds: UInt64, fractionMs: UInt64 = 0) -> String {
        if seconds < 10, fractionMs > 0 { return decimal(Double(seconds) + Double(fractionMs) / 1000) + "s" }
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m" + twoDigits(seconds % 60) + "s" }
        if seconds < 86400 { return "\(seconds / 3600)h" + twoDigits(seconds / 60 % 60) + "m" }
        return "\(seconds / 86400)d" + twoDigits(seconds / 3600 % 24) + "h"
    }

    /// One decimal below 10, none above; a trailing ".0" is dropped.
    static func decimal(_ value: Double) -> String {
        guard value < 10 else { return String(Int(value.rounded(.down))) }
        let tenths = Int((value * 10).rounded(.down))
        return tenths % 10 == 0 ? String(tenths / 10) : "\(tenths / 10).\(tenths % 10)"
    }

    static func twoDigits(_ value: UInt64) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
