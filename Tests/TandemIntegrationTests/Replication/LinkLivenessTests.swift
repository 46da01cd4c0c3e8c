// Bounded handshakes and peer liveness (docs/protocol.md, *Unauthenticated connections* and
// Ping/Pong): a peer with a valid certificate that stops anywhere in the handshake is
// dropped within a stated time, and a peer that vanishes without a TCP reset (its process
// stopped: the kernel still acknowledges, so TCP notices nothing) is declared gone within
// ping_timeout_ms plus the one-second check.
import Foundation
import Testing
import TandemCore
import TandemIO

extension Replication {
@Suite struct LinkLivenessTests {
    static let livenessArguments = ["--ping-interval-ms", "1000", "--ping-timeout-ms", "2000"]

    /// Where a hand-driven "alpha" (real TLS, alpha's certificate) stops.
    enum Stall: CaseIterable { case afterTLS, halfHello, beforeHelloReply }

    /// Stops the handshake at `stall`; returns the TLS stream, held open until released.
    static func stalledPrimary(_ pair: ReplicatedPair, at stall: Stall) throws -> (Int32, TLSBlockingStream) {
        let context = try TLSContext(
            role: .client, caFile: pair.certs.file("ca.crt"), certFile: pair.certs.file("alpha.crt"),
            keyFile: pair.certs.file("alpha.key"), expectedPeerName: "beta")
        let fd = try connectTo(pair.betaAddress)
        let stream = TLSBlockingStream(connection: try TLSConnection(context: context), fd: fd)
        try stream.handshake()
        let hello = try WireEncoder.encode(
            .hello(WireHello(role: .primary, nodeName: "alpha", resourceName: ReplicatedPair.resource,
                             volumeSizeBytes: UInt64(pair.sizeBytes), generations: WireGenerations(current: 7, bitmap: 0),
                             promotionNumber: 0)), promotionNumber: 0)
        switch stall {
        case .afterTLS: break
        case .halfHello: try stream.write(Array(hello.prefix(hello.count / 2)))
        case .beforeHelloReply:
            try stream.write(hello)
            // Beta's Hello and HelloReply: the session is beta's now, waiting for ours.
            var decoder = WireDecoder(checksOrdering: false)
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            var messages: [WireMessage] = []
            while messages.count < 2 {
                if let frame = try decoder.next() { messages.append(frame.message); continue }
                let count = try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }
                guard count > 0 else { throw HarnessError("beta closed before its HelloReply") }
                decoder.feed(buffer[0..<count])
            }
            guard case .hello = messages[0], case .helloReply(let reply) = messages[1], reply.isAccepted else {
                throw HarnessError("beta did not accept the Hello: \(messages)")
            }
        }
        return (fd, stream)
    }

    /// Seconds until beta closes `fd`, or nil when it still holds it after `timeoutSeconds`.
    static func secondsUntilClosed(_ fd: Int32, timeoutSeconds: Int) -> Double? {
        let start = Date()
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 { continue }  // TLS records (an alert, close_notify) before the end
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return nil }
            return Date().timeIntervalSince(start)
        }
    }

    @Test(arguments: Stall.allCases)
    func aPeerThatStallsInItsHandshakeIsDroppedWithinTheBound(_ stall: Stall) throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20, betaArguments: Self.livenessArguments)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        let (fd, stream) = try Self.stalledPrimary(pair, at: stall)
        defer { close(fd) }
        // Before the Hello is accepted the peer port's 2 s deadline (checked every 250 ms)
        // applies; after it, the link's own ping_timeout_ms (2 s here, checked every second).
        let boundSeconds = stall == .beforeHelloReply ? 2.0 + 1.0 : 2.25
        let seconds = Self.secondsUntilClosed(fd, timeoutSeconds: 15)
        withExtendedLifetime(stream) {}
        #expect(seconds != nil, "beta still holds a connection stalled at \(stall) after 15 s")
        if let seconds { #expect(seconds < boundSeconds + 0.5, "dropped after \(seconds) s, bound \(boundSeconds) s") }
        if stall == .beforeHelloReply {
            // The resource held the link, so the resource says why it ended.
            try pair.waitFor(pair.beta, timeoutSeconds: 5, "beta's last_error names the handshake") {
                ($0["last_error"] as? String)?.contains("handshake not finished within 2000 ms") == true
            }
        }
        #expect(try pair.beta.control().request("ping")["ok"] as? Bool == true)
    }

    /// SIGSTOP makes a node vanish without a reset. Each side in turn must see the other
    /// gone within ping_timeout_ms (2 s) and the 1 s check, and they reconnect once it is back.
    @Test func aPeerThatVanishesWithoutAResetIsNoticedWithinThePingTimeout() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20, alphaArguments: Self.livenessArguments,
                                      betaArguments: Self.livenessArguments)
        try pair.createAndEnable(initialSync: "none")
        try pair.waitInSync()
        // An idle, healthy link stays up: the Pings keep it alive (4 × the timeout).
        #expect(try pair.awaitEvents(pair.alpha, named: "connection-state", count: 1, timeoutSeconds: 8) == 0,
                "an idle link went down")
        for (stopped, watcher) in [(pair.beta, pair.alpha), (pair.alpha, pair.beta)] {
            kill(stopped.pid, SIGSTOP)
            defer { kill(stopped.pid, SIGCONT) }
            let start = Date()
            try pair.waitFor(watcher, timeoutSeconds: 15, "\(watcher.nodeName) sees the peer gone") {
                $0["connection_state"] as? String != "Connected"
            }
            let seconds = Date().timeIntervalSince(start)
            #expect(seconds < 2.0 + 1.0 + 0.5, "\(watcher.nodeName) noticed after \(seconds) s")
            try pair.waitFor(watcher, timeoutSeconds: 5, "\(watcher.nodeName)'s last_error names the silence") {
                ($0["last_error"] as? String)?.contains("nothing received from the peer") == true
            }
            kill(stopped.pid, SIGCONT)
            try pair.waitInSync(timeoutSeconds: 60)
        }
    }
}
}
