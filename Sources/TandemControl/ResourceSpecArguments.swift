// ResourceSpecArguments: `create` arguments -> ResourceSpec, and ResourceSpec -> the same
// JSON keys (for `status` and for persistence). Key names are DESIGN.md's. Every refusal names
// the key and what is allowed; unknown keys are refused, never ignored.
import TandemCore

extension ResourceSpec {
    public static let fencingPolicies = ["dont-care", "suspend-io"]
    public static let splitBrainPolicies = [
        "disconnect", "discard-zero-changes", "discard-younger-primary", "discard-least-changes",
    ]
    /// sun_path holds 108 bytes including the terminating NUL.
    public static let unixSocketPathBytesMax = 107
    static let blockBytes: Int64 = 4096

    /// Validates `create` arguments (the request's keys other than id and cmd).
    public static func parse(
        createArgs: [String: JSONValue], defaultNBDSocketDirectory: String
    ) throws(ControlError) -> ResourceSpec {
        var reader = ArgumentReader(createArgs)
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

    static func parseSize(_ reader: inout ArgumentReader) throws(ControlError) -> Int64? {
        guard let size = try reader.optionalInteger("size_bytes", in: 1...Int64.max, unit: "bytes") else {
            return nil
        }
        guard size % blockBytes == 0 else {
            throw reader.invalid("size_bytes", "must be a multiple of \(blockBytes), got \(size)")
        }
        return size
    }

    /// role, peer, mode, period_s, rpo_target_ms, and how they constrain each other.
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
        let period = try reader.optionalInteger("period_s", in: 1...86_400, unit: "seconds")
        if spec.mode == .periodic {
            guard let period else {
                throw ControlError(.missingArgument, "missing argument 'period_s' (mode periodic needs it)")
            }
            spec.periodSeconds = UInt32(period)
        } else if period != nil {
            throw reader.invalid("period_s", "is only allowed with mode periodic")
        }
        spec.rpoTargetMs = try reader.optionalInteger(
            "rpo_target_ms", in: 1...86_400_000, unit: "milliseconds"
        ).map { UInt32($0) }
        if let buffer = try reader.optionalInteger("async_buffer_bytes", in: (1 << 20)...(1 << 40), unit: "bytes") {
            guard buffer % blockBytes == 0 else {
                throw reader.invalid("async_buffer_bytes", "must be a multiple of \(blockBytes), got \(buffer)")
            }
            spec.asyncBufferBytes = UInt64(buffer)
        }
    }

    /// compression, rates, fencing, split-brain policy, disk drain, initial sync.
    static func parsePolicies(_ reader: inout ArgumentReader, into spec: inout ResourceSpec) throws(ControlError) {
        spec.compression = try reader.optionalChoice("compression", CompressionKind.self) ?? .none
        let rate = try reader.optionalInteger("resync_rate", in: 0...Int64.max, unit: "bytes per second")
        spec.resyncRateBytesPerSecond = UInt64(rate ?? 0)
        let bandwidth = try reader.optionalInteger("bandwidth", in: 0...Int64.max, unit: "bytes per second")
        spec.bandwidthBytesPerSecond = UInt64(bandwidth ?? 0)
        spec.fencing = try reader.optionalWord("fencing", allowed: fencingPolicies) ?? "dont-care"
        spec.afterSplitBrain = try reader.optionalWord("after_split_brain", allowed: splitBrainPolicies) ?? "disconnect"
        spec.diskDrain = try reader.optionalChoice("disk_drain", DiskDrain.self) ?? .drain
        spec.initialSync = try reader.optionalChoice("initial_sync", InitialSync.self) ?? .full
    }

    static func parsePeer(_ peer: ArgumentReader) throws(ControlError) -> PeerSpec {
        var reader = peer
        let name = try reader.requiredString("name")
        guard isValidName(name) else {
            throw reader.invalid("name", "must be 1-64 characters of A-Z a-z 0-9 '-' '_' '.', not starting with '.'")
        }
        let address = try reader.requiredString("address")
        guard isHostPort(address) else { throw reader.invalid("address", "must be host:port, got '\(ControlCodec.printable(address))'") }
        try reader.finish()
        return PeerSpec(name: name, address: address)
    }

    static func parseNBD(_ nbd: ArgumentReader, defaultSocket: String) throws(ControlError) -> NBDSpec {
        var reader = nbd
        let socket = try reader.optionalString("socket") ?? defaultSocket
        let tcp = try reader.optionalString("tcp")
        if let tcp, !isHostPort(tcp) {
            throw reader.invalid("tcp", "must be host:port, got '\(ControlCodec.printable(tcp))'")
        }
        try reader.finish()
        return NBDSpec(socket: socket, tcp: tcp)
    }

    /// The spec under the same keys `create` takes; absent optionals are omitted.
    public var jsonFields: [String: JSONValue] {
        var fields: [String: JSONValue] = [
            "name": .string(name), "volume": .string(volume), "role": .string(role.rawValue),
            "mode": .string(mode.rawValue), "compression": .string(compression.rawValue),
            "resync_rate": .int(Int64(clamping: resyncRateBytesPerSecond)),
            "bandwidth": .int(Int64(clamping: bandwidthBytesPerSecond)),
            "fencing": .string(fencing), "after_split_brain": .string(afterSplitBrain),
            "disk_drain": .string(diskDrain.rawValue), "initial_sync": .string(initialSync.rawValue),
            "async_buffer_bytes": .int(Int64(clamping: asyncBufferBytes)),
        ]
        var nbdFields: [String: JSONValue] = ["socket": .string(nbd.socket)]
        if let tcp = nbd.tcp { nbdFields["tcp"] = .string(tcp) }
        fields["nbd"] = .object(nbdFields)
        if let sizeBytes { fields["size_bytes"] = .int(Int64(clamping: sizeBytes)) }
        if let peer { fields["peer"] = .object(["name": .string(peer.name), "address": .string(peer.address)]) }
        if let periodSeconds { fields["period_s"] = .int(Int64(periodSeconds)) }
        if let rpoTargetMs { fields["rpo_target_ms"] = .int(Int64(rpoTargetMs)) }
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
    guard let colon = text.lastIndex(of: ":") else { return false }
    let host = text[..<colon]
    let portText = text[text.index(after: colon)...]
    guard let port = UInt16(portText), port > 0, !host.isEmpty else { return false }
    guard !host.contains(where: { $0.isWhitespace || $0 == "/" }) else { return false }
    if host.hasPrefix("[") { return host.hasSuffix("]") && host.count > 2 }
    return !host.contains(":")
}
