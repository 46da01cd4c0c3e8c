// ConfigValidation: the range of every DaemonConfig field and the rules between fields.
// Checked when a key is set (so the error carries the file line) and again as a whole
// after the file and flags are applied.
import TandemControl
import TandemIO

extension DaemonConfig {
    /// nil when the key's current value is acceptable, else what is wrong and what is allowed.
    public func problem(with key: ConfigKey) -> String? {
        let name = key.rawValue
        switch key {
        case .nodeName:
            return isNodeName(nodeName) ? nil : "'\(name)' must be 1-64 characters of A-Z a-z 0-9 - _ . not starting with '.', got \"\(nodeName)\""
        case .stateDir:
            return isAbsolutePath(stateDir) ? nil : "'\(name)' must be an absolute path, got \"\(stateDir)\""
        case .controlSocket:
            return isUnixSocketPath(controlSocket) ? nil : "'\(name)' must be an absolute path of at most 107 bytes, got \"\(controlSocket)\""
        case .listen:
            return isListenAddress(listen) ? nil : "'\(name)' must be host:port with an IPv4 address, [IPv6], '*' or 'localhost', got \"\(listen)\""
        case .metricsListen:
            // Bound at start-up as given: no name resolution, so a host name is refused here.
            guard let metricsListen else { return nil }
            return isHostPort(metricsListen) && Sockets.parse(address: metricsListen) != nil ? nil
                : "'\(name)' must be IPv4:port, [IPv6]:port, *:port or localhost:port, got \"\(metricsListen)\""
        case .logLevel:
            return ConfigKey.logLevels.contains(logLevel) ? nil : "'\(name)' must be one of \(ConfigKey.logLevels.joined(separator: "|")), got \"\(logLevel)\""
        case .controlGroup:
            guard let controlGroup else { return nil }
            return controlGroup.contains(where: { $0.isWhitespace || $0 == ":" }) ? "'\(name)' must be a group name, got \"\(controlGroup)\"" : nil
        case .tlsCA, .tlsCert, .tlsKey:
            return optionalPathProblem(key)
        case .bufferPoolBytes, .ringEntries, .maxRequestsPerConnection, .maxRequestBytes, .pingIntervalMs, .pingTimeoutMs,
             .resyncConcurrencyMax:
            return numberProblem(key)
        }
    }

    func numberProblem(_ key: ConfigKey) -> String? {
        let name = key.rawValue
        switch key {
        case .bufferPoolBytes:
            let ok = (1 << 20...4 << 30).contains(bufferPoolBytes) && bufferPoolBytes % 4096 == 0
            return ok ? nil : "'\(name)' must be a multiple of 4096 between 1MiB and 4GiB, got \(bufferPoolBytes)"
        case .ringEntries:
            let ok = (8...32768).contains(ringEntries) && ringEntries & (ringEntries - 1) == 0
            return ok ? nil : "'\(name)' must be a power of two between 8 and 32768, got \(ringEntries)"
        case .maxRequestsPerConnection:
            return (1...4096).contains(maxRequestsPerConnection) ? nil : "'\(name)' must be between 1 and 4096, got \(maxRequestsPerConnection)"
        case .maxRequestBytes:
            return (4096...32 << 20).contains(maxRequestBytes) ? nil : "'\(name)' must be between 4096 and 32MiB, got \(maxRequestBytes)"
        case .pingIntervalMs:
            return (1000...60000).contains(pingIntervalMs) ? nil : "'\(name)' must be between 1000 and 60000, got \(pingIntervalMs)"
        case .pingTimeoutMs:
            return (2000...600_000).contains(pingTimeoutMs) ? nil : "'\(name)' must be between 2000 and 600000, got \(pingTimeoutMs)"
        case .resyncConcurrencyMax:
            return (1...1024).contains(resyncConcurrencyMax) ? nil : "'\(name)' must be between 1 and 1024, got \(resyncConcurrencyMax)"
        default:
            return nil
        }
    }

    func optionalPathProblem(_ key: ConfigKey) -> String? {
        let value: String?
        switch key {
        case .tlsCA: value = tlsCA
        case .tlsCert: value = tlsCert
        default: value = tlsKey
        }
        guard let value else { return nil }
        return isAbsolutePath(value) ? nil : "'\(key.rawValue)' must be an absolute path, got \"\(value)\""
    }

    func isNodeName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && !name.hasPrefix(".")
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }

    /// Every key's range and the rules between keys. Called after file and flags are applied.
    public func validate() throws(ConfigError) {
        for key in ConfigKey.allCases {
            if let problem = problem(with: key) { throw ConfigError("invalid configuration: \(problem)") }
        }
        if UInt64(maxRequestBytes) > bufferPoolBytes {
            throw ConfigError(
                "invalid configuration: 'max_request_bytes' (\(maxRequestBytes)) must not exceed 'buffer_pool_bytes' (\(bufferPoolBytes))")
        }
        if pingTimeoutMs < 2 * pingIntervalMs {
            throw ConfigError(
                "invalid configuration: 'ping_timeout_ms' (\(pingTimeoutMs)) must be at least twice 'ping_interval_ms' (\(pingIntervalMs))")
        }
        let tls = [tlsCA, tlsCert, tlsKey].compactMap { $0 }
        if !tls.isEmpty, tls.count != 3 {
            throw ConfigError("invalid configuration: 'tls_ca', 'tls_cert' and 'tls_key' must be set together")
        }
    }
}
