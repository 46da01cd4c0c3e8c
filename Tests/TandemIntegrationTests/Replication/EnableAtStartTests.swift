// A resource whose replication fails to come back at daemon start (docs/operations.md,
// *Starting the daemon*): the operator sees it in status and in the events stream, not only
// in the log. Alpha's TLS key is moved away while it is stopped: its resource opens and
// serves, but re-enabling replication cannot build a TLS context. Asserted: `last_error` names
// the failure, `enabled` false and `replication_state` Off (true words: nothing replicates),
// the events stream's initial dump carries it, and once the key is back an `enable` clears it
// and the pair is in sync again.
import Foundation
import Testing

extension Replication {
@Suite struct EnableAtStartTests {
    @Test func aResourceThatCannotReEnableAtStartSaysWhyInStatusAndEvents() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.createAndEnable(initialSync: "none")
        try pair.waitInSync()
        try pair.alpha.stop()
        let key = "\(pair.certs.path)/alpha.key"
        try FileManager.default.moveItem(atPath: key, toPath: key + ".aside")
        try pair.alpha.start()
        let status = try pair.status(pair.alpha)
        let lastError = status["last_error"] as? String ?? ""
        #expect(lastError.contains("re-enabled at start") && lastError.contains("TLS"), "\(status)")
        #expect(status["enabled"] as? Bool == false && status["replication_state"] as? String == "Off", "\(status)")
        #expect(status["connection_state"] as? String != "Connected", "\(status)")
        // A control plane that subscribes after the start sees it in the initial dump.
        let events = try pair.alpha.control()
        try events.sendLine(Array(#"{"id": 0, "cmd": "events"}"#.utf8))
        #expect(try events.readReply()["event"] as? String == "subscribed")
        let exists = try events.readReply()
        #expect(exists["event"] as? String == "exists" && exists["enabled"] as? Bool == false, "\(exists)")
        #expect((exists["last_error"] as? String ?? "").contains("re-enabled at start"), "\(exists)")
        #expect(try String(contentsOfFile: pair.alpha.logPath, encoding: .utf8).contains("event enable-failed"))
        // Fixed, then enabled: the error goes, replication comes back.
        try FileManager.default.moveItem(atPath: key + ".aside", toPath: key)
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.waitInSync()
        #expect(!((try pair.status(pair.alpha))["last_error"] as? String ?? "").contains("re-enabled at start"))
    }
}
}
