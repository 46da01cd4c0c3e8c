// ResourceSettingChange: the arguments of `set` (docs/control-protocol.md), validated before
// anything changes. `name` and at least one setting; a setting `create` knows that this
// version cannot change on a running resource is refused with `unsupported`, an unknown key
// with `invalid-argument`, a bad value as `create` would refuse it. Only `ResourceSpec.liveKeys`
// pass.
import TandemCore

public struct ResourceSettingChange: Sendable, Equatable {
    public var name: String
    /// `resync_rate`, bytes per second (0: the dynamic controller); nil: unchanged.
    public var resyncRateBytesPerSecond: UInt64?
    /// `resync_rate_min`, bytes per second (the controller's floor); nil: unchanged.
    public var resyncRateMinBytesPerSecond: UInt64?
    /// `after_split_brain`; nil: unchanged.
    public var afterSplitBrain: AfterSplitBrain?

    /// `disk_timeout_ms` (0: off); nil: unchanged.
    public var diskTimeoutMs: UInt32?

    /// `bandwidth`, bytes per second (0: no cap); nil: unchanged.
    public var bandwidthBytesPerSecond: UInt64?

    /// `period_s` (periodic mode only; checked against the resource when applied); nil: unchanged.
    public var periodS: UInt32?

    /// `read_balancing`; nil: unchanged.
    public var readBalancing: ReadBalancing?

    public init(name: String, resyncRateBytesPerSecond: UInt64? = nil, resyncRateMinBytesPerSecond: UInt64? = nil,
                diskTimeoutMs: UInt32? = nil, afterSplitBrain: AfterSplitBrain? = nil) {
        self.name = name
        self.afterSplitBrain = afterSplitBrain
        self.resyncRateBytesPerSecond = resyncRateBytesPerSecond
        self.resyncRateMinBytesPerSecond = resyncRateMinBytesPerSecond
        self.diskTimeoutMs = diskTimeoutMs
    }

    /// Every key `create` takes (documented on the tunables page), with the unbuilt ones.
    static var createKeys: Set<String> {
        Set(ResourceSpec.tunableDocs.map(\.name)).union(ResourceSpec.unsupportedKeys)
    }

    public static func parse(_ args: [String: JSONValue]) throws(ControlError) -> ResourceSettingChange {
        var reader = ArgumentReader(args)
        let name = try reader.requiredString("name")
        let keys = args.keys.filter { $0 != "name" }.sorted()
        let live = ResourceSpec.liveKeys.sorted().joined(separator: ", ")
        guard !keys.isEmpty else {
            throw ControlError(.missingArgument, "set needs at least one setting (key: value); settings set changes: \(live)")
        }
        for key in keys where !ResourceSpec.liveKeys.contains(key) {
            guard createKeys.contains(key) else {
                throw ControlError(
                    .invalidArgument, "unknown setting '\(ControlCodec.printable(key))'; settings set changes: \(live)")
            }
            throw ControlError(
                .unsupported, "setting '\(key)' cannot change on a running resource in this version; settings set changes: \(live)")
        }
        var change = ResourceSettingChange(name: name)
        change.resyncRateBytesPerSecond = try ResourceSpec.parseResyncRate(&reader)
        change.resyncRateMinBytesPerSecond = try ResourceSpec.parseResyncRateMin(&reader)
        change.diskTimeoutMs = try ResourceSpec.parseDiskTimeout(&reader)
        change.afterSplitBrain = try reader.optionalChoice("after_split_brain", AfterSplitBrain.self)
        change.periodS = try ResourceSpec.parsePeriodS(&reader)
        change.bandwidthBytesPerSecond = try ResourceSpec.parseBandwidth(&reader)
        change.readBalancing = try ResourceSpec.parseReadBalancing(&reader)
        try reader.finish()
        return change
    }

    /// The changed settings under their `create` keys (the reply's `changed`, the event).
    public var jsonFields: [String: JSONValue] {
        var fields: [String: JSONValue] = [:]
        if let resyncRateBytesPerSecond { fields["resync_rate"] = .int(Int64(clamping: resyncRateBytesPerSecond)) }
        if let resyncRateMinBytesPerSecond {
            fields["resync_rate_min"] = .int(Int64(clamping: resyncRateMinBytesPerSecond))
        }
        if let diskTimeoutMs { fields["disk_timeout_ms"] = .int(Int64(diskTimeoutMs)) }
        if let afterSplitBrain { fields["after_split_brain"] = .string(afterSplitBrain.rawValue) }
        if let periodS { fields["period_s"] = .int(Int64(periodS)) }
        if let bandwidthBytesPerSecond { fields["bandwidth"] = .int(Int64(clamping: bandwidthBytesPerSecond)) }
        if let readBalancing { fields["read_balancing"] = .string(readBalancing.rawValue) }
        return fields
    }
}
