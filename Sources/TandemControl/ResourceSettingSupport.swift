// ResourceSettingSupport: which of the settings `create` validates this version also carries
// out. A setting that is accepted works; the others are refused with `unsupported` (never
// accepted and ignored). One table, read by the daemon when it refuses and by `capabilities`
// and docs/tunables.md when they report, so the three cannot disagree.
import TandemCore

extension ResourceSpec {
    /// Replication modes this version runs. The others are refused at `create`.
    public static let implementedModes: [ReplicationMode] = [.sync, .async]

    /// Compression kinds this version carries out. The others are refused at `create`.
    public static let implementedCompression: [CompressionKind] = CompressionKind.allCases

    /// Settings parsed and validated, but not carried out yet: a value other than the
    /// default is refused with `unsupported` (the default, or `null`, is accepted).
    public static let unimplementedSettingKeys: [String] = [
        "period_s", "rpo_target_ms", "resync_rate", "bandwidth", "fencing", "after_split_brain",
    ]

    /// The spec a `create` with only `name` and `volume` makes: the source of every default.
    public static func withDefaults(name: String = "r0", volume: String = "/dev/null") -> ResourceSpec {
        // Both arguments are valid by construction; a failure here is a bug in the parser.
        guard let spec = try? parse(
            createArgs: ["name": .string(name), "volume": .string(volume)], defaultNBDSocketDirectory: "/run/tandem")
        else { preconditionFailure("the default resource spec does not parse") }
        return spec
    }

    /// nil when this version carries out every setting of the spec, else the refusal.
    public func unsupportedSetting() -> ControlError? {
        guard Self.implementedModes.contains(mode) else {
            let modes = Self.implementedModes.map(\.rawValue).joined(separator: " or ")
            return ControlError(
                .unsupported, "mode: '\(mode.rawValue)' is not supported by this version yet; use \(modes)")
        }
        guard Self.implementedCompression.contains(compression) else {
            return ControlError(.unsupported, "compression: '\(compression.rawValue)' is not supported by this version yet")
        }
        let defaults = Self.withDefaults().jsonFields
        let fields = jsonFields
        for key in Self.unimplementedSettingKeys where fields[key] != defaults[key] {
            let value = fields[key].map(JSONCodec.serializeString) ?? "null"
            let fallback = defaults[key].map { " (leave it at \(JSONCodec.serializeString($0)))" } ?? " (leave it unset)"
            return ControlError(
                .unsupported, "\(key): \(value) is not supported by this version yet\(fallback)")
        }
        return nil
    }
}
