// The sync QD1 chain's loop turns on real daemons, from the request phase trace: a reply
// leaves in the turn that answered its request (sent directly at the turn's end, no turn
// spent on a ring send's completion), on a replicated write and on a read alike; and the
// replicated writes arrive intact (the Data frames and DataAcks sent directly are whole and
// in order).
import Foundation
import Testing

extension Replication {
@Suite struct ReplyTurnTests {
    /// "op/phase" -> the phase's fields, from a trace reply.
    func phases(_ daemon: DaemonProcess) throws -> [String: JSONObject] {
        let reply = try daemon.control().request("trace", ["name": ReplicatedPair.resource])
        guard reply.ok == true else { throw HarnessError("trace refused: \(reply)") }
        var result: [String: JSONObject] = [:]
        for case let phase as JSONObject in reply["phases"] as? [Any] ?? [] {
            result["\(phase.string("op") ?? "?")/\(phase.string("phase") ?? "?")"] = phase
        }
        return result
    }

    func turnsMean(_ phase: JSONObject?) -> Double? {
        switch phase?["turns_mean"] {
        case let value as Double: return value
        case let value as Int: return Double(value)
        default: return nil
        }
    }

    @Test func repliesLeaveInTheTurnThatAnsweredThem() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        try pair.createAndEnable(initialSync: "none")
        try pair.waitInSync()
        for daemon in [pair.alpha, pair.beta] {
            let on = try daemon.control().request("trace", ["name": ReplicatedPair.resource, "enable": true])
            #expect(on.ok == true, "\(on)")
        }
        let writes = 32
        let uri = "nbd+unix:///\(ReplicatedPair.resource)?socket=\(pair.nbdSocket(pair.alpha))"
        let commands = (0..<writes).map { "write -P \(0x20 + $0) \($0 * 64)k 4k" } + (0..<8).map { "read \($0 * 64)k 4k" }
        let io = try ExternalTool.run("qemu-io", ["-f", "raw"] + commands.flatMap { ["-c", $0] } + [uri])
        #expect(io.succeeded, "\(io)")

        let alpha = try phases(pair.alpha)
        for key in ["write/reply", "read/reply"] {
            #expect(alpha[key]?["count"] as? Int == (key.hasPrefix("write") ? writes : 8), "\(key): \(alpha)")
            // Before direct sends every reply took one turn: its sendmsg's completion.
            #expect(turnsMean(alpha[key]) == 0, "\(key) took loop turns: \(String(describing: alpha[key]))")
        }
        // The secondary's ack leaves in the turn its write completed.
        let beta = try phases(pair.beta)
        #expect(beta["write/secondary_ack"]?["count"] as? Int == writes, "\(beta)")
        #expect(turnsMean(beta["write/secondary_ack"]) == 0, "\(String(describing: beta["write/secondary_ack"]))")

        // Every write reached the secondary whole (sync: applied there before alpha answered).
        let copy = try Data(contentsOf: URL(fileURLWithPath: pair.volume(pair.beta)))
        for index in 0..<writes {
            let block = copy[(index * 65_536)..<(index * 65_536 + 4096)]
            #expect(block.allSatisfy { $0 == UInt8(0x20 + index) }, "write \(index) on beta")
        }
    }
}
}
