import Testing
@testable import TandemCore

/// A peer that vanishes without a reset is declared dead within the timeout; a busy link is
/// never pinged; a handshake that stalls is ended at the same bound.
struct LinkLivenessTests {
    let config = LinkLivenessConfig(pingIntervalNs: 2_000_000_000, timeoutNs: 6_000_000_000)
    let second: UInt64 = 1_000_000_000

    @Test func aSilentPeerIsPingedOncePerIntervalThenDeclaredDead() {
        var liveness = LinkLiveness(config: config, nowNs: 0)
        liveness.established(nowNs: 0)
        let verdicts = (1...6).map { liveness.check(nowNs: UInt64($0) * second, heard: false) }
        #expect(verdicts[0] == .alive)
        #expect(verdicts[1] == .ping)
        #expect(verdicts[2] == .alive)
        #expect(verdicts[3] == .ping)
        #expect(verdicts[4] == .alive)
        guard case .dead(let reason) = verdicts[5] else { Issue.record("alive after 6 s of silence"); return }
        #expect(reason.contains("6000 ms"), "\(reason)")
    }

    @Test func aBusyLinkIsNeverPinged() {
        var liveness = LinkLiveness(config: config, nowNs: 0)
        liveness.established(nowNs: 0)
        for tick in 1...100 { #expect(liveness.check(nowNs: UInt64(tick) * second, heard: true) == .alive) }
    }

    /// A secondary receiving a large chunk over a slow link hears bytes all along but has
    /// nothing to send: it pings, so that its primary (whose own Ping waits behind the chunk)
    /// keeps hearing it.
    @Test func aSideThatOnlyReceivesPingsOnItsFreeDirection() {
        var liveness = LinkLiveness(config: config, nowNs: 0)
        liveness.established(nowNs: 0)
        let verdicts = (1...4).map { liveness.check(nowNs: UInt64($0) * second, heard: true, sent: $0 == 3) }
        #expect(verdicts == [.alive, .ping, .alive, .alive], "one Ping per interval of sending nothing")
    }

    @Test func anAnsweredPingKeepsTheLinkAlive() {
        var liveness = LinkLiveness(config: config, nowNs: 0)
        liveness.established(nowNs: 0)
        #expect(liveness.check(nowNs: 2 * second, heard: false) == .ping)
        #expect(liveness.check(nowNs: 3 * second, heard: true) == .alive)  // the Pong
        let verdicts = (4...9).map { liveness.check(nowNs: UInt64($0) * second, heard: false) }
        #expect(verdicts[0..<5] == [.alive, .ping, .alive, .ping, .alive], "\(verdicts)")
        guard case .dead = verdicts[5] else { Issue.record("alive 6 s after the Pong: \(verdicts)"); return }
    }

    /// This side's loop did not run for 10 s (the host was overloaded): the bytes the peer
    /// sent meanwhile wait unread, so the gap is not the peer's silence. The peer gets one
    /// interval to be heard, and a peer that stays silent is still declared dead.
    @Test func aStallOfThisSideIsNotCountedAgainstThePeer() {
        var liveness = LinkLiveness(config: config, nowNs: 0)
        liveness.established(nowNs: 0)
        #expect(liveness.check(nowNs: 1 * second, heard: true) == .alive)
        #expect(liveness.check(nowNs: 11 * second, heard: false) == .ping, "a stall of 10 s is not 10 s of silence")
        #expect(liveness.check(nowNs: 12 * second, heard: true) == .alive)
        let verdicts = (13...18).map { liveness.check(nowNs: UInt64($0) * second, heard: false) }
        guard case .dead = verdicts[5] else { Issue.record("a silent peer outlived the timeout after a stall: \(verdicts)"); return }
    }

    @Test func aHandshakeThatStallsEndsAtTheTimeoutWhateverArrives() {
        var liveness = LinkLiveness(config: config, nowNs: 10 * second)
        #expect(liveness.check(nowNs: 15 * second, heard: true) == .alive)
        guard case .dead(let reason) = liveness.check(nowNs: 16 * second, heard: true) else {
            Issue.record("a handshake went on past the timeout")
            return
        }
        #expect(reason.contains("handshake"), "\(reason)")
    }
}
