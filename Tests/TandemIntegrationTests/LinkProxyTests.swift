// The test proxy itself, with plain loopback sockets and no daemons: what the catch-up tests
// conclude from its byte counts and its cut is only as good as these checks.
import Foundation
import Testing

extension Integration {
@Suite struct LinkProxyTests {
    @Test func forwardsBytesBothWaysAndCountsThemExactly() throws {
        let target = try TCPEnd.listening()
        let proxy = try LinkProxy(target: target.address)
        defer { proxy.stop() }
        let client = try TCPEnd.connected(to: proxy.port)
        let server = try target.accept(timeoutSeconds: 5)
        #expect(proxy.waitForConnections(1, timeoutSeconds: 5))
        let up = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let down = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        let sender = Thread { try? client.sendAll(up) }  // more than the socket buffers hold
        sender.start()
        #expect(try server.readExactly(up.count, timeoutSeconds: 10) == up)
        try server.sendAll(down)
        #expect(try client.readExactly(down.count, timeoutSeconds: 10) == down)
        // The counter moves after the write returns: wait for it, then it must be exact.
        #expect(proxy.waitForForwarded(.fromTarget, atLeast: down.count, timeoutSeconds: 5))
        #expect(proxy.waitForForwarded(.toTarget, atLeast: up.count, timeoutSeconds: 5))
        #expect(proxy.forwardedBytes(.toTarget) == up.count)
        #expect(proxy.forwardedBytes(.fromTarget) == down.count)
        #expect(proxy.connectionsAccepted == 1 && proxy.connectionsOpen == 1)
        proxy.resetCounters()
        #expect(proxy.forwardedBytes(.toTarget) == 0 && proxy.connectionsAccepted == 0)
    }

    @Test func cutClosesBothPeersAndRefusesNewConnectionsUntilHeal() throws {
        let target = try TCPEnd.listening()
        let proxy = try LinkProxy(target: target.address)
        defer { proxy.stop() }
        let client = try TCPEnd.connected(to: proxy.port)
        let server = try target.accept(timeoutSeconds: 5)
        // The target sees the connection just before the proxy counts it as established.
        #expect(proxy.waitForConnections(1, timeoutSeconds: 5))
        proxy.cut()
        #expect(proxy.connectionsOpen == 0)
        #expect(client.readUntilEnd(timeoutSeconds: 5), "the dialling side still reads after cut")
        #expect(server.readUntilEnd(timeoutSeconds: 5), "the target side still reads after cut")
        // A new connection is accepted and closed at once, and never reaches the target.
        let refused = try TCPEnd.connected(to: proxy.port)
        #expect(refused.readUntilEnd(timeoutSeconds: 5), "a connection during the cut stayed open")
        #expect(proxy.connectionsRefused == 1, "refused \(proxy.connectionsRefused), last: \(proxy.lastRefusal)")
        #expect(proxy.connectionsAccepted == 1, "accepted \(proxy.connectionsAccepted)")
        #expect(target.pendingConnection(timeoutSeconds: 0.2) == false, "a connection during the cut reached the target")
        proxy.heal()
        let again = try TCPEnd.connected(to: proxy.port)
        let served = try target.accept(timeoutSeconds: 5)
        #expect(proxy.waitForConnections(2, timeoutSeconds: 5), "accepted \(proxy.connectionsAccepted)")
        try again.sendAll(Array("after heal".utf8))
        #expect(try served.readExactly(10, timeoutSeconds: 5) == Array("after heal".utf8))
    }

    @Test func aStalledDirectionHoldsItsBytesWhileTheOtherFlows() throws {
        let target = try TCPEnd.listening()
        let proxy = try LinkProxy(target: target.address)
        defer { proxy.stop() }
        let client = try TCPEnd.connected(to: proxy.port)
        let server = try target.accept(timeoutSeconds: 5)
        proxy.stall([.toTarget])
        try client.sendAll([UInt8](repeating: 0x11, count: 10_000))
        try server.sendAll([UInt8](repeating: 0x22, count: 5000))
        #expect(try client.readExactly(5000, timeoutSeconds: 5) == [UInt8](repeating: 0x22, count: 5000))
        // Nothing crosses while stalled (a bounded look: an event cannot show an absence).
        #expect(server.pendingBytes(timeoutSeconds: 0.3) == false)
        #expect(proxy.forwardedBytes(.toTarget) == 0)
        proxy.resume()
        #expect(try server.readExactly(10_000, timeoutSeconds: 5) == [UInt8](repeating: 0x11, count: 10_000))
    }

    /// The token bucket's promise: bytes forwarded by t ≤ rate × t + burst, sampled all along,
    /// and so N bytes take at least (N − burst) / rate.
    @Test func aCappedDirectionNeverOutrunsRateTimesTimePlusBurst() throws {
        let target = try TCPEnd.listening()
        let proxy = try LinkProxy(target: target.address)
        defer { proxy.stop() }
        let client = try TCPEnd.connected(to: proxy.port)
        let server = try target.accept(timeoutSeconds: 5)
        let rateBytesPerSecond = 1 << 20
        let burstBytes = 16 << 10  // less than a chunk read: written a burst at a time
        let totalBytes = 3 << 19  // 1.5 MiB: about 1.4 s at the cap
        let start = Date()
        proxy.capBytesPerSecond(rateBytesPerSecond, burstBytes: burstBytes, [.toTarget])
        let sender = Thread { try? client.sendAll([UInt8](repeating: 0x5A, count: totalBytes)) }
        sender.start()
        var received = 0
        var worstExcessBytes = Int.min
        while received < totalBytes {
            received += try server.readSome(upTo: totalBytes - received, timeoutSeconds: 10)
            let forwarded = proxy.forwardedBytes(.toTarget)
            let allowed = Int(Double(rateBytesPerSecond) * Date().timeIntervalSince(start)) + burstBytes
            worstExcessBytes = max(worstExcessBytes, forwarded - allowed)
        }
        let seconds = Date().timeIntervalSince(start)
        #expect(worstExcessBytes <= 0, "forwarded \(worstExcessBytes) bytes beyond rate × t + burst")
        #expect(seconds >= Double(totalBytes - burstBytes) / Double(rateBytesPerSecond), "took \(seconds) s")
        #expect(seconds < 10, "a capped direction must still deliver: took \(seconds) s")
    }

    /// A delayed direction holds each chunk for the delay but keeps its throughput: a round
    /// trip takes both delays, and 8 MiB cross in far less than 8 MiB / chunk × delay (12.8 s).
    @Test func aDelayedLinkAddsItsDelayToEachWayButKeepsItsThroughput() throws {
        let target = try TCPEnd.listening()
        let proxy = try LinkProxy(target: target.address)
        defer { proxy.stop() }
        let client = try TCPEnd.connected(to: proxy.port)
        let server = try target.accept(timeoutSeconds: 5)
        let delayMs = 100
        proxy.delay(milliseconds: delayMs)
        let start = Date()
        try client.sendAll([1])
        _ = try server.readExactly(1, timeoutSeconds: 5)
        try server.sendAll([2])
        _ = try client.readExactly(1, timeoutSeconds: 5)
        let roundTripSeconds = Date().timeIntervalSince(start)
        #expect(roundTripSeconds >= 2 * Double(delayMs) / 1000, "round trip \(roundTripSeconds) s")
        let totalBytes = 8 << 20
        let bulkStart = Date()
        let sender = Thread { try? client.sendAll([UInt8](repeating: 0x33, count: totalBytes)) }
        sender.start()
        var received = 0
        while received < totalBytes { received += try server.readSome(upTo: totalBytes - received, timeoutSeconds: 10) }
        let bulkSeconds = Date().timeIntervalSince(bulkStart)
        #expect(bulkSeconds >= Double(delayMs) / 1000 && bulkSeconds < 5, "8 MiB took \(bulkSeconds) s")
        proxy.delay(milliseconds: 0)
    }

    /// stop() joins every thread (it preconditions that) and closes every descriptor: the
    /// process holds as many as before once the test's own sockets are gone too.
    @Test func stopClosesEveryDescriptor() throws {
        let before = try Self.openDescriptors()
        do {
            let target = try TCPEnd.listening()
            let proxy = try LinkProxy(target: target.address)
            let clients = try (0..<3).map { _ in try TCPEnd.connected(to: proxy.port) }
            let servers = try clients.map { _ in try target.accept(timeoutSeconds: 5) }
            #expect(proxy.waitForConnections(3, timeoutSeconds: 5))
            #expect(proxy.connectionsOpen == 3)
            proxy.stop()
            #expect(proxy.connectionsOpen == 0)
            #expect(servers.allSatisfy { $0.readUntilEnd(timeoutSeconds: 5) })
        }
        #expect(try Self.openDescriptors() == before)
    }

    static func openDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    }
}
}
