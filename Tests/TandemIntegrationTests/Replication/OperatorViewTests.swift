// What an operator reads from a real pair: `tandemctl status` (the table's shape and the
// reasons for what is wrong) and `tandemctl events` (the initial dump, then changes, each
// with its time), for a healthy pair and for one whose secondary is gone. Timing values
// (lag, RPO, timestamps) are checked for their form, never their value.
import Foundation
import TandemCore
import Testing

extension Replication {
@Suite struct OperatorViewTests {
    static let header = ["NAME", "ROLE", "CONNECTION", "DISK", "PEER-DISK", "REPLICATION", "OUT-OF-SYNC", "LAG", "RPO"]

    func tandemctl(_ daemon: DaemonProcess, _ arguments: [String]) throws -> ToolResult {
        try ExternalTool.run(try Binaries.tandemctl(), ["--socket", daemon.controlSocket] + arguments, timeoutSeconds: 30)
    }

    func lines(_ text: String) -> [String] { text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }

    func words(_ line: String) -> [String] { line.split(separator: " ").map(String.init) }

    /// The `exists` line and the `initial-done` line that `tandemctl events` starts with.
    func initialDump(_ daemon: DaemonProcess) throws -> (exists: String, done: String) {
        let events = try tandemctl(daemon, ["events", "--count", "2"])
        #expect(events.succeeded, "\(events)")
        let printed = lines(events.stdout).filter { !$0.isEmpty }
        guard printed.count == 2 else { throw HarnessError("expected two event lines: \(events)") }
        #expect(printed[0].wholeMatch(of: #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z r0 exists .+/#) != nil, "\(printed[0])")
        #expect(printed[1].wholeMatch(of: #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z - initial-done/#) != nil, "\(printed[1])")
        return (printed[0], printed[1])
    }

    @Test func healthyPairShowsOneRowPerNodeAndNoReasons() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.createAndEnable()
        try pair.waitInSync()
        // The protocol the connected peer named (a rolling upgrade's check).
        let view = try pair.status(pair.alpha)
        #expect(view["peer_protocol_version"] as? Int == Int(WireFormat.helloVersion), "\(view)")

        let alpha = try tandemctl(pair.alpha, ["status"])
        #expect(alpha.succeeded, "\(alpha)")
        let alphaLines = lines(alpha.stdout).filter { !$0.isEmpty }
        #expect(alphaLines.count == 2, "a healthy pair needs no reasons:\n\(alpha.stdout)")
        #expect(words(alphaLines[0]) == Self.header)
        #expect(Array(words(alphaLines[1]).prefix(7)) == ["r0", "primary", "Connected", "UpToDate", "UpToDate", "Established", "0B"])
        #expect(words(alphaLines[1])[7].wholeMatch(of: #/\d+(\.\d)?(B|KiB|MiB)/#) != nil, "LAG in human units: \(alphaLines[1])")
        #expect(words(alphaLines[1])[8].wholeMatch(of: #/\d+(ms|(\.\d)?s)/#) != nil, "RPO in human units: \(alphaLines[1])")

        let beta = try tandemctl(pair.beta, ["status"])
        let betaLines = lines(beta.stdout).filter { !$0.isEmpty }
        #expect(betaLines.count == 2, "a healthy pair needs no reasons:\n\(beta.stdout)")
        // A connected secondary knows its primary's copy: it is the newest there is.
        #expect(Array(words(betaLines[1]).prefix(6)) == ["r0", "secondary", "Connected", "UpToDate", "UpToDate", "Established"])

        let dump = try initialDump(pair.alpha)
        for field in ["role=primary", "connection_state=Connected", "disk_state=UpToDate", "peer_disk_state=UpToDate",
                      "enabled=true"] {
            #expect(words(dump.exists).contains(field), "\(dump.exists)")
        }

        // --json keeps the objects as the daemon sent them, one per line.
        let raw = try tandemctl(pair.alpha, ["--json", "events", "--count", "2"])
        let objects = lines(raw.stdout).filter { !$0.isEmpty }.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? JSONObject
        }
        #expect(objects.map { $0["event"] as? String } == ["subscribed", "exists", "initial-done"], "\(raw)")
        #expect(objects.count == 3 && objects[1]["initial"] as? Bool == true && objects[1]["time_ms"] is Int)
    }

    @Test func lostSecondaryIsExplainedInStatusAndEvents() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.createAndEnable()
        try pair.waitInSync()
        let stream = try pair.alpha.control()
        try stream.sendLine(Array(#"{"id": 1, "cmd": "events", "name": "r0"}"#.utf8))
        #expect(try stream.readReply()["event"] as? String == "subscribed")
        pair.beta.crash()
        // Every reason alpha gives must be one it published as a peer-error event.
        var messages: Set<String> = []
        func note(_ event: JSONObject) {
            if event["event"] as? String == "peer-error", let message = event["message"] as? String { messages.insert(message) }
        }
        let deadline = Date().addingTimeInterval(30)
        var lost = false
        while !lost, Date() < deadline {
            let event = try stream.readReply()
            note(event)
            lost = event["event"] as? String == "connection-state" && event["connection_state"] as? String != "Connected"
        }
        #expect(lost, "alpha never reported the lost connection")
        try pair.waitFor(pair.alpha, timeoutSeconds: 30, "alpha to record why the peer is gone") {
            $0["last_error"] is String && $0["connection_state"] as? String != "Connected"
        }

        let status = try tandemctl(pair.alpha, ["status"])
        #expect(status.succeeded, "\(status)")
        var drained = false
        while !drained { let event = try stream.readReply(); note(event); drained = event["event"] as? String == "heartbeat" }
        let printed = lines(status.stdout)
        #expect(words(printed[0]) == Self.header)
        #expect(Array(words(printed[1]).prefix(2)) == ["r0", "primary"])
        #expect(words(printed[1])[2] != "Connected")
        #expect(printed[2] == "", "a blank line separates the table from the reasons:\n\(status.stdout)")
        let reasons = printed.filter { $0.hasPrefix("r0: peer not connected: ") }
        #expect(reasons.count == 1, "\(status.stdout)")
        let reason = String(reasons.first?.dropFirst("r0: peer not connected: ".count) ?? "")
        #expect(messages.contains(reason), "reason '\(reason)' is none of the peer errors \(messages)")

        let dump = try initialDump(pair.alpha)
        #expect(!words(dump.exists).contains("connection_state=Connected"), "\(dump.exists)")
        #expect(dump.exists.contains("last_error="), "\(dump.exists)")
    }

    @Test func eventsPrintsEachChangeAfterTheInitialDump() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.createAndEnable()
        try pair.waitInSync()
        let output = try TempDirectory("events")
        let follower = try ChildProcess(
            executable: try Binaries.tandemctl(), arguments: ["--socket", pair.alpha.controlSocket, "events", "r0"],
            outputPath: output.file("events.txt"))
        defer { follower.signal(SIGTERM); _ = follower.wait(timeoutSeconds: 10) }
        try waitForLine(in: output.file("events.txt"), matching: " - initial-done")
        try pair.expectOK(try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource]))
        let disabled = try waitForLine(in: output.file("events.txt"), matching: " r0 disabled")
        #expect(disabled.wholeMatch(of: #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z r0 disabled/#) != nil, "\(disabled)")
        let text = try String(contentsOfFile: output.file("events.txt"), encoding: .utf8)
        let kinds = lines(text).filter { !$0.isEmpty }.map { words($0)[2] }
        #expect(kinds.first == "exists" && kinds.dropFirst().first == "initial-done", "\(text)")
    }

    /// Waits (bounded) until tandemctl's output file has a line containing `text`.
    @discardableResult
    func waitForLine(in path: String, matching text: String) throws -> String {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let content = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if let line = lines(content).first(where: { $0.contains(text) }) { return line }
            usleep(20_000)
        }
        throw HarnessError("no line with '\(text)' in \(path)")
    }
}
}
