// TunableDoc: what docs/tunables.md says about one setting, kept beside the code that
// validates it. The page is rendered from these entries (TunablesPage in TandemDaemon) and a
// test compares it with the file, so the page cannot drift from the code; the defaults are
// read from the code's own default values, and the bounds are probed against the validators.

public struct TunableDoc: Sendable {
    /// The key as written in a request or the config file.
    public var name: String
    /// The unit or form of a value: "bytes", "bytes/s", "milliseconds", "word", "path".
    public var unit: String
    /// The default as the code has it (rendered by the table's owner from its default value).
    public var defaultText: String
    /// What is accepted, in words ("1 MiB – 1 TiB, multiple of 4096").
    public var range: String
    /// The integer bounds `range` describes, when it is an integer range: tests check that
    /// both ends are accepted and the values just outside refused.
    public var bounds: ClosedRange<Int64>?
    /// Whether `set` changes it on a running resource (resource settings; false for the daemon's).
    public var live: Bool
    /// When to change it, for an operator.
    public var advice: String

    public init(
        name: String, unit: String, defaultText: String, range: String, bounds: ClosedRange<Int64>? = nil,
        live: Bool, advice: String
    ) {
        self.name = name
        self.unit = unit
        self.defaultText = defaultText
        self.range = range
        self.bounds = bounds
        self.live = live
        self.advice = advice
    }
}
