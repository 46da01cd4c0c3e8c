// tandemd: the Tandem daemon's command line. Thin: reads the config file, applies flags over
// it, validates, sets up logging and runs the Daemon. All behaviour lives in TandemDaemon.
import ArgumentParser
import Logging
import TandemDaemon
import TandemIO

#if canImport(Glibc)
import Glibc
#endif

struct Tandemd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tandemd",
        abstract: "Replicate block volumes between two hosts and serve them over NBD.",
        discussion: """
            tandemd runs one per node. It serves each resource's volume over NBD, persists \
            resources in the state directory, and is driven through the control socket \
            (see tandemctl(8) and docs/control-protocol.md).

            Settings come from the config file given with --config (a 'key = value' file, \
            see docs/configuration.md); every key can be overridden by the flag of the same \
            name, e.g. node_name by --node-name. Sizes accept suffixes such as 64MiB.

            Exit status: 0 after a clean shutdown (SIGTERM or SIGINT), 1 when the daemon \
            fails, 2 when the configuration is invalid.
            """)

    @Option(name: .long, help: ArgumentHelp("Read settings from this config file.", valueName: "path"))
    var config: String?

    @Option(help: ArgumentHelp("This node's name; peer certificates must name it. (node_name, default \"node\")", valueName: "name"))
    var nodeName: String?
    @Option(help: ArgumentHelp("Directory for persisted resources and metadata. (state_dir, default /var/lib/tandem)", valueName: "path"))
    var stateDir: String?
    @Option(help: ArgumentHelp("Control socket path. (control_socket, default /run/tandem/control.sock)", valueName: "path"))
    var controlSocket: String?
    @Option(help: ArgumentHelp("Group allowed to use the control socket besides root; \"\" for none. (control_group)", valueName: "group"))
    var controlGroup: String?
    @Option(help: ArgumentHelp("Replication listen address. (listen, default 0.0.0.0:7788)", valueName: "host:port"))
    var listen: String?
    @Option(help: ArgumentHelp("Prometheus metrics address; \"\" disables. (metrics_listen)", valueName: "host:port"))
    var metricsListen: String?
    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical. (log_level, default info)", valueName: "level"))
    var logLevel: String?
    @Option(help: ArgumentHelp("Data-path buffer memory, 1MiB-4GiB, multiple of 4096. (buffer_pool_bytes, default 32MiB)", valueName: "bytes"))
    var bufferPoolBytes: String?
    @Option(help: ArgumentHelp("io_uring submission queue size, power of two 8-32768. (ring_entries, default 1024)", valueName: "count"))
    var ringEntries: String?
    @Option(help: ArgumentHelp("NBD requests in flight per connection, 1-4096. (max_requests_per_connection, default 128)", valueName: "count"))
    var maxRequestsPerConnection: String?
    @Option(help: ArgumentHelp("Largest NBD request payload, 4096-32MiB. (max_request_bytes, default 32MiB)", valueName: "bytes"))
    var maxRequestBytes: String?
    @Option(name: .customLong("tls-ca"), help: ArgumentHelp("CA certificate (PEM) peers must chain to. (tls_ca)", valueName: "path"))
    var tlsCA: String?
    @Option(help: ArgumentHelp("This node's certificate (PEM). (tls_cert)", valueName: "path"))
    var tlsCert: String?
    @Option(help: ArgumentHelp("This node's private key (PEM). (tls_key)", valueName: "path"))
    var tlsKey: String?

    var flagValues: [(ConfigKey, String?)] {
        [
            (.nodeName, nodeName), (.stateDir, stateDir), (.controlSocket, controlSocket),
            (.controlGroup, controlGroup), (.listen, listen), (.metricsListen, metricsListen),
            (.logLevel, logLevel), (.bufferPoolBytes, bufferPoolBytes), (.ringEntries, ringEntries),
            (.maxRequestsPerConnection, maxRequestsPerConnection), (.maxRequestBytes, maxRequestBytes),
            (.tlsCA, tlsCA), (.tlsCert, tlsCert), (.tlsKey, tlsKey),
        ]
    }

    /// Defaults, then the file, then the flags; validated as a whole.
    func loadConfig() throws(ConfigError) -> DaemonConfig {
        var daemonConfig = DaemonConfig()
        if let config { try applyConfigFile(path: config, to: &daemonConfig) }
        for (key, value) in flagValues {
            guard let value else { continue }
            do throws(ConfigError) {
                try daemonConfig.set(key, flagValue: value)
            } catch {
                throw ConfigError("\(key.flag): \(error.message)")
            }
        }
        try daemonConfig.validate()
        return daemonConfig
    }

    func run() throws {
        let daemonConfig: DaemonConfig
        do {
            daemonConfig = try loadConfig()
        } catch {
            printError("tandemd: \(error)")
            throw ExitCode(2)
        }
        let level = Logger.Level(rawValue: daemonConfig.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "tandemd")
        if !opensslCachesSmallBlocks {
            logger.notice("OpenSSL had allocated before its block cache could be installed; TLS records allocate")
        }
        logger[metadataKey: "node"] = "\(daemonConfig.nodeName)"
        do {
            try Daemon(config: daemonConfig, logger: logger).run()
        } catch {
            printError("tandemd: \(error)")
            throw ExitCode(1)
        }
    }

    func printError(_ message: String) {
        let bytes = Array((message + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}

// Before anything can make OpenSSL allocate: see OpenSSLMemory.
let opensslCachesSmallBlocks = OpenSSLMemory.cacheSmallBlocks()
Tandemd.main()
