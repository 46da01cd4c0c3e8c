// ByteSize: "4096", "32MiB", "1G" -> bytes, for tandemctl flags and the tandemd config file.
// Binary (KiB, MiB, GiB, TiB) and, as DRBD and qemu-img spell them, K/M/G/T meaning the same
// powers of two. Decimal kB/MB/GB are accepted with their SI meaning. Overflow is an error.

public enum ByteSize {
    static let suffixes: [(String, UInt64)] = [
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
        ("kB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40), ("B", 1),
    ]

    /// nil when `text` is not a non-negative integer with an optional known suffix, or overflows.
    public static func parse(_ text: String) -> UInt64? {
        let trimmed = text.filter { $0 != "_" && $0 != " " }
        for (suffix, multiplier) in suffixes where trimmed.hasSuffix(suffix) {
            guard let number = UInt64(trimmed.dropLast(suffix.count)) else { return nil }
            let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
            return overflow ? nil : product
        }
        return UInt64(trimmed)
    }

    /// The inverse for people: the largest binary unit that divides the value exactly.
    public static func format(_ bytes: UInt64) -> String {
        for (suffix, multiplier) in [("TiB", UInt64(1) << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        where bytes >= multiplier && bytes % multiplier == 0 {
            return "\(bytes / multiplier)\(suffix)"
        }
        return "\(bytes)"
    }
}
