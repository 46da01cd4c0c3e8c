// ResourceSpecSettings: `set` arguments applied to an existing ResourceSpec. Only settings
// that can change while the resource runs are accepted; the result is validated exactly as
// `create` validates, so `set` can never produce a spec `create` would refuse.
import TandemCore

extension ResourceSpec {
    /// Keys `set` may change (DESIGN.md: rates "change live"; policies apply from the next event).
    public static let liveSettingKeys: Set<String> = [
        "mode", "period_s", "rpo_target_ms", "compression", "resync_rate", "bandwidth", "fencing",
        "after_split_brain", "disk_drain", "async_buffer_bytes",
    ]
    /// Keys fixed at `create`: changing them means a new resource.
    public static let fixedSettingKeys: Set<String> = ["name", "volume", "size_bytes", "role", "peer", "initial_sync", "nbd"]

    /// `settings` are the request's arguments other than `name`. A `null` value restores the default.
    public func applying(settings: [String: JSONValue]) throws(ControlError) -> ResourceSpec {
        var fields = jsonFields
        for key in settings.keys.sorted() {
            guard !Self.fixedSettingKeys.contains(key) else {
                throw ControlError(.invalidArgument, "argument '\(key)' cannot be changed with set (delete and create the resource)")
            }
            guard Self.liveSettingKeys.contains(key) else {
                throw ControlError(.invalidArgument, "unknown argument '\(ControlCodec.printable(key))'")
            }
            fields[key] = settings[key] == .null ? nil : settings[key]
        }
        if settings["mode"] != nil, settings["period_s"] == nil, fields["mode"] != .string("periodic") {
            fields["period_s"] = nil
        }
        // `fields` always carries `nbd`, so the default socket directory is never used.
        return try ResourceSpec.parse(createArgs: fields, defaultNBDSocketDirectory: "/")
    }
}
