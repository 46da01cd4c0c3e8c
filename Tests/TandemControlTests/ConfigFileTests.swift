import Testing
import TandemDaemon

@Suite struct ConfigFileTests {
    func apply(_ text: String) -> Result<DaemonConfig, ConfigError> {
        var config = DaemonConfig()
        return Result { () throws(ConfigError) in
            try ConfigFile.apply(text: text, fileName: "t.conf", to: &config)
            try config.validate()
            return config
        }
    }

    func message(_ text: String) -> String? {
        if case .failure(let error) = apply(text) { return error.message }
        return nil
    }

    @Test func everyKeyIsSetFromTheFile() throws {
        let config = try apply("""
            # tandemd
            node_name = "alpha"   # this node
            state_dir = "/srv/tandem"
            control_socket = "/run/t/c.sock"
            control_group = "tandem"
            listen = "10.0.0.1:7788"
            metrics_listen = "127.0.0.1:9100"
            log_level = "debug"
            buffer_pool_bytes = "64MiB"
            ring_entries = 2_048
            max_requests_per_connection = 64
            max_request_bytes = 1048576
            tls_ca = "/etc/tandem/ca.pem"
            tls_cert = "/etc/tandem/alpha.pem"
            tls_key = "/etc/tandem/alpha.key"
            """).get()
        #expect(config.nodeName == "alpha")
        #expect(config.stateDir == "/srv/tandem")
        #expect(config.controlGroup == "tandem")
        #expect(config.metricsListen == "127.0.0.1:9100")
        #expect(config.bufferPoolBytes == 64 << 20)
        #expect(config.ringEntries == 2048)
        #expect(config.maxRequestBytes == 1 << 20)
        #expect(config.tlsKey == "/etc/tandem/alpha.key")
    }

    @Test func anUnknownKeyIsNamedWithItsLine() {
        #expect(message("node_name = \"a\"\n\nnode_nmae = \"b\"\n") == "config t.conf line 3: unknown key 'node_nmae'")
    }

    @Test(arguments: [
        ("ring_entries = 1000", "ring_entries"), ("ring_entries = 4", "ring_entries"),
        ("ring_entries = \"1024\"", "ring_entries"), ("buffer_pool_bytes = \"5GiB\"", "buffer_pool_bytes"),
        ("buffer_pool_bytes = 1048577", "buffer_pool_bytes"), ("buffer_pool_bytes = \"lots\"", "buffer_pool_bytes"),
        ("max_request_bytes = 100", "max_request_bytes"), ("log_level = \"loud\"", "log_level"),
        ("log_level = info", "log_level"), ("node_name = 5", "node_name"), ("state_dir = \"var/lib\"", "state_dir"),
        ("listen = \"7788\"", "listen"), ("listen = \"beta:7788\"", "listen"), ("max_requests_per_connection = 0", "max_requests_per_connection"),
        ("node_name = \"a\" trailing", "node_name"), ("node_name = \"unterminated", "node_name"),
    ])
    func aBadValueIsNamedWithKeyAndLine(line: String, key: String) {
        let text = "# first line\n" + line + "\n"
        let error = message(text)
        #expect(error?.hasPrefix("config t.conf line 2: ") == true, "\(error ?? "accepted")")
        #expect(error?.contains("'\(key)'") == true, "\(error ?? "accepted")")
    }

    @Test func aKeySetTwiceIsRefused() {
        #expect(message("listen = \"127.0.0.1:1\"\nlisten = \"127.0.0.2:2\"\n") == "config t.conf line 2: key 'listen' is already set on line 1")
    }

    @Test func sectionsAndMissingEqualsAreRefusedWithTheirLine() {
        #expect(message("[daemon]\n")?.hasPrefix("config t.conf line 1:") == true)
        #expect(message("\nnode_name \"a\"\n")?.hasPrefix("config t.conf line 2:") == true)
    }

    @Test func maxRequestBytesMayNotExceedTheBufferPool() {
        let error = message("buffer_pool_bytes = \"1MiB\"\nmax_request_bytes = \"2MiB\"\n")
        #expect(error?.contains("'max_request_bytes'") == true)
        #expect(error?.contains("'buffer_pool_bytes'") == true)
    }

    @Test func flagsUseTheSameValidationAndAcceptSizeSuffixes() throws {
        var config = DaemonConfig()
        try config.set(.bufferPoolBytes, flagValue: "128MiB")
        #expect(config.bufferPoolBytes == 128 << 20)
        #expect(throws: ConfigError.self) { try config.set(.ringEntries, flagValue: "100") }
        #expect(throws: ConfigError.self) { try config.set(.ringEntries, flagValue: "many") }
        try config.set(.controlGroup, flagValue: "")
        #expect(config.controlGroup == nil)
        try config.set(.resyncConcurrencyMax, flagValue: "1")
        #expect(config.resyncConcurrencyMax == 1)
        #expect(throws: ConfigError.self) { try config.set(.resyncConcurrencyMax, flagValue: "0") }
        #expect(throws: ConfigError.self) { try config.set(.resyncConcurrencyMax, flagValue: "1025") }
    }

    @Test func everyKeyHasAFlag() {
        #expect(ConfigKey.allCases.map(\.flag).contains("--max-requests-per-connection"))
        #expect(ConfigKey.allCases.map(\.flag).contains("--resync-concurrency-max"))
        #expect(ConfigKey.allCases.count == 17)
    }

    @Test func theDefaultsAreValid() throws {
        try DaemonConfig().validate()
    }

    @Test func aMissingFileIsAClearError() {
        var config = DaemonConfig()
        #expect(throws: ConfigError.self) { try applyConfigFile(path: "/nonexistent/tandemd.conf", to: &config) }
    }
}
