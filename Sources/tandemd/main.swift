// tandemd: the Tandem daemon's command line. Thin: reads the config file, applies flags over
// it, validates, sets up logging and runs the Daemon. All behaviour lives in TandemDaemon.
import ArgumentParser
import Logging
import TandemControl
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

    /// Every config key's flag (`--node-name NAME` or `--node-name=NAME`), generated from
    /// ConfigKey's table rather than declared one by one, so a new key is a flag at once.
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp(Self.settingsHelp, valueName: "--key value"))
    var settings: [String] = []

    static let flagKeys = Dictionary(uniqueKeysWithValues: ConfigKey.allCases.map { ($0.flag, $0) })

    static var settingsHelp: String {
        let flags = ConfigKey.allCases.map { key in "\(key.flag) <\(valueName(key.kind))> (\(key.rawValue))" }
        return "Any config-file key as a flag: " + flags.joined(separator: ", ")
            + ". Units, defaults and ranges: docs/configuration.md."
    }

    static func valueName(_ kind: ConfigKey.Kind) -> String {
        switch kind {
        case .text: "text"
        case .optionalText: "text, \"\" for none"
        case .bytes: "bytes, e.g. 64MiB"
        case .count: "count"
        }
    }

    /// The flags in the order given, each with its value.
    func flagValues() throws(ConfigError) -> [(ConfigKey, String)] {
        var values: [(ConfigKey, String)] = []
        var index = 0
        while index < settings.count {
            let word = settings[index]
            index += 1
            let name = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
            guard let key = Self.flagKeys[name] else {
                throw ConfigError("unknown option or argument '\(word)' (see --help)")
            }
            if name.count < word.count {
                values.append((key, String(word.dropFirst(name.count + 1))))
            } else {
                guard index < settings.count else { throw ConfigError("\(key.flag) needs a value") }
                values.append((key, settings[index]))
                index += 1
            }
        }
        return values
    }

    /// Defaults, then the file, then the flags; validated as a whole.
    func loadConfig() throws(ConfigError) -> DaemonConfig {
        var daemonConfig = DaemonConfig()
        if let config { try applyConfigFile(path: config, to: &daemonConfig) }
        for (key, value) in try flagValues() {
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

// Before anything opens a descriptor: a closed stdout or stderr must not become a socket
// that log lines are then written into.
guard StandardDescriptors.ensureOpen() else { exit(127) }
// Before anything can make OpenSSL allocate: see OpenSSLMemory.
let opensslCachesSmallBlocks = OpenSSLMemory.cacheSmallBlocks()
Tandemd.main()
