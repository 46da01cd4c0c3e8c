// ResourceSettingSupport: which of DESIGN.md's `create` settings this version carries out. A
// setting that is accepted works; the others are refused with `unsupported` (never accepted
// and ignored). One table, read by the daemon when it refuses and by `capabilities` and
// docs/tunables.md when they report, so the three cannot disagree.
import TandemCore

extension ResourceSpec {
    /// Settings whose behaviour is not built yet: `create` refuses each, given with any value
    /// but `null`, with `unsupported`. Each leaves this list with the issue that builds it.
    public static let unsupportedKeys = ["after_split_brain", "bandwidth", "fencing", "period_s", "resync_rate", "rpo_target_ms"]
    /// DESIGN.md's modes that are not built yet; `create` refuses them with `unsupported`.
    public static let unsupportedModes = ["adaptive", "periodic"]

    /// Refuses `create` arguments that name a setting or mode of the tables above.
    public static func refuseUnsupportedSettings(_ args: [String: JSONValue]) throws(ControlError) {
        for key in unsupportedKeys where args[key] != nil && args[key] != .null {
            throw ControlError(.unsupported, "argument '\(key)' is not supported by this version yet")
        }
        if case .string(let mode)? = args["mode"], unsupportedModes.contains(mode) {
            throw ControlError(
                .unsupported, "argument 'mode': '\(mode)' is not supported by this version yet; use sync or async")
        }
    }
}
