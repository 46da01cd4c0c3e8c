// The end of a verify on the wire (protocol 10, VerifyEnd, docs/protocol.md): the secondary
// says `VerifyT` while the primary compares, and leaves it when the primary's verify ends, not
// two seconds after the last DigestRequest (as it infers the end from a primary of protocol 9).
// Both nodes are polled side by side while the verify runs, slowed by `resync_rate`.
//
// The test runs once the build's Hello names `WireFormat.verifyEndVersion`: before that no
// node sends VerifyEnd, and a secondary keeps `VerifyT` for two seconds after the walk.
import Foundation
import TandemCore
import Testing

extension Replication {
@Suite(.serialized) struct VerifyEndTests {
    static let speaksVerifyEnd = WireFormat.helloVersion >= WireFormat.verifyEndVersion
    /// Well under the two seconds a secondary waits for an older primary's next DigestRequest.
    static let lagSecondsMax = 0.5

    @Test(.enabled(if: speaksVerifyEnd))
    func bothNodesLeaveVerifyWhenTheVerifyEnds() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        try pair.createAndEnable()
        try pair.waitInSync()
        let resource = ["name": ReplicatedPair.resource]
        // 16 regions of 1 MiB at 8 MiB/s: the walk takes about two seconds.
        try pair.expectOK(try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "resync_rate": 8 << 20]))
        try pair.expectOK(try pair.alpha.control().request("verify", resource))
        var betaStates: Set<String> = []
        var endedAt: Date?
        let deadline = Date().addingTimeInterval(60)
        while endedAt == nil, Date() < deadline {
            let alpha = try pair.status(pair.alpha)
            betaStates.insert(try pair.status(pair.beta)["replication_state"] as? String ?? "-")
            if (alpha["verify"] as? JSONObject)?["running"] as? Bool == false { endedAt = Date() }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let ended = try #require(endedAt, "the verify did not end within 60 s")
        #expect(betaStates.contains("VerifyT"), "beta said VerifyT while alpha compared: \(betaStates)")
        let beta = try pair.waitFor(pair.beta, timeoutSeconds: 10, "beta leaves VerifyT") {
            $0["replication_state"] as? String == "Established"
        }
        let lagSeconds = Date().timeIntervalSince(ended)
        FileHandle.standardError.write(Data("beta left VerifyT \(lagSeconds) s after alpha's verify ended\n".utf8))
        #expect(lagSeconds < Self.lagSecondsMax, "beta said VerifyT \(lagSeconds) s after the end: \(beta)")
        let alpha = try pair.status(pair.alpha)
        #expect(alpha["replication_state"] as? String == "Established", "\(alpha)")
        #expect((alpha["verify"] as? JSONObject)?["checked_bytes"] as? Int == 16 << 20, "\(alpha)")
    }
}
}
