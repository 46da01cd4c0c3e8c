// The OCF resource agent ocf/tandem, run as Pacemaker runs it (the OCF environment:
// OCF_ROOT, OCF_RESOURCE_INSTANCE, OCF_RESKEY_*) against two real daemons. Pacemaker itself
// is not here: a recording `crm_master` on PATH stands in for the cluster tool so the
// promotion scores the agent sets can be checked.
// ocf-tester, from Debian's resource-agents, runs its own fixed sequence of actions on one
// instance and checks each exit code against the OCF spec; the tests here add the other
// node, the promotion scores, refusals and the data across a failover.
import Foundation
import Testing

/// One node's instance of the agent.
struct OCFAgent {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("ocf/tandem").path
    static let success: Int32 = 0, generic: Int32 = 1, unimplemented: Int32 = 3, installed: Int32 = 5
    static let configured: Int32 = 6, notRunning: Int32 = 7, runningPromoted: Int32 = 8

    let recorder: TempDirectory
    var parameters: [String: String]
    let instance: String

    init(socket: String, instance: String, resource: String = ReplicatedPair.resource) throws {
        recorder = try TempDirectory("crm")
        self.instance = instance
        parameters = [
            "resource": resource, "socket": socket, "tandemctl": try Binaries.tandemctl(), "peer_connect_timeout": "2",
        ]
        let shim = recorder.file("crm_master")
        try "#!/bin/sh\necho \"$OCF_RESOURCE_INSTANCE $*\" >> \(recorder.file("scores"))\n"
            .write(toFile: shim, atomically: true, encoding: .utf8)
        chmod(shim, 0o755)
    }

    /// Runs one action; `extra` overrides parameters for this call ("" removes one).
    func run(_ action: String, _ extra: [String: String] = [:], environment more: [String: String] = [:]) throws -> ToolResult {
        let ocfRoot = FileManager.default.fileExists(atPath: "/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs")
            ? "/usr/lib/ocf" : recorder.path
        var environment = [
            "OCF_ROOT": ocfRoot, "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "0",
            "OCF_RESOURCE_INSTANCE": instance, "OCF_RESOURCE_TYPE": "tandem",
            "PATH": recorder.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
        ]
        for (key, value) in parameters.merging(extra, uniquingKeysWith: { $1 }) where !value.isEmpty {
            environment["OCF_RESKEY_\(key)"] = value
        }
        return try ExternalTool.run(Self.path, [action], timeoutSeconds: 180, environment: environment.merging(more) { $1 })
    }

    func status(_ action: String, _ extra: [String: String] = [:], environment: [String: String] = [:]) throws -> Int32 {
        let result = try run(action, extra, environment: environment)
        #expect(!result.timedOut, "\(result)")
        return result.status
    }

    /// The last `crm_master` call: "-Q -l reboot -v 1000" or "-Q -l reboot -D".
    var lastScore: String? {
        let text = (try? String(contentsOfFile: recorder.file("scores"), encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").last else { return nil }
        let prefix = "\(instance) -Q -l reboot "
        return line.hasPrefix(prefix) ? String(line.dropFirst(prefix.count)) : "unexpected: \(line)"
    }
}

extension Replication {
@Suite struct PacemakerAgentTests {
    func role(_ pair: ReplicatedPair, _ daemon: DaemonProcess) throws -> String? { try pair.status(daemon)["role"] as? String }

    @Test func agentStartsPromotesDemotesAndStopsARealPairWithOCFExitCodes() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "full", compression: "none")
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddress), mode: "sync",
                        initialSync: "full", compression: "none")
        let alpha = try OCFAgent(socket: pair.alpha.controlSocket, instance: "tandem:0")
        let beta = try OCFAgent(socket: pair.beta.controlSocket, instance: "tandem:1")
        #expect(try alpha.status("validate-all") == OCFAgent.success)
        #expect(try beta.status("validate-all") == OCFAgent.success)
        #expect(try alpha.status("monitor") == OCFAgent.notRunning)
        #expect(try beta.status("monitor") == OCFAgent.notRunning)

        // beta has never had its initial copy: started, but never promoted, even when told
        // it may promote without its peer.
        #expect(try beta.status("start") == OCFAgent.success)
        #expect(try beta.status("monitor") == OCFAgent.success)
        #expect(beta.lastScore == "-D")
        #expect(try beta.status("promote", ["promote_without_peer": "true"]) == OCFAgent.generic)
        #expect(try role(pair, pair.beta) == "secondary")
        #expect(beta.lastScore == "-D")

        // Started means unpromoted: alpha's primary steps down. A secondary with no primary
        // connected cannot promise UpToDate: its copy is Consistent, the lower score.
        #expect(try alpha.status("start") == OCFAgent.success)
        #expect(try alpha.status("monitor") == OCFAgent.success)
        #expect(try role(pair, pair.alpha) == "secondary")
        #expect(alpha.lastScore == "-v 5")
        // Two secondaries have no connection: promotion needs promote_without_peer.
        #expect(try alpha.status("promote") == OCFAgent.generic)
        #expect(try role(pair, pair.alpha) == "secondary")
        #expect(try alpha.status("promote", ["promote_without_peer": "true"]) == OCFAgent.success)
        #expect(try alpha.status("monitor") == OCFAgent.runningPromoted)
        #expect(alpha.lastScore == "-v 10000")
        try pair.waitInSync()
        #expect(try beta.status("monitor") == OCFAgent.success)
        #expect(beta.lastScore == "-v 1000")

        // A planned failover: what alpha acknowledged is what beta serves.
        let alphaURI = "nbd+unix:///r0?socket=\(pair.nbdSocket(pair.alpha))"
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "write -P 0x5a 1M 2M", alphaURI])
        #expect(try beta.status("promote") == OCFAgent.success)
        #expect(try beta.status("monitor") == OCFAgent.runningPromoted)
        #expect(try alpha.status("monitor") == OCFAgent.success)
        #expect(try beta.status("promote") == OCFAgent.success, "promoting a promoted instance succeeds")
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "read -P 0x5a 1M 2M",
                                           "nbd+unix:///r0?socket=\(pair.nbdSocket(pair.beta))"])

        #expect(try beta.status("demote") == OCFAgent.success)
        #expect(try beta.status("monitor") == OCFAgent.success)
        #expect(try role(pair, pair.beta) == "secondary")
        #expect(try beta.status("demote") == OCFAgent.success, "demoting an unpromoted instance succeeds")

        #expect(try beta.status("stop") == OCFAgent.success)
        #expect(try beta.status("monitor") == OCFAgent.notRunning)
        #expect(beta.lastScore == "-D")
        #expect(try beta.status("stop") == OCFAgent.success, "stopping a stopped instance succeeds")
        #expect(try alpha.status("stop") == OCFAgent.success)
        #expect(try alpha.status("monitor") == OCFAgent.notRunning)
        #expect(try beta.status("start") == OCFAgent.success)
        #expect(try beta.status("start") == OCFAgent.success, "starting a started instance succeeds")
        #expect(try beta.status("monitor") == OCFAgent.success)
        #expect(try beta.status("notify", environment: [
            "OCF_RESKEY_CRM_meta_notify_type": "post", "OCF_RESKEY_CRM_meta_notify_operation": "start",
        ]) == OCFAgent.success)
    }

    @Test func ocfTesterPassesAgainstTheSecondaryOfARealPair() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "full", compression: "none")
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddress), mode: "sync",
                        initialSync: "full", compression: "none")
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        let beta = try OCFAgent(socket: pair.beta.controlSocket, instance: "tandem:1")
        // As root, ocf-tester runs meta-data as `nobody`: give it a copy it can reach
        // wherever the checkout lives.
        let agent = beta.recorder.file("tandem")
        try FileManager.default.copyItem(atPath: OCFAgent.path, toPath: agent)
        chmod(agent, 0o755)
        chmod(beta.recorder.path, 0o755)
        // Its sequence demotes and re-promotes beta with nobody primary, which needs
        // promote_without_peer (a cluster would fence the other node first).
        let tester = try ExternalTool.run("ocf-tester", [
            "-n", "tandem:1", "-o", "resource=r0", "-o", "socket=\(pair.beta.controlSocket)",
            "-o", "tandemctl=\(try Binaries.tandemctl())", "-o", "promote_without_peer=true",
            "-o", "peer_connect_timeout=3", agent,
        ], timeoutSeconds: 300, environment: [
            "OCF_ROOT": "/usr/lib/ocf",
            "PATH": beta.recorder.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
        ])
        #expect(tester.succeeded && tester.stdout.contains("passed all tests"), "\(tester)")
        #expect(beta.lastScore == "-D", "stopped at the end: no score")
    }

    /// docs/pacemaker.md's exit codes when the daemon has no such resource (a configuration
    /// error on this node: 6 wherever the agent is asked to make it run, not running for
    /// monitor, success for stop and notify), and for a standalone one.
    @Test func missingAndStandaloneResourcesGetTheDocumentedExitCodes() throws {
        let daemon = try DaemonProcess.started()
        let created = try daemon.control().request("create", [
            "name": "solo", "volume": daemon.directory.file("solo.img"), "size_bytes": 4 << 20,
            "nbd": ["socket": daemon.directory.file("solo.nbd")],
        ])
        #expect(created["ok"] as? Bool == true, "\(created)")
        let missing = try OCFAgent(socket: daemon.controlSocket, instance: "tandem:0", resource: "nope")
        let expected: [(String, Int32)] = [
            ("validate-all", OCFAgent.configured), ("start", OCFAgent.configured), ("promote", OCFAgent.configured),
            ("demote", OCFAgent.configured), ("monitor", OCFAgent.notRunning), ("stop", OCFAgent.success),
            ("notify", OCFAgent.success),
        ]
        for (action, code) in expected {
            let result = try missing.run(action)
            #expect(result.status == code, "\(action) of a missing resource: \(result)")
        }
        let solo = try OCFAgent(socket: daemon.controlSocket, instance: "tandem:0", resource: "solo")
        for action in ["start", "promote", "demote"] {
            let result = try solo.run(action)
            #expect(result.status == OCFAgent.configured, "\(action) of a standalone resource: \(result)")
        }
        #expect(try daemon.control().request("status", ["name": "solo"])["role"] as? String == "standalone")
    }

    @Test func agentMetadataIsValidAndBadParametersAreRefused() throws {
        let daemon = try DaemonProcess.started()
        let created = try daemon.control().request("create", [
            "name": "solo", "volume": daemon.directory.file("solo.img"), "size_bytes": 4 << 20,
            "nbd": ["socket": daemon.directory.file("solo.nbd")],
        ])
        #expect(created["ok"] as? Bool == true, "\(created)")
        let agent = try OCFAgent(socket: daemon.controlSocket, instance: "tandem:0", resource: "solo")

        let metadata = try agent.run("meta-data")
        #expect(metadata.status == OCFAgent.success)
        let xml = agent.recorder.file("metadata.xml")
        try metadata.stdout.write(toFile: xml, atomically: true, encoding: .utf8)
        try ExternalTool.check("xmllint", ["--noout", "--dtdvalid", "/usr/share/resource-agents/ra-api-1.dtd", xml])
        let actions = try ExternalTool.check("xmllint", ["--xpath", "//action/@name", xml]).stdout
        for action in ["start", "stop", "promote", "demote", "monitor", "notify", "meta-data", "validate-all"] {
            #expect(actions.contains("name=\"\(action)\""), "meta-data lacks action \(action): \(actions)")
        }
        let required = try ExternalTool.check("xmllint", ["--xpath", "string(//parameter[@name='resource']/@required)", xml])
        #expect(required.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        for parameter in ["socket", "tandemctl", "promote_without_peer", "peer_connect_timeout", "promotion_scores"] {
            #expect(metadata.stdout.contains("<parameter name=\"\(parameter)\""), "meta-data lacks \(parameter)")
        }

        // A standalone resource has no peer: it cannot be a promotable clone.
        #expect(try agent.status("validate-all") == OCFAgent.configured)
        #expect(try agent.status("start") == OCFAgent.configured)
        #expect(try agent.status("validate-all", ["resource": "nope"]) == OCFAgent.configured)
        #expect(try agent.status("validate-all", ["resource": ""]) == OCFAgent.configured)
        #expect(try agent.status("validate-all", ["resource": "bad name"]) == OCFAgent.configured)
        #expect(try agent.status("validate-all", ["promotion_scores": "1 2"]) == OCFAgent.configured)
        #expect(try agent.status("validate-all", ["promotion_scores": "10 5 1 0"]) == OCFAgent.configured)
        #expect(try agent.status("validate-all", ["peer_connect_timeout": "soon"]) == OCFAgent.configured)
        #expect(try agent.status("validate-all", ["promote_without_peer": "maybe"]) == OCFAgent.configured)
        #expect(try agent.status("validate-all", ["socket": "relative.sock"]) == OCFAgent.configured)
        #expect(try agent.status("validate-all", environment: ["OCF_RESKEY_CRM_meta_promoted_max": "2"])
                == OCFAgent.configured)
        #expect(try agent.status("validate-all", ["tandemctl": "/nonexistent/tandemctl"]) == OCFAgent.installed)
        // Without tandemctl nothing can run: a probe finds it stopped and a stop succeeds.
        #expect(try agent.status("monitor", ["tandemctl": "/nonexistent/tandemctl"]) == OCFAgent.notRunning)
        #expect(try agent.status("stop", ["tandemctl": "/nonexistent/tandemctl"]) == OCFAgent.success)
        // No daemon at the socket: not running, and start fails.
        let nowhere = daemon.directory.file("absent.sock")
        #expect(try agent.status("monitor", ["socket": nowhere]) == OCFAgent.notRunning)
        #expect(try agent.status("start", ["socket": nowhere]) == OCFAgent.generic)
        #expect(try agent.status("migrate_to") == OCFAgent.unimplemented)
    }
}
}
