// `capabilities` (docs/control-protocol.md) against a real daemon: a control plane must be
// able to trust it. Everything it lists as supported is carried out (never answered
// `unsupported` or `unknown-command`), and everything it lists as unsupported is refused
// with `unsupported` and changes nothing. The lists are read from the reply, not repeated
// here, so the test follows the daemon's tables as they grow.
import Foundation
import TandemCore
import Testing

extension Integration {
    @Suite struct Capabilities {
        /// A valid non-default value for each resource setting (with what it needs beside it).
        static var sampleSettings: [String: JSONObject] { [
            "period_s": ["mode": "periodic", "period_s": 60],
            "rpo_target_ms": ["mode": "async", "rpo_target_ms": 500],
            "rpo_pacing_max_ms": ["mode": "async", "rpo_target_ms": 500, "rpo_pacing_max_ms": 50],
            "adaptive_latency_ms": ["mode": "adaptive", "adaptive_latency_ms": 20],
            "adaptive_switch_ms": ["mode": "adaptive", "adaptive_switch_ms": 2_000],
            "resync_rate": ["resync_rate": 100 << 20],
            "resync_rate_min": ["resync_rate_min": 64 << 20],
            "bandwidth": ["bandwidth": 100 << 20],
            "fencing": ["fencing": "suspend-io"],
            "after_split_brain": ["after_split_brain": "discard-zero-changes"],
            "compression": ["compression": "lz4"],
            "disk_drain": ["disk_drain": "flush"],
            "async_buffer_bytes": ["async_buffer_bytes": 64 << 20],
            "disk_timeout_ms": ["disk_timeout_ms": 30_000],
            "initial_sync": ["initial_sync": "none"],
            "mode": ["mode": "async"],
            "group_commit_us": ["group_commit_us": 500],
            "read_balancing": ["read_balancing": "round-robin"],
        ] }

        func createArguments(_ daemon: DaemonProcess, name: String) -> JSONObject {
            ["name": name, "volume": daemon.directory.file("\(name).img"), "size_bytes": 16 << 20,
             "nbd": ["socket": daemon.directory.file("\(name).sock")]]
        }

        func names(_ reply: JSONObject, _ key: String, _ part: String) -> [String] {
            ((reply[key] as? JSONObject)?[part] as? [Any] ?? []).compactMap { $0 as? String }
        }

        @Test func capabilitiesReportTheVersionsAndSplitEveryListCleanly() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            let ping = try client.request("ping")
            let capabilities = try client.request("capabilities")
            #expect(capabilities.ok == true, "\(capabilities)")
            #expect(capabilities["protocol_version"] as? Int == 1, "\(capabilities)")
            #expect(ping["protocol_version"] as? Int == 1, "ping lacks protocol_version: \(ping)")
            // The peer protocol this build speaks, for a rolling upgrade's check.
            #expect(capabilities["peer_protocol_version"] as? Int == Int(WireFormat.helloVersion), "\(capabilities)")
            #expect(capabilities.string("version") == ping.string("version") && ping.string("version") != nil)
            #expect(capabilities.string("node") == daemon.nodeName)
            for key in ["commands", "modes", "compression", "settings"] {
                let supported = names(capabilities, key, "supported")
                let unsupported = names(capabilities, key, "unsupported")
                #expect(!supported.isEmpty, "\(key): nothing supported: \(capabilities)")
                #expect(Set(supported).isDisjoint(with: unsupported), "\(key) listed both ways: \(capabilities)")
            }
            #expect(names(capabilities, "commands", "supported").contains("capabilities"))
            #expect(names(capabilities, "modes", "supported").contains("sync"), "\(capabilities)")
            #expect((capabilities["error_codes"] as? [String])?.contains("unsupported") == true)
        }

        @Test func everyCommandListedIsCarriedOutOrRefusedAsListed() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            let capabilities = try client.request("capabilities")
            for command in names(capabilities, "commands", "supported") where command != "events" {
                let reply = try client.request(command, ["name": "no-such-resource"])
                #expect(
                    !["unsupported", "unknown-command"].contains(reply.errorCode ?? ""),
                    "'\(command)' is listed as supported but answers \(reply)")
            }
            if names(capabilities, "commands", "supported").contains("events") {
                let stream = try daemon.control()
                let first = try stream.request("events", ["name": "no-such-resource"])
                #expect(first.ok == true && first.string("event") == "subscribed", "\(first)")
            }
            for command in names(capabilities, "commands", "unsupported") {
                try ControlSocket.expectRefused(try client.request(command, ["name": "no-such-resource"]), "unsupported", on: client)
            }
        }

        @Test func everyModeAndSettingListedUnsupportedIsRefusedAndCreatesNothing() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            let capabilities = try client.request("capabilities")
            var refusals: [(String, JSONObject)] = names(capabilities, "modes", "unsupported").map { mode in
                (mode, mode == "periodic" ? ["mode": mode, "period_s": 60] : ["mode": mode])
            }
            refusals += names(capabilities, "compression", "unsupported").map { ($0, ["compression": $0]) }
            for setting in names(capabilities, "settings", "unsupported") {
                let sample = try #require(Self.sampleSettings[setting], "no sample value for '\(setting)': add one")
                refusals.append((setting, sample))
            }
            for (label, arguments) in refusals {
                let reply = try client.request("create", createArguments(daemon, name: "r0").merging(arguments) { $1 })
                try ControlSocket.expectRefused(reply, "unsupported", on: client)
                #expect(try client.request("status", ["name": "r0"]).errorCode == "not-found", "\(label) created r0")
                #expect(!FileManager.default.fileExists(atPath: daemon.directory.file("r0.img")), "\(label) made a volume")
            }
        }

        @Test func everyModeCompressionAndSettingListedSupportedIsAccepted() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            let capabilities = try client.request("capabilities")
            var accepted: [(String, JSONObject)] = names(capabilities, "modes", "supported").map { mode in
                (mode, mode == "periodic" ? ["mode": mode, "period_s": 60] : ["mode": mode])  // it needs its period
            }
            accepted += names(capabilities, "compression", "supported").map { ($0, ["compression": $0]) }
            accepted += names(capabilities, "settings", "supported").compactMap { setting in
                Self.sampleSettings[setting].map { (setting, $0) }
            }
            for (index, (label, arguments)) in accepted.enumerated() {
                let name = "r\(index)"
                let reply = try client.request("create", createArguments(daemon, name: name).merging(arguments) { $1 })
                #expect(reply.ok == true, "\(label) is listed as supported but create answers \(reply)")
                for (key, value) in arguments where key != "name" {
                    #expect("\(reply[key] ?? "absent")" == "\(value)", "\(label): status reports \(key) = \(reply[key] ?? "absent")")
                }
                #expect(try client.request("delete", ["name": name]).ok == true)
            }
        }

        /// Every key of `live_settings` is changed by `set` on a running resource; a designed
        /// live setting not listed is refused as `unsupported`.
        @Test func everyLiveSettingListedChangesWithSetAndTheOthersAreRefused() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            let capabilities = try client.request("capabilities")
            #expect(try client.request("create", createArguments(daemon, name: "r0")).ok == true)
            let live = try #require(capabilities["live_settings"] as? [String])
            #expect(!live.isEmpty, "set is supported but changes nothing: \(capabilities)")
            // `period_s` changes on a periodic resource only (its sample names the mode).
            let periodic = createArguments(daemon, name: "p0").merging(["mode": "periodic", "period_s": 30]) { $1 }
            #expect(try client.request("create", periodic).ok == true)
            for setting in live {
                var sample = try #require(Self.sampleSettings[setting], "no sample value for '\(setting)': add one")
                let target = sample["mode"] as? String == "periodic" ? "p0" : "r0"
                if target == "p0" { sample["mode"] = nil }
                let reply = try client.request("set", sample.merging(["name": target]) { $1 })
                #expect(reply.ok == true, "\(setting) is listed live but set answers \(reply)")
                let status = try client.request("status", ["name": target])
                for (key, value) in sample { #expect("\(status[key] ?? "absent")" == "\(value)", "\(setting): \(status)") }
            }
            for setting in ["mode", "compression", "fencing", "bandwidth"] where !live.contains(setting) {
                let sample = try #require(Self.sampleSettings[setting])
                try ControlSocket.expectRefused(
                    try client.request("set", sample.merging(["name": "r0"]) { $1 }), "unsupported", on: client)
            }
        }

        @Test func tandemctlCapabilitiesPrintsWhatTheDaemonSays() throws {
            let daemon = try DaemonProcess.started()
            let ctl = try Binaries.tandemctl()
            let capabilities = try daemon.control().request("capabilities")
            let json = try ExternalTool.run(ctl, ["--socket", daemon.controlSocket, "--json", "capabilities"])
            #expect(json.succeeded, "\(json)")
            let printed = try #require(try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? JSONObject)
            #expect(printed["protocol_version"] as? Int == capabilities["protocol_version"] as? Int)
            #expect(names(printed, "commands", "unsupported") == names(capabilities, "commands", "unsupported"))

            let human = try ExternalTool.run(ctl, ["--socket", daemon.controlSocket, "capabilities"])
            #expect(human.succeeded, "\(human)")
            let commands = human.stdout.split(separator: "\n").first { $0.hasPrefix("commands: ") }
            #expect(commands == "commands: " + names(capabilities, "commands", "supported").joined(separator: " ")[...], "\(human.stdout)")
        }
    }
}
