// The control socket (DESIGN.md "Control socket"): resources are created, reported and
// deleted through JSON lines; bad input (guarantee 6) gets an exact error code, creates
// nothing, and leaves the connection usable.
import Foundation
import Testing

extension Integration {
    @Suite struct ControlSocket {
        /// Expects `reply` to be `ok:false` with `code`, then that the same connection still
        /// answers ping.
        static func expectRefused(
            _ reply: JSONObject, _ code: String, on client: ControlClient,
            sourceLocation: SourceLocation = #_sourceLocation
        ) throws {
            #expect(reply.ok == false, "accepted: \(reply)", sourceLocation: sourceLocation)
            #expect(reply.errorCode == code, "error code: \(reply)", sourceLocation: sourceLocation)
            #expect(!(reply.string("message") ?? "").isEmpty, "no message: \(reply)", sourceLocation: sourceLocation)
            #expect(try client.request("ping").ok == true, "connection unusable after \(code)", sourceLocation: sourceLocation)
        }

        func createArguments(_ daemon: DaemonProcess, name: String = "r0", sizeBytes: Int = 64 << 20) -> JSONObject {
            ["name": name, "volume": daemon.directory.file("\(name).img"), "size_bytes": sizeBytes,
             "nbd": ["socket": daemon.directory.file("\(name).sock")]]
        }

        @Test func pingAnswersOk() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            #expect(try client.request("ping").ok == true)
        }

        @Test func createStatusDeleteLifecycle() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            let volume = daemon.directory.file("r0.img")
            let created = try client.request("create", createArguments(daemon))
            #expect(created.ok == true, "\(created)\n\(daemon.logTail())")
            #expect(try VolumeFiles.sizeBytes(volume) == 64 << 20, "create with size_bytes makes the file")
            #expect(FileManager.default.fileExists(atPath: daemon.directory.file("r0.sock")), "no NBD socket")

            let status = try client.request("status", ["name": "r0"])
            #expect(status.ok == true, "\(status)")
            #expect(status.string("role") == "standalone")
            #expect(status.uint64("size_bytes") == 64 << 20)
            // A standalone resource is its only copy: up to date, with no peer to connect to.
            #expect(status.string("disk_state") == "UpToDate", "disk_state: \(status)")
            #expect(status.string("connection_state") == "StandAlone", "connection_state: \(status)")
            #expect(status.string("replication_state") == "Off", "replication_state: \(status)")
            #expect(status.bool("nbd_serving") == true, "nbd_serving: \(status)")

            try Self.expectRefused(try client.request("create", createArguments(daemon)), "exists", on: client)

            #expect(try client.request("delete", ["name": "r0"]).ok == true)
            try Self.expectRefused(try client.request("status", ["name": "r0"]), "not-found", on: client)
            try Self.expectRefused(try client.request("delete", ["name": "r0"]), "not-found", on: client)
        }

        @Test func malformedJSONIsBadJSON() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            for line in [#"{"id":1,"cmd":"#, "not json at all", #"{"id":1,"cmd":"ping"}}"#] {
                try client.sendLine(Array(line.utf8))
                try Self.expectRefused(try client.readReply(), "bad-json", on: client)
            }
        }

        @Test func wellFormedJSONThatIsNotARequestIsBadRequest() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            for line in ["[1,2,3]", "42", #"{"id":3}"#, #"{"id":4,"cmd":7}"#] {
                try client.sendLine(Array(line.utf8))
                try Self.expectRefused(try client.readReply(), "bad-request", on: client)
            }
        }

        @Test func unknownCommandIsRefused() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            try Self.expectRefused(try client.request("frobnicate"), "unknown-command", on: client)
        }

        /// A standalone resource has no peer: the replication commands say so.
        @Test(arguments: ["enable", "disable", "failover", "demote"])
        func replicationCommandsOnAStandaloneResourceAreWrongState(_ command: String) throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            #expect(try client.request("create", createArguments(daemon)).ok == true)
            try Self.expectRefused(try client.request(command, ["name": "r0"]), "wrong-state", on: client)
        }

        /// Boolean flags of the transitions and create-md: a wrong type, a flag on a command
        /// that has none, `allow_inconsistent` without `force`: each refused with its reason.
        @Test func badFlagsAreInvalidArgumentsNamingTheFlag() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            #expect(try client.request("create", createArguments(daemon)).ok == true)
            let cases: [(String, JSONObject, String)] = [
                ("failover", ["force": "yes"], "force: must be true or false"),
                ("enable", ["force": true], "force: only for failover"),
                ("failover", ["allow_inconsistent": 1], "allow_inconsistent: must be true or false"),
                ("failover", ["allow_inconsistent": true], "allow_inconsistent: only together with force: true"),
                ("create-md", ["force": "yes"], "force: must be true or false"),
            ]
            for (command, flags, message) in cases {
                var arguments = flags
                arguments["name"] = "r0"
                let reply = try client.request(command, arguments)
                try Self.expectRefused(reply, "invalid-argument", on: client)
                #expect(reply.string("message") == message, "\(command) \(flags): \(reply)")
            }
        }

        @Test func outdatePeerOnAStandaloneResourceIsWrongStateAndOnAMissingOneNotFound() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            #expect(try client.request("create", createArguments(daemon)).ok == true)
            try Self.expectRefused(try client.request("outdate-peer", ["name": "r0"]), "wrong-state", on: client)
            try Self.expectRefused(try client.request("outdate-peer", ["name": "nope"]), "not-found", on: client)
            try Self.expectRefused(try client.request("outdate-peer", ["name": "r0", "force": true]), "invalid-argument", on: client)
            try Self.expectRefused(try client.request("verify", ["name": "r0"]), "wrong-state", on: client)
        }

        @Test func createWithoutRequiredArgumentsIsMissingArgument() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            for key in ["name", "volume"] {
                var arguments = createArguments(daemon)
                arguments[key] = nil
                try Self.expectRefused(try client.request("create", arguments), "missing-argument", on: client)
            }
            try expectNothingCreated(daemon, client: client)
        }

        /// Each case is one field changed from a valid create.
        static let invalidCreates: [(label: String, key: String, value: any Sendable)] = [
            ("size not a multiple of 4096", "size_bytes", 1000),
            ("size zero", "size_bytes", 0),
            ("negative size", "size_bytes", -4096),
            ("size of the wrong type", "size_bytes", "64MiB"),
            ("name with a slash", "name", "../r0"),
            ("name with a space", "name", "r 0"),
            ("empty name", "name", ""),
            ("name too long", "name", String(repeating: "a", count: 65)),
            ("volume not a string", "volume", 5),
            ("volume relative", "volume", "relative/r0.img"),
            ("nbd not an object", "nbd", "r0.sock"),
            ("unknown key", "frobnicate", true),
            ("unknown mode", "mode", "telepathic"),
            ("nbd tcp address that needs a look-up", "nbd", ["socket": "/tmp/x.sock", "tcp": "beta:10809"]),
        ]

        @Test func createWithInvalidArgumentsIsInvalidArgumentAndCreatesNothing() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            for invalid in Self.invalidCreates {
                var arguments = createArguments(daemon)
                arguments[invalid.key] = invalid.value
                let reply = try client.request("create", arguments)
                #expect(reply.errorCode == "invalid-argument", "\(invalid.label): \(reply)")
                #expect(reply.ok == false, "\(invalid.label) was accepted")
            }
            #expect(try client.request("ping").ok == true)
            try expectNothingCreated(daemon, client: client)
        }

        @Test func createWithAPeerAddressThatCannotBeParsedNamesItAndCreatesNothing() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            for address in ["beta", "beta:0", "be ta:7788", "beta_1:7788", "[::1:7788", "-beta:7788"] {
                var arguments = createArguments(daemon)
                arguments["role"] = "primary"
                arguments["peer"] = ["name": "beta", "address": address]
                let reply = try client.request("create", arguments)
                try Self.expectRefused(reply, "invalid-argument", on: client)
                #expect(reply.string("message")?.contains("'peer.address'") == true, "\(address): \(reply)")
            }
            try expectNothingCreated(daemon, client: client)
        }

        /// Settings DESIGN.md names whose behaviour is not built yet would be refused as
        /// unsupported, naming the key; every one is built now (ResourceSpec.unsupportedKeys is
        /// empty), so only the settings fixed at `create` remain for `set` to refuse.
        static let unbuiltSettings: [(key: String, value: any Sendable)] = []

        /// `set` changes `resync_rate` only: any other setting (unbuilt, or fixed at `create`)
        /// is refused as `unsupported`, an unknown key or a bad value as `invalid-argument`,
        /// and a refused `set` changes nothing, not even the settings it named rightly.
        @Test func setRefusesWhatCannotChangeLiveAndChangesNothing() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            #expect(try client.request("create", createArguments(daemon)).ok == true)
            var before = try client.request("status", ["name": "r0"])
            before["id"] = nil
            before["status_age_ms"] = nil  // when the snapshot was taken, not a setting
            let fixedAtCreate: [(key: String, value: any Sendable)] = [
                ("fencing", "suspend-io"), ("mode", "async"), ("compression", "lz4"), ("volume", "/tmp/x"),
            ]
            for setting in Self.unbuiltSettings + fixedAtCreate {
                let reply = try client.request("set", ["name": "r0", "resync_rate": 1 << 20, setting.key: setting.value])
                try Self.expectRefused(reply, "unsupported", on: client)
                #expect(reply.string("message")?.contains("'\(setting.key)'") == true, "\(setting): \(reply)")
            }
            let invalid: [JSONObject] = [
                ["name": "r0", "resync_rte": 1 << 20], ["name": "r0", "resync_rate": -1],
                ["name": "r0", "resync_rate": "fast"], ["name": "r0", "resync_rate": (1 << 40) + 1],
                ["name": "r0", "resync_rate_min": 0], ["name": "r0", "resync_rate_min": (10 << 30) + 1],
                ["name": "r0", "resync_rate": 0, "resync_rate_min": 1024],
                ["name": "r0", "resync_rate": 0, "period_s": 30],  // r0 is not periodic
            ]
            for arguments in invalid {
                try Self.expectRefused(try client.request("set", arguments), "invalid-argument", on: client)
            }
            try Self.expectRefused(try client.request("set", ["name": "r0"]), "missing-argument", on: client)
            try Self.expectRefused(try client.request("set", ["name": "nope", "resync_rate": 0]), "not-found", on: client)
            var after = try client.request("status", ["name": "r0"])
            after["id"] = nil
            after["status_age_ms"] = nil
            #expect(NSDictionary(dictionary: before) == NSDictionary(dictionary: after), "\(before)\n\(after)")
            #expect(after.uint64("resync_rate") == 0 && after.string("fencing") == "dont-care", "\(after)")
            #expect(after.uint64("resync_rate_min") == 32 << 20, "\(after)")
        }

        /// `tandemctl set r0 resync_rate=8MiB`: applied, answered with the new value, shown by
        /// status, and kept across a restart (persisted).
        @Test func tandemctlSetChangesResyncRateLiveAndARestartKeepsIt() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            #expect(try client.request("create", createArguments(daemon)).ok == true)
            let ctl = try Binaries.tandemctl()
            let set = try ExternalTool.run(ctl, ["--socket", daemon.controlSocket, "set", "r0", "resync_rate=8MiB"])
            #expect(set.succeeded && set.stdout.contains("r0: resync_rate = 8388608"), "\(set)")
            let floor = try ExternalTool.run(ctl, ["--socket", daemon.controlSocket, "set", "r0", "resync_rate_min=64MiB"])
            #expect(floor.succeeded && floor.stdout.contains("r0: resync_rate_min = 67108864"), "\(floor)")
            #expect(try client.request("status", ["name": "r0"]).uint64("resync_rate") == 8 << 20)
            let refused = try ExternalTool.run(ctl, ["--socket", daemon.controlSocket, "set", "r0", "mode=async"])
            #expect(refused.status == 1 && refused.stderr.contains("unsupported"), "\(refused)")
            try daemon.stop()
            try daemon.start()
            let restarted = try daemon.control().request("status", ["name": "r0"])
            #expect(restarted.uint64("resync_rate") == 8 << 20, "\(restarted)")
            #expect(restarted.uint64("resync_rate_min") == 64 << 20, "\(restarted)")
            let json = try ExternalTool.run(ctl, ["--socket", daemon.controlSocket, "--json", "set", "r0", "resync_rate=0"])
            let reply = try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? JSONObject
            #expect(reply?.ok == true && reply?.uint64("resync_rate") == 0, "\(json)")
        }

        @Test func overLongLineIsRefusedAndTheConnectionStaysUsable() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            let padding = String(repeating: "x", count: (1 << 20) + 4096)
            try client.sendLine(Array(#"{"id":1,"cmd":"ping","pad":"\#(padding)"}"#.utf8))
            try Self.expectRefused(try client.readReply(), "line-too-long", on: client)
            // Twice, to show the daemon resynchronised at the newline both times.
            try client.sendLine(Array(padding.utf8))
            try Self.expectRefused(try client.readReply(), "line-too-long", on: client)
        }

        @Test func badInputOnOneConnectionDoesNotDisturbAnother() throws {
            let daemon = try DaemonProcess.started()
            let calm = try daemon.control()
            let noisy = try daemon.control()
            try noisy.sendLine(Array("}{".utf8))
            #expect(try noisy.readReply().errorCode == "bad-json")
            try noisy.sendLine([UInt8](repeating: 0x7b, count: 2 << 20))
            #expect(try noisy.readReply().errorCode == "line-too-long")
            #expect(try calm.request("ping").ok == true)
            #expect(daemon.isRunning)
        }

        @Test func tandemctlSpeaksTheProtocolAndFailsOnRefusal() throws {
            let daemon = try DaemonProcess.started()
            let ctl = try Binaries.tandemctl()
            let volume = daemon.directory.file("r0.img")
            let created = try ExternalTool.run(ctl, [
                "--socket", daemon.controlSocket, "create", "r0", "--volume", volume, "--size", "64MiB",
                "--nbd-socket", daemon.directory.file("r0.sock"),
            ])
            #expect(created.succeeded, "\(created)")
            #expect(try VolumeFiles.sizeBytes(volume) == 64 << 20)

            let status = try ExternalTool.run(ctl, ["--socket", daemon.controlSocket, "--json", "status", "r0"])
            #expect(status.succeeded, "\(status)")
            let json = try? JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? JSONObject
            #expect(json?.ok == true, "tandemctl --json printed no successful reply: \(status.stdout)")
            #expect(json?.string("role") == "standalone", "\(status.stdout)")
            #expect(json?.uint64("size_bytes") == 64 << 20, "\(status.stdout)")

            let missing = try ExternalTool.run(ctl, ["--socket", daemon.controlSocket, "status", "nope"])
            #expect(missing.status != 0 && !missing.timedOut, "tandemctl exits 0 on ok:false: \(missing)")
            #expect((missing.stdout + missing.stderr).contains("not-found"), "\(missing)")

            // A refusal that names a request argument also names the option the operator typed.
            let noPeriod = try ExternalTool.run(ctl, [
                "--socket", daemon.controlSocket, "create", "r1", "--volume", daemon.directory.file("r1.img"),
                "--size", "16MiB", "--role", "primary", "--peer-name", "beta", "--peer-address", "127.0.0.1:9",
                "--mode", "periodic",
            ])
            #expect(noPeriod.status == 1, "\(noPeriod)")
            #expect(noPeriod.stderr.contains("'period_s'") && noPeriod.stderr.contains("option --period)"), "\(noPeriod)")
            let badAddress = try ExternalTool.run(ctl, [
                "--socket", daemon.controlSocket, "create", "r1", "--volume", daemon.directory.file("r1.img"),
                "--size", "16MiB", "--role", "primary", "--peer-name", "beta", "--peer-address", "nohost",
            ])
            #expect(badAddress.stderr.contains("option --peer-address)"), "\(badAddress)")
            #expect(!FileManager.default.fileExists(atPath: daemon.directory.file("r1.img")), "a refused create left its volume")
        }

        /// A tandemctl started with stdout closed must not write its report into the control
        /// socket (which would otherwise take descriptor 1): the daemon sees only requests.
        @Test func tandemctlWithStdoutClosedWritesNothingIntoTheSocket() throws {
            let daemon = try DaemonProcess.started(extraArguments: ["--log-level", "debug"])
            let ctl = try Binaries.tandemctl()
            for json in [[], ["--json"]] {
                let script = #"exec "$0" "$@" >&-"#
                let result = try ExternalTool.run("/bin/sh", ["-c", script, ctl, "--socket", daemon.controlSocket]
                    + json + ["status", "--watch", "--count", "3", "--interval", "0.1"], timeoutSeconds: 30)
                #expect(result.succeeded, "\(result)")
            }
            #expect(try daemon.control().request("ping").ok == true)
            let log = (try? String(contentsOfFile: daemon.logPath, encoding: .utf8)) ?? ""
            #expect(!log.contains("control request refused"), "the daemon got garbage:\n\(daemon.logTail())")
        }

        /// tandemd started with stdout and stderr closed opens /dev/null onto them first, so no
        /// socket or ring of its own becomes descriptor 1 or 2 and receives its log lines.
        @Test func tandemdWithStdoutAndStderrClosedKeepsThemOnDevNull() throws {
            let daemon = try DaemonProcess()
            let notify = try NotifySocket(path: daemon.directory.file("notify.sock"))
            var environment = ProcessInfo.processInfo.environment
            environment["NOTIFY_SOCKET"] = notify.path
            let child = try ChildProcess(
                executable: "/bin/sh", arguments: ["-c", #"exec "$0" "$@" >&- 2>&-"#, try Binaries.tandemd()] + daemon.arguments,
                environment: environment, outputPath: daemon.directory.file("sh.log"))
            defer {
                child.signal(SIGTERM)
                _ = child.wait(timeoutSeconds: 30)
            }
            var ready = false
            for _ in 0..<300 where !ready && child.isRunning {
                ready = notify.receive(timeoutMs: 100)?.split(separator: "\n").contains("READY=1") == true
            }
            try #require(ready, "tandemd sent no READY=1 (exit status \(String(describing: child.exitStatus)))")
            #expect(try daemon.control().request("ping").ok == true)
            for descriptor in [1, 2] {
                let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(child.pid)/fd/\(descriptor)")
                #expect(target == "/dev/null", "descriptor \(descriptor) is \(target ?? "closed")")
            }
        }

        func expectNothingCreated(_ daemon: DaemonProcess, client: ControlClient) throws {
            let status = try client.request("status", ["name": "r0"])
            #expect(status.errorCode == "not-found", "a refused create left a resource: \(status)")
            #expect(!FileManager.default.fileExists(atPath: daemon.directory.file("r0.img")), "a refused create made a volume file")
        }
    }
}
