// The request phase trace on real daemons: with the trace on, every 4 KiB write qemu-io sends
// through a sync pair is counted once in every phase of its path on the primary (receive,
// admission, local write, send, the peer's round trip, the replicator's answer, the reply, the
// total) and once in every phase of the secondary's own trace; the metrics publish the same
// counts; off, nothing is added; reads on a standalone resource have their own phases; and
// bad `trace` requests are refused and change nothing.
import Foundation
import Testing

extension Replication {
@Suite struct RequestTraceTests {
    static let primaryWritePhases = ["receive", "admit", "local_io", "send", "peer_round_trip", "replicate", "reply", "total"]
    static let secondaryWritePhases = ["secondary_receive", "secondary_apply", "secondary_ack", "secondary_total"]

    func trace(_ daemon: DaemonProcess, enable: Bool? = nil) throws -> JSONObject {
        var args: JSONObject = ["name": ReplicatedPair.resource]
        if let enable { args["enable"] = enable }
        let reply = try daemon.control().request("trace", args)
        guard reply.ok == true else { throw HarnessError("trace refused: \(reply)") }
        return reply
    }

    /// "op/phase" -> count, from a trace reply.
    func counts(_ reply: JSONObject) -> [String: Int] {
        var result: [String: Int] = [:]
        for case let phase as JSONObject in reply["phases"] as? [Any] ?? [] {
            result["\(phase.string("op") ?? "?")/\(phase.string("phase") ?? "?")"] = phase["count"] as? Int
        }
        return result
    }

    func qemuIO(_ socket: String, _ commands: [String]) throws {
        let uri = "nbd+unix:///\(ReplicatedPair.resource)?socket=\(socket)"
        let result = try ExternalTool.run("qemu-io", ["-f", "raw"] + commands.flatMap { ["-c", $0] } + [uri])
        guard result.succeeded else { throw HarnessError("qemu-io failed: \(result)") }
    }

    @Test func everyReplicatedWriteIsCountedOnceInEveryPhaseOnBothNodes() throws {
        let alphaMetrics = "127.0.0.1:\(try ReplicatedPair.freePort())"
        let betaMetrics = "127.0.0.1:\(try ReplicatedPair.freePort())"
        let pair = try ReplicatedPair(sizeBytes: 16 << 20, alphaArguments: ["--metrics-listen", alphaMetrics],
                                      betaArguments: ["--metrics-listen", betaMetrics])
        try pair.createAndEnable(initialSync: "none")
        try pair.waitInSync()
        #expect(try trace(pair.alpha)["enabled"] as? Bool == false)
        #expect(try MetricsScrape.scrape(alphaMetrics).series("tandem_trace_enabled").isEmpty)
        _ = try trace(pair.alpha, enable: true)
        _ = try trace(pair.beta, enable: true)

        let writes = 40
        try qemuIO(pair.nbdSocket(pair.alpha), (0..<writes).map { "write -P 0x5a \($0 * 8)k 4k" })
        let alpha = counts(try trace(pair.alpha))
        for phase in Self.primaryWritePhases {
            #expect(alpha["write/\(phase)"] == writes, "alpha write/\(phase): \(alpha)")
        }
        #expect(alpha.keys.allSatisfy { $0.hasPrefix("write/") && !$0.contains("secondary") }, "\(alpha)")
        // The secondary acknowledged each write before alpha answered it: its counts are final.
        let beta = counts(try trace(pair.beta))
        for phase in Self.secondaryWritePhases {
            #expect(beta["write/\(phase)"] == writes, "beta write/\(phase): \(beta)")
        }
        // Besides them only the group commits' phases, once per flush and per DurableAck (at
        // most one each per write; how many depends on the group commit's timing).
        let groupCommitPhases: Set<String> = ["write/secondary_flush", "write/secondary_durable"]
        let others = beta.filter { !Self.secondaryWritePhases.contains(String($0.key.dropFirst("write/".count))) }
        #expect(Set(others.keys).isSubset(of: groupCommitPhases) && others.values.allSatisfy { $0 <= writes }, "\(beta)")

        let alphaScrape = try MetricsScrape.scrape(alphaMetrics)
        let betaScrape = try MetricsScrape.scrape(betaMetrics)
        try alphaScrape.lint()
        let r0 = ["resource": ReplicatedPair.resource, "op": "write"]
        #expect(try alphaScrape.value("tandem_trace_enabled", ["resource": ReplicatedPair.resource]) == 1)
        for phase in Self.primaryWritePhases {
            let labels = r0.merging(["phase": phase]) { $1 }
            #expect(try alphaScrape.value("tandem_trace_phase_seconds_count", labels) == Double(writes))
            #expect(try alphaScrape.value("tandem_trace_phase_loop_turns_count", labels) == Double(writes))
        }
        #expect(try alphaScrape.value("tandem_trace_phase_seconds_sum", r0.merging(["phase": "peer_round_trip"]) { $1 }) > 0)
        #expect(try betaScrape.value("tandem_trace_phase_seconds_count", r0.merging(["phase": "secondary_total"]) { $1 })
                == Double(writes))

        // Off: the counts stay as they were and nothing is added.
        #expect(try trace(pair.alpha, enable: false)["enabled"] as? Bool == false)
        try qemuIO(pair.nbdSocket(pair.alpha), ["write -P 0x11 0 4k", "write -P 0x12 8k 4k"])
        #expect(counts(try trace(pair.alpha)) == alpha)

        // On again: counting restarts from zero; reads have phases of their own.
        _ = try trace(pair.alpha, enable: true)
        try qemuIO(pair.nbdSocket(pair.alpha), (0..<8).map { "read \($0 * 4)k 4k" })
        let reads = counts(try trace(pair.alpha))
        #expect(reads == Dictionary(uniqueKeysWithValues: ["receive", "admit", "local_io", "reply", "total"].map { ("read/\($0)", 8) }),
                "\(reads)")
    }

    @Test func badTraceRequestsAreRefusedAndChangeNothing() throws {
        let export = try NBDExport(sizeBytes: 8 << 20)
        let daemon = try #require(export.daemon)
        let client = try daemon.control()
        let refusals: [(JSONObject, String)] = [
            ([:], "missing-argument"),
            (["name": 7], "invalid-argument"),
            (["name": "no-such-resource", "enable": true], "not-found"),
            (["name": "r0", "enable": "yes"], "invalid-argument"),
            (["name": "r0", "enable": true, "reset": true], "invalid-argument"),
        ]
        for (args, code) in refusals {
            let reply = try client.request("trace", args)
            #expect(reply.ok == false && reply.errorCode == code, "trace \(args): \(reply)")
        }
        let state = try client.request("trace", ["name": "r0"])
        #expect(state.ok == true && state["enabled"] as? Bool == false, "\(state)")

        // tandemctl prints the summary as a table, one row per phase.
        let ctl = try Binaries.tandemctl()
        let on = try ExternalTool.run(ctl, ["--socket", daemon.controlSocket, "trace", "r0", "--on"])
        #expect(on.succeeded && on.stdout.contains("trace r0: on"), "\(on)")
        try qemuIO(export.socketPath, ["read 0 4k", "read 4k 4k"])
        let shown = try ExternalTool.run(ctl, ["--socket", daemon.controlSocket, "trace", "r0"])
        let rows = shown.stdout.split(separator: "\n").filter { $0.hasPrefix("read ") }
        #expect(rows.count == 5 && rows.allSatisfy { $0.split(separator: " ", omittingEmptySubsequences: true)[2] == "2" },
                "\(shown)")
        let both = try ExternalTool.run(ctl, ["--socket", daemon.controlSocket, "trace", "r0", "--on", "--off"])
        #expect(!both.succeeded)
    }
}
}
