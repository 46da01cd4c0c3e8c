// Guarantee 6 for configuration: a config file with an unknown key or a bad value stops
// tandemd before it does anything, with exit status 2 and a message naming the key.
import Foundation
import TandemDaemon
import Testing

extension Integration {
    @Suite struct Config {
        /// Runs tandemd once with `configText` as its config file; the config is the only
        /// thing wrong, every required setting is given as a valid flag too.
        func runWithConfig(_ configText: String) throws -> (ToolResult, DaemonProcess) {
            let daemon = try DaemonProcess()
            let configPath = daemon.directory.file("tandemd.conf")
            try configText.write(toFile: configPath, atomically: true, encoding: .utf8)
            let result = try ExternalTool.run(try Binaries.tandemd(), ["--config", configPath] + daemon.arguments, timeoutSeconds: 30)
            return (result, daemon)
        }

        // docs/configuration.md: a small TOML subset, `key = value` per line.
        @Test(arguments: [
            ("unknown key", "frobnicate_level = 3\n", "frobnicate_level"),
            ("value out of range", "ring_entries = 1000\n", "ring_entries"),
            ("value of the wrong kind", "ring_entries = \"lots\"\n", "ring_entries"),
            ("negative size", "buffer_pool_bytes = -1\n", "buffer_pool_bytes"),
            ("unknown log level", "log_level = \"loud\"\n", "log_level"),
            ("unquoted string", "log_level = info\n", "log_level"),
            ("key set twice", "ring_entries = 64\nring_entries = 128\n", "ring_entries"),
            ("metrics address naming a host", "metrics_listen = \"metrics.example:9788\"\n", "metrics_listen"),
            ("metrics address without a port", "metrics_listen = \"127.0.0.1\"\n", "metrics_listen"),
        ])
        func badConfigExitsWithStatus2NamingTheKey(_ label: String, _ text: String, _ key: String) throws {
            let (result, daemon) = try runWithConfig(text)
            #expect(!result.timedOut, "\(label): tandemd kept running with a bad config")
            #expect(result.status == 2, "\(label): exit status \(result.status), want 2\n\(result)")
            #expect(result.stderr.contains(key), "\(label): stderr does not name \(key): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: daemon.controlSocket), "\(label): control socket created")
        }

        /// tandemd's flags are generated from ConfigKey's table: every key has its flag.
        @Test func everyConfigKeyIsAFlagInHelp() throws {
            let result = try ExternalTool.run(try Binaries.tandemd(), ["--help"], timeoutSeconds: 30)
            #expect(result.status == 0, "\(result)")
            let words = result.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            for key in ConfigKey.allCases {
                #expect(words.contains(key.flag + " <"), "--help lacks \(key.flag): \(result.stdout)")
            }
        }

        @Test(arguments: [
            (["--ring-entries=1000"], "ring_entries"), (["--ring-entries", "7"], "ring_entries"),
            (["--buffer-pool-bytes", "12"], "buffer_pool_bytes"), (["--frobnicate", "1"], "--frobnicate"),
            (["--log-level"], "--log-level"), (["--listen=beta:7788"], "listen"),
        ])
        func aBadFlagExitsWithStatus2NamingIt(_ flags: [String], _ named: String) throws {
            let daemon = try DaemonProcess()
            let result = try ExternalTool.run(try Binaries.tandemd(), daemon.arguments + flags, timeoutSeconds: 30)
            #expect(result.status == 2, "\(flags): \(result)")
            #expect(result.stderr.contains(named), "\(flags): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: daemon.controlSocket))
        }

        /// Both flag forms set the key, and a later flag overrides the config file.
        @Test func flagsInBothFormsOverrideTheConfigFile() throws {
            let daemon = try DaemonProcess()
            let configPath = daemon.directory.file("tandemd.conf")
            try "node_name = \"fromfile\"\nring_entries = 64\n".write(toFile: configPath, atomically: true, encoding: .utf8)
            daemon.extraArguments = ["--config", configPath, "--ring-entries=128", "--node-name", "fromflag"]
            try daemon.start()
            let ping = try daemon.control().request("ping")
            #expect(ping["node"] as? String == "fromflag", "\(ping)")
        }

        @Test func missingConfigFileExitsWithStatus2() throws {
            let daemon = try DaemonProcess()
            let path = daemon.directory.file("absent.conf")
            let result = try ExternalTool.run(try Binaries.tandemd(), ["--config", path] + daemon.arguments, timeoutSeconds: 30)
            #expect(result.status == 2, "\(result)")
            #expect(result.stderr.contains("absent.conf"), "stderr does not name the file: \(result.stderr)")
        }
    }
}
