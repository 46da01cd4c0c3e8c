import TandemCore
import Testing

/// What a secondary reports when its probe of the peer ends (SecondaryProbeEnd).
@Suite struct SecondaryProbeEndTests {
    @Test func aProbeTheSecondaryCalledOffLearntNothing() {
        #expect(SecondaryProbeEnd.primaryConnected.finding == nil)
        #expect(SecondaryProbeEnd.stopping.finding == nil)
    }

    @Test func theLinksOwnWordsAreReportedWhateverTheySay() {
        // Once decided by comparing strings: a peer (or a TLS error) whose words happened to
        // be "resource stopping" was silently dropped. The typed end cannot be confused.
        #expect(SecondaryProbeEnd.linkClosed(reason: "resource stopping").finding
            == "no connection from the primary; the peer answered a probe: resource stopping")
        #expect(SecondaryProbeEnd.linkClosed(reason: "refused by the peer: role-conflict: 'b' is secondary").finding
            == "no connection from the primary; the peer answered a probe: refused by the peer: role-conflict: 'b' is secondary")
    }

    @Test func aHandshakeThePeerAcceptedIsReported() {
        #expect(SecondaryProbeEnd.handshakeCompleted.finding
            == "no connection from the primary; the peer answered a probe: probe done")
    }

    @Test func aDialThatFailedIsReported() {
        #expect(SecondaryProbeEnd.dialFailed(reason: "connection refused").finding
            == "no connection from the primary; probing the peer failed: connection refused")
    }
}
