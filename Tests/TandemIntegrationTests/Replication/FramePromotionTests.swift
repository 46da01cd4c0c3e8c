// The promotion number in every frame header (docs/protocol.md, *Frame header*): a real
// primary's frames carry its persisted number, and a frame from its peer that claims a
// promotion after the peer's Hello makes it stop accepting writes (demoted-by-promotion).
// The peer is hand-driven (a TLS listener with beta's certificate): no real node changes its
// number in the middle of a link.
import Foundation
import Testing
import TandemCore
import TandemIO

extension Replication {
@Suite struct FramePromotionTests {
    /// A hand-driven "beta" that alpha dials: TLS with beta's certificate, then the handshake.
    final class FakeSecondary {
        let listener: TCPEnd
        private var connection: TCPEnd?
        private var stream: TLSBlockingStream?
        private var decoder = WireDecoder(checksOrdering: false)
        private var buffer = [UInt8](repeating: 0, count: 64 << 10)

        init() throws { listener = try TCPEnd.listening() }

        /// Accepts alpha's dial and completes the handshake; alpha's Hello frame.
        func acceptHandshake(pair: ReplicatedPair, promotion: UInt64) throws -> WireFrame {
            let end = try listener.accept(timeoutSeconds: 30)
            connection = end
            let context = try TLSContext(
                role: .server, caFile: pair.certs.file("ca.crt"), certFile: pair.certs.file("beta.crt"),
                keyFile: pair.certs.file("beta.key"), expectedPeerName: "alpha")
            let stream = TLSBlockingStream(connection: try TLSConnection(context: context), fd: end.fd)
            self.stream = stream
            try stream.handshake()
            let hello = try nextFrame()
            try send(.hello(WireHello(role: .secondary, nodeName: "beta", resourceName: ReplicatedPair.resource,
                                      volumeSizeBytes: UInt64(pair.sizeBytes),
                                      generations: WireGenerations(current: 0, bitmap: 0), promotionNumber: promotion)),
                     promotion: promotion)
            try send(.helloReply(WireHelloReply()), promotion: promotion)
            guard case .helloReply(let reply) = try nextFrame().message, reply.isAccepted else {
                throw HarnessError("alpha did not accept the fake secondary")
            }
            return hello
        }

        func send(_ message: WireMessage, promotion: UInt64) throws {
            try stream!.write(try WireEncoder.encode(message, promotionNumber: promotion))
        }

        func nextFrame() throws -> WireFrame {
            var timeout = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(connection!.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            while true {
                if let frame = try decoder.next() { return frame }
                let count = try buffer.withUnsafeMutableBytes { try stream!.read(into: $0) }
                guard count > 0 else { throw HarnessError("alpha closed the connection") }
                decoder.feed(buffer[0..<count])
            }
        }

        /// The next Pong (other frames, such as alpha's own Pings, are skipped).
        func pong() throws -> WireFrame {
            while true {
                let frame = try nextFrame()
                if case .pong = frame.message { return frame }
            }
        }

        /// True once alpha has ended the connection.
        func closedByPeer() -> Bool {
            do {
                while true { _ = try nextFrame() }
            } catch {
                return true
            }
        }
    }

    @Test func everyFrameCarriesThePromotionNumberAndAHigherOneFromThePeerDemotesThePrimary() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        let fake = try FakeSecondary()
        // alpha promoted once by force (P = 1), then enabled: it dials the fake secondary.
        try pair.create(on: pair.alpha, role: "secondary", peer: ("beta", fake.listener.address), mode: "sync",
                        initialSync: "none", compression: "none")
        let promoted = try pair.expectOK(try pair.alpha.control().request(
            "failover", ["name": ReplicatedPair.resource, "force": true]))
        #expect(promoted["promotion"] as? Int == 1, "\(promoted)")
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        let hello = try fake.acceptHandshake(pair: pair, promotion: 1)
        guard case .hello(let alphaHello) = hello.message else { throw HarnessError("alpha sent \(hello.message.type) first") }
        #expect(alphaHello.promotionNumber == 1 && hello.header.promotionNumber == 1, "\(hello.header)")
        // The peer's number as its Hello said: no claim, alpha answers.
        try fake.send(.ping(nonce: 7), promotion: 1)
        let pong = try fake.pong()
        #expect(pong.header.promotionNumber == 1, "alpha's frames carry its promotion number: \(pong.header)")
        #expect(try pair.status(pair.alpha)["demoted_by_promotion"] == nil)

        // A frame claiming promotion 4: the peer was promoted after alpha while the link lived.
        try fake.send(.ping(nonce: 8), promotion: 4)
        #expect(fake.closedByPeer(), "alpha kept the link")
        let demoted = try pair.waitFor(pair.alpha, "alpha demoted by promotion") { $0["demoted_by_promotion"] != nil }
        #expect((demoted["demoted_by_promotion"] as? String)?.contains("promotion number 4, above the 1 of its Hello") == true,
                "\(demoted)")
        #expect(demoted["role"] as? String == "primary" && demoted["disk_state"] as? String == "Outdated", "\(demoted)")
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: ReplicatedPair.resource)
        #expect(throws: HarnessError.self) { try client.write(offset: 0, data: [UInt8](repeating: 0xA5, count: 4096)) }
        client.disconnect()
        try pair.alpha.stop()
    }
}
}
