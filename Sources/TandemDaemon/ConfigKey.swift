// ConfigKey: the names under which every DaemonConfig field is set, from the config file
// (snake_case) and from tandemd's flags (--kebab-case), with the value kind and range each
// accepts. One table, so the file, the flags and docs/configuration.md cannot drift apart.
import TandemControl

public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A value as written in the config file.
public enum ConfigValue: Sendable, Equatable {
    case string(String)
    case integer(UInt64)
    case bool(Bool)
}

public enum ConfigKey: String, CaseIterable, Sendable {
    case nodeName = "node_name", stateDir = "state_dir", controlSocket = "control_socket"
    case controlGroup = "control_group", listen, metricsListen = "metrics_listen", logLevel = "log_level"
    case bufferPoolBytes = "buffer_pool_bytes", ringEntries = "ring_entries"
    case maxRequestsPerConnection = "max_requests_per_connection", maxRequestBytes = "max_request_bytes"
    case tlsCA = "tls_ca", tlsCert = "tls_cert", tlsKey = "tls_key"
    case pingIntervalMs = "ping_interval_ms", pingTimeoutMs = "ping_timeout_ms"
    case resyncConcurrencyMax = "resync_concurrency_max"

    public enum Kind: Sendable { case text, optionalText, bytes, count }

    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    public var kind: Kind {
        switch self {
        case .nodeName, .stateDir, .controlSocket, .listen, .logLevel: .text
        case .controlGroup, .metricsListen, .tlsCA, .tlsCert, .tlsKey: .optionalText
        case .bufferPoolBytes, .maxRequestBytes: .bytes
        case .ringEntries, .maxRequestsPerConnection, .pingIntervalMs, .pingTimeoutMs, .resyncConcurrencyMax: .count
        }
    }

    /// The command-line flag: `--node-name`.
    public var flag: String { "--" + String(rawValue.map { $0 == "_" ? "-" : $0 }) }

    var expectedForm: String {
        switch kind {
        case .text: "a quoted string"
        case .optionalText: "a quoted string (\"\" for none)"
        case .bytes: "an integer number of bytes or a quoted size such as \"32MiB\""
        case .count: "an integer"
        }
    }
}

extension DaemonConfig {
    /// Sets one key from a config-file value. Errors say what was expected, without location.
    public mutating func set(_ key: ConfigKey, _ value: ConfigValue) throws(ConfigError) {
        switch (key.kind, value) {
        case (.text, .string(let text)), (.optionalText, .string(let text)):
            try setText(key, text)
        case (.bytes, .integer(let number)), (.count, .integer(let number)):
            try setNumber(key, number)
        case (.bytes, .string(let text)):
            guard let number = ByteSize.parse(text) else {
                throw ConfigError("'\(key.rawValue)' must be \(key.expectedForm), got \"\(text)\"")
            }
            try setNumber(key, number)
        default:
            throw ConfigError("'\(key.rawValue)' must be \(key.expectedForm)")
        }
        if let problem = problem(with: key) { throw ConfigError(problem) }
    }

    /// Sets one key from a command-line flag's text (sizes may carry a suffix).
    public mutating func set(_ key: ConfigKey, flagValue: String) throws(ConfigError) {
        switch key.kind {
        case .text, .optionalText:
            try set(key, .string(flagValue))
        case .bytes:
            try set(key, .string(flagValue))
        case .count:
            guard let number = UInt64(flagValue) else {
                throw ConfigError("\(key.flag) must be \(key.expectedForm), got '\(flagValue)'")
            }
            try set(key, .integer(number))
        }
    }

    mutating func setText(_ key: ConfigKey, _ text: String) throws(ConfigError) {
        let optional: String? = text.isEmpty ? nil : text
        switch key {
        case .nodeName: nodeName = text
        case .stateDir: stateDir = text
        case .controlSocket: controlSocket = text
        case .listen: listen = text
        case .logLevel: logLevel = text
        case .controlGroup: controlGroup = optional
        case .metricsListen: metricsListen = optional
        case .tlsCA: tlsCA = optional
        case .tlsCert: tlsCert = optional
        case .tlsKey: tlsKey = optional
        default: throw ConfigError("'\(key.rawValue)' must be \(key.expectedForm)")
        }
    }

    mutating func setNumber(_ key: ConfigKey, _ number: UInt64) throws(ConfigError) {
        let limit = UInt64(UInt32.max)
        switch key {
        case .bufferPoolBytes: bufferPoolBytes = number
        case .ringEntries: ringEntries = UInt32(min(number, limit))
        case .maxRequestsPerConnection: maxRequestsPerConnection = UInt32(min(number, limit))
        case .maxRequestBytes: maxRequestBytes = UInt32(min(number, limit))
        case .pingIntervalMs: pingIntervalMs = UInt32(min(number, limit))
        case .pingTimeoutMs: pingTimeoutMs = UInt32(min(number, limit))
        case .resyncConcurrencyMax: resyncConcurrencyMax = UInt32(min(number, limit))
        default: throw ConfigError("'\(key.rawValue)' must be \(key.expectedForm)")
        }
        if number > limit, key != .bufferPoolBytes {
            throw ConfigError("'\(key.rawValue)' is out of range, got \(number)")
        }
    }
}
