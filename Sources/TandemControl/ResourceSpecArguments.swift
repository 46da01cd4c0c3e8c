// ResourceSpecArguments: `create` arguments -> ResourceSpec, and ResourceSpec -> the same
// JSON keys (for `status` and for persistence). Key names are DESIGN.md's. Every refusal names
// the key and what is allowed; unknown keys are refused, never ignored.
import TandemCore

extension ResourceSpec {
    /// DESIGN.md's keys whose behaviour is not built yet: `create` refuses each with
    /// `unsupported`, naming the key, rather than accepting a setting that does nothing.
    /// Each leaves this list with the issue that builds it; every key of DESIGN.md is built
    /// now, so the list is empty (kept: the capabilities and the tunables page read it).
    public static let unsupportedKeys: [String] = []
    /// `resync_rate`'s bound: 1 TiB/s, far above any disk, so a typo in units is refused.
    public static let resyncRateBytesPerSecondMax: Int64 = 1 << 40
    /// `resync_rate_min`'s bounds: 64 KiB/s to the controller's maximum, 10 GiB/s.
    public static let resyncRateMinBytesPerSecondRange: ClosedRange<Int64> = (64 << 10)...(10 << 30)
    /// DESIGN.md's modes that are not built yet; `create` refuses them with `unsupported`
    /// (none now).
    public static let unsupportedModes: [String] = []
    /// sun_path holds 108 bytes including the terminating NUL.
    public static let unixSocketPathBytesMax = 107
    static let blockBytes: Int64 = 4096

    /// Validates `create` arguments (the request's keys other than id and cmd).
    public static func parse(
        createArgs: [String: JSONValue], defaultNBDSocketDirectory: String
    ) throws(ControlError) -> ResourceSpec {
        try refuseUnsupported(createArgs)
        var reader = ArgumentReader(createArgs.filter { key, value in !(value == .null && unsupportedKeys.contains(key)) })
        let name = try reader.requiredString("name")
        guard isValidName(name) else {
            throw reader.invalid(
                "name", "must be 1-64 characters of A-Z a-z 0-9 '-' '_' '.', not starting with '.'")
        }
        let volume = try reader.requiredString("volume")
        guard isAbsolutePath(volume) else { throw reader.invalid("volume", "must be an absolute path") }
        var spec = ResourceSpec(
            name: name, volume: volume,
            nbd: NBDSpec(socket: "\(defaultNBDSocketDirectory)/\(name).nbd"))
        spec.sizeBytes = try parseSize(&reader).map { UInt64($0) }
        try parseReplication(&reader, into: &spec)
        try parsePolicies(&reader, into: &spec)
        try parseProfile(&reader, into: &spec)
        spec.readBalancing = try parseReadBalancing(&reader) ?? .preferLocal
        try parseMetadata(&reader, into: &spec)
        try parseStaging(&reader, into: &spec)
        try parseGroup(&reader, into: &spec)
        if let nbd = try reader.optionalObject("nbd") {
            spec.nbd = try parseNBD(nbd, defaultSocket: spec.nbd.socket)
        }
        guard isUnixSocketPath(spec.nbd.socket) else {
            throw reader.invalid(
                "nbd.socket", "must be an absolute path of at most \(unixSocketPathBytesMax) bytes")
        }
        try reader.finish()
        return spec
    }

    /// A key of `unsupportedKeys` with any value but `null`, or an unsupported mode.
    static func refuseUnsupported(_ args: [String: JSONValue]) throws(ControlError) {
        for key in unsupportedKeys where args[key] != nil && args[key] != .null {
            throw ControlError(.unsupported, "argument '\(key)' is not supported by this version yet")
        }
        if case .string(let mode)? = args["mode"], unsupportedModes.contains(mode) {
            throw ControlError(
                .unsupported,
                "argument 'mode': '\(mode)' is not supported by this version yet; use sync, async or adaptive")
        }
    }

    static func parseSize(_ reader: inout ArgumentReader) throws(ControlError) -> Int64? {
        guard let size = try reader.optionalInteger("size_bytes", in: 1...Int64.max, unit: "bytes") else {
            return nil
        }
        guard size % blockBytes == 0 else {
            throw reader.invalid("size_bytes", "must be a multiple of \(blockBytes), got \(size)")
        }
        return size
    }

    /// role, peer, mode, and how they constrain each other.
    static func parseReplication(_ reader: inout ArgumentReader, into spec: inout ResourceSpec) throws(ControlError) {
        spec.role = try reader.optionalChoice("role", ResourceRole.self) ?? .standalone
        if let peer = try reader.optionalObject("peer") {
            guard spec.role != .standalone else {
                throw reader.invalid("peer", "is only allowed with role primary or secondary")
            }
            spec.peer = try parsePeer(peer)
        } else if spec.role != .standalone {
            throw ControlError(.missingArgument, "missing argument 'peer' (role \(spec.role.rawValue) needs a peer)")
        }
        spec.mode = try reader.optionalChoice("mode", ReplicationMode.self) ?? .sync
        try parsePeriod(&reader, into: &spec)
        if let buffer = try reader.optionalInteger("async_buffer_bytes", in: (1 << 20)...(1 << 40), unit: "bytes") {
            guard buffer % blockBytes == 0 else {
                throw reader.invalid("async_buffer_bytes", "must be a multiple of \(blockBytes), got \(buffer)")
            }
            spec.asyncBufferBytes = UInt64(buffer)
        }
    }

    /// `period_s` (1–86400 seconds): required with `mode: periodic`, refused with any other.
    static func parsePeriod(_ reader: inout ArgumentReader, into spec: inout ResourceSpec) throws(ControlError) {
        spec.periodS = try parsePeriodS(&reader)
        if spec.mode == .periodic && spec.periodS == nil {
            throw ControlError(.missingArgument, "missing argument 'period_s' (mode periodic needs the interval between cycles, 1-86400 seconds)")
        }
        if spec.mode != .periodic && spec.periodS != nil {
            throw reader.invalid("period_s", "is only allowed with mode periodic (mode is \(spec.mode.rawValue))")
        }
    }

    /// `bandwidth` (bytes per second, 0: no cap), for `create` and `set`. Bounded like
    /// `resync_rate`: a typo in units is refused.
    public static func parseBandwidth(_ reader: inout ArgumentReader) throws(ControlError) -> UInt64? {
        try reader.optionalInteger("bandwidth", in: 0...resyncRateBytesPerSecondMax, unit: "bytes per second")
            .map { UInt64($0) }
    }

    /// `period_s` (seconds), for `create` and `set`.
    public static func parsePeriodS(_ reader: inout ArgumentReader) throws(ControlError) -> UInt32? {
        try reader.optionalInteger("period_s", in: periodSRange, unit: "seconds").map { UInt32($0) }
    }

    /// `period_s`'s bounds: a second to a day.
    public static let periodSRange: ClosedRange<Int64> = 1...86_400

    /// compression, disk drain, initial sync, fencing, resync rate.
    static func parsePolicies(_ reader: inout ArgumentReader, into spec: inout ResourceSpec) throws(ControlError) {
        spec.compression = try reader.optionalChoice("compression", CompressionKind.self) ?? .none
        spec.diskDrain = try reader.optionalChoice("disk_drain", DiskDrain.self) ?? .drain
        spec.initialSync = try reader.optionalChoice("initial_sync", InitialSync.self) ?? .full
        spec.fencing = try reader.optionalChoice("fencing", Fencing.self) ?? .dontCare
        spec.afterSplitBrain = try reader.optionalChoice("after_split_brain", AfterSplitBrain.self) ?? .disconnect
        spec.resyncRateBytesPerSecond = try parseResyncRate(&reader) ?? 0
        spec.resyncRateMinBytesPerSecond = try parseResyncRateMin(&reader) ?? 32 << 20
        spec.diskTimeoutMs = try parseDiskTimeout(&reader) ?? 0
        spec.bandwidthBytesPerSecond = try parseBandwidth(&reader) ?? 0
        spec.alExtents = try reader.optionalInteger("al_extents", in: 0...Int64(alExtentsMax), unit: "extents")
            .map { UInt32($0) }
    }

    /// `disk_timeout_ms`: 0 (off) or `DiskTimeout.timeoutMsRange`, for `create` and `set`.
    public static func parseDiskTimeout(_ reader: inout ArgumentReader) throws(ControlError) -> UInt32? {
        let range = DiskTimeout.timeoutMsRange
        guard let value = try reader.optionalInteger(
            "disk_timeout_ms", in: 0...Int64(range.upperBound), unit: "milliseconds") else { return nil }
        guard value == 0 || range.contains(UInt32(value)) else {
            throw reader.invalid("disk_timeout_ms", "must be 0 (off) or between \(range.lowerBound) and \(range.upperBound) "
                                 + "(ages are checked once a second), got \(value)")
        }
        return UInt32(value)
    }

    /// `resync_rate_min` (bytes per second), for `create` and `set`.
    public static func parseResyncRateMin(_ reader: inout ArgumentReader) throws(ControlError) -> UInt64? {
        try reader.optionalInteger("resync_rate_min", in: resyncRateMinBytesPerSecondRange, unit: "bytes per second")
            .map { UInt64($0) }
    }

    /// `resync_rate` (bytes per second, 0: the dynamic controller), for `create` and `set`.
    public static func parseResyncRate(_ reader: inout ArgumentReader) throws(ControlError) -> UInt64? {
        try reader.optionalInteger("resync_rate", in: 0...resyncRateBytesPerSecondMax, unit: "bytes per second")
            .map { UInt64($0) }
    }

    /// `metadata` (placement) and `metadata_path`. Internal metadata lives at the end of
    /// the volume (docs/metadata.md, *Internal metadata*): a path is refused beside it.
    static func parseMetadata(_ reader: inout ArgumentReader, into spec: inout ResourceSpec) throws(ControlError) {
        if let placement = try reader.optionalString("metadata") {
            guard placement == "external" || placement == "internal" else {
                throw reader.invalid("metadata", "must be external or internal, got '\(ControlCodec.printable(placement))'")
            }
            spec.metadataInternal = placement == "internal"
        }
        if let path = try reader.optionalString("metadata_path") {
            guard isAbsolutePath(path) else { throw reader.invalid("metadata_path", "must be an absolute path") }
            guard !spec.metadataInternal else {
                throw reader.invalid("metadata_path", "internal metadata lives in the volume; metadata_path names an external file")
            }
            spec.metadataPath = path
        }
    }

    // stage (issue 13 §3)
    /// Largest `staging_bytes` (1 TiB).
    public static let stagingBytesMax: Int64 = 1 << 40

    /// `staging_path` and `staging_bytes`, fixed at `create` (docs/replication.md, *Staged
    /// catch-up*).
    static func parseStaging(_ reader: inout ArgumentReader, into spec: inout ResourceSpec) throws(ControlError) {
        if let path = try reader.optionalString("staging_path") {
            guard isAbsolutePath(path) else { throw reader.invalid("staging_path", "must be an absolute path") }
            guard path != spec.volume, path != spec.metadataPath else {
                throw reader.invalid("staging_path", "must be neither the volume nor the metadata file")
            }
            spec.stagingPath = path
        }
        spec.stagingBytes = try reader.optionalInteger("staging_bytes", in: 0...stagingBytesMax, unit: "bytes").map { UInt64($0) }
    }

    static func parsePeer(_ peer: ArgumentReader) throws(ControlError) -> PeerSpec {
        var reader = peer
        let name = try reader.requiredString("name")
        guard isValidName(name) else {
            throw reader.invalid("name", "must be 1-64 characters of A-Z a-z 0-9 '-' '_' '.', not starting with '.'")
        }
        let address = try reader.requiredString("address")
        guard isPeerAddress(address) else {
            throw reader.invalid(
                "address", "must be host:port (an IPv4 address, [IPv6] or a DNS name), got '\(ControlCodec.printable(address))'")
        }
        try reader.finish()
        return PeerSpec(name: name, address: address)
    }

    static func parseNBD(_ nbd: ArgumentReader, defaultSocket: String) throws(ControlError) -> NBDSpec {
        var reader = nbd
        let socket = try reader.optionalString("socket") ?? defaultSocket
        let tcp = try reader.optionalString("tcp")
        if let tcp, !isListenAddress(tcp) {
            throw reader.invalid(
                "tcp", "must be host:port with an IPv4 address, [IPv6], '*' or 'localhost', got '\(ControlCodec.printable(tcp))'")
        }
        try reader.finish()
        return NBDSpec(socket: socket, tcp: tcp)
    }

    /// The spec under the same keys `create` takes; absent optionals are omitted.
    public var jsonFields: [String: JSONValue] {
        var fields: [String: JSONValue] = [
            "name": .string(name), "volume": .string(volume), "role": .string(role.rawValue),
            "mode": .string(mode.rawValue), "compression": .string(compression.rawValue),
            "disk_drain": .string(diskDrain.rawValue), "initial_sync": .string(initialSync.rawValue),
            "fencing": .string(fencing.rawValue), "after_split_brain": .string(afterSplitBrain.rawValue),
            "resync_rate": .int(Int64(clamping: resyncRateBytesPerSecond)),
            "resync_rate_min": .int(Int64(clamping: resyncRateMinBytesPerSecond)),
            "async_buffer_bytes": .int(Int64(clamping: asyncBufferBytes)),
            "disk_timeout_ms": .int(Int64(diskTimeoutMs)),
        ]
        var nbdFields: [String: JSONValue] = ["socket": .string(nbd.socket)]
        if let tcp = nbd.tcp { nbdFields["tcp"] = .string(tcp) }
        fields["nbd"] = .object(nbdFields)
        fields["metadata"] = .string(metadataInternal ? "internal" : "external")
        if let metadataPath { fields["metadata_path"] = .string(metadataPath) }
        if let alExtents { fields["al_extents"] = .int(Int64(alExtents)) }
        if let stagingPath { fields["staging_path"] = .string(stagingPath) }
        if let stagingBytes { fields["staging_bytes"] = .int(Int64(clamping: stagingBytes)) }
        if let periodS { fields["period_s"] = .int(Int64(periodS)) }
        fields["bandwidth"] = .int(Int64(clamping: bandwidthBytesPerSecond))
        if let sizeBytes { fields["size_bytes"] = .int(Int64(clamping: sizeBytes)) }
        if let peer { fields["peer"] = .object(["name": .string(peer.name), "address": .string(peer.address)]) }
        profileFields(into: &fields)
        readBalancingFields(into: &fields)
        if let group { fields["group"] = .string(group) }
        return fields
    }
}

public func isAbsolutePath(_ path: String) -> Bool {
    path.hasPrefix("/") && !path.utf8.contains(0) && path.utf8.count <= 4096
}

public func isUnixSocketPath(_ path: String) -> Bool {
    isAbsolutePath(path) && path.utf8.count <= ResourceSpec.unixSocketPathBytesMax
}

/// "host:port" or "[ipv6]:port" with a port 1-65535 and a host without whitespace.
public func isHostPort(_ text: String) -> Bool {
    guard let (host, _) = splitHostPort(text) else { return false }
    guard !host.contains(where: { $0.isWhitespace || $0 == "/" }) else { return false }
    if host.hasPrefix("[") { return host.hasSuffix("]") && host.count > 2 }
    return !host.contains(":")
}

/// A peer to dial: "host:port" with a port 1-65535, where host is an IPv4 address, "[IPv6]"
/// or a DNS name (labels of 1-63 letters, digits and '-', at most 253 characters), which
/// getaddrinfo resolves each time the peer is dialled.
public func isPeerAddress(_ text: String) -> Bool {
    guard let (host, _) = splitHostPort(text) else { return false }
    if host.hasPrefix("[") { return isBracketedIPv6(host) }
    return isDNSName(host)
}

/// "host:port" that a socket can bind without a name lookup: an IPv4 address, "[IPv6]",
/// "*" (every IPv4 address) or "localhost".
public func isListenAddress(_ text: String) -> Bool {
    guard let (host, _) = splitHostPort(text) else { return false }
    if host.hasPrefix("[") { return isBracketedIPv6(host) }
    if host == "*" || host == "localhost" { return true }
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    return parts.count == 4 && parts.allSatisfy { part in
        !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber)
            && Int(part).map { $0 <= 255 } == true
    }
}

func splitHostPort(_ text: String) -> (host: Substring, port: UInt16)? {
    guard let colon = text.lastIndex(of: ":") else { return nil }
    let host = text[..<colon]
    guard let port = UInt16(text[text.index(after: colon)...]), port > 0, !host.isEmpty else { return nil }
    return (host, port)
}

func isBracketedIPv6(_ host: Substring) -> Bool {
    guard host.hasPrefix("["), host.hasSuffix("]"), host.count > 3 else { return false }
    return host.dropFirst().dropLast().utf8.allSatisfy { byte in
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)
            || byte == 0x3A || byte == 0x2E
    }
}

/// Also true for a dotted IPv4 address, which is a name getaddrinfo resolves to itself.
func isDNSName(_ host: Substring) -> Bool {
    guard host.utf8.count <= 253 else { return false }
    let labels = host.split(separator: ".", omittingEmptySubsequences: false)
    return labels.allSatisfy { label in
        (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
            && label.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2D
            }
    }
}
