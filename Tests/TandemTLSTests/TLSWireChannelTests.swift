import TandemCore
import Testing

@testable import TandemIO

@Suite struct TLSWireChannelTests {
    let certs = TestCertificates.shared

    private func pair() throws -> (client: TLSWireChannel, server: TLSWireChannel) {
        let client = TLSWireChannel(
            connection: try TLSConnection(context: certs.context(.client, node: "alpha", expecting: "beta")),
            promotionNumber: 4)
        let server = TLSWireChannel(
            connection: try TLSConnection(context: certs.context(.server, node: "beta", expecting: "alpha")),
            promotionNumber: 4)
        try client.start()
        for _ in 0..<10 {
            try move(from: client, to: server)
            try move(from: server, to: client)
        }
        #expect(client.isEstablished && server.isEstablished)
        return (client, server)
    }

    private func move(from source: TLSWireChannel, to destination: TLSWireChannel) throws {
        var buffer = [UInt8](repeating: 0, count: 32 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { source.takeCiphertext(into: $0) }
            if count == 0 { return }
            _ = try buffer[0..<count].withUnsafeBytes { try destination.receiveCiphertext($0) }
        }
    }

    private func frames(_ channel: TLSWireChannel) throws -> [WireMessage] {
        var messages: [WireMessage] = []
        while let frame = try channel.nextFrame() { messages.append(frame.message) }
        return messages
    }

    @Test func handshakeDataAndAcksFlowBetweenTwoChannels() throws {
        let (client, server) = try pair()
        let hello = WireHello(
            role: .primary, nodeName: "alpha", resourceName: "r0", volumeSizeBytes: 1 << 20,
            generations: WireGenerations(current: 1, bitmap: 0), promotionNumber: 4)
        try client.send(.hello(hello))
        let block = [UInt8](repeating: 0x42, count: 8192)
        let header = WireDataHeader(
            epoch: 1, sequence: 1, offsetBytes: 0, lengthBytes: 8192, flags: [.fua], crc32c: CRC32C.checksum(block))
        try block.withUnsafeBytes { try client.sendData(header, payload: $0) }
        try client.send(.epochBarrier(epoch: 1, writeCount: 1))
        try move(from: client, to: server)
        let received = try frames(server)
        #expect(received.count == 3)
        #expect(received.first == .hello(hello))
        #expect(received[1] == .data(WireData(header: header, payload: block[...])))

        try server.send(.helloReply(WireHelloReply()))
        try server.send(.durableAck(epoch: 1))
        try move(from: server, to: client)
        #expect(try frames(client) == [.helloReply(WireHelloReply()), .durableAck(epoch: 1)])
    }

    @Test func aProtocolViolationInsideTLSIsAWireError() throws {
        let (client, server) = try pair()
        let garbage = [UInt8](repeating: 0xEE, count: 100)
        try garbage.withUnsafeBytes { try client.connection.writePlaintext($0) }
        try move(from: client, to: server)
        #expect(throws: PeerChannelError.wire(.badMagic(0xEEEE_EEEE))) { try server.nextFrame() }
    }

    @Test func aClosedSessionWithAHalfFrameIsTruncated() throws {
        let (client, server) = try pair()
        let frame = try WireEncoder.encode(.ping(nonce: 1), promotionNumber: 4)
        try frame[0..<10].withUnsafeBytes { try client.connection.writePlaintext($0) }
        client.close()
        var buffer = [UInt8](repeating: 0, count: 32 << 10)
        let count = buffer.withUnsafeMutableBytes { client.takeCiphertext(into: $0) }
        let open = try buffer[0..<count].withUnsafeBytes { try server.receiveCiphertext($0) }
        #expect(open == false)
        #expect(try server.nextFrame() == nil)
        #expect(throws: PeerChannelError.wire(.truncated(bufferedBytes: 10))) { try server.finish() }
    }
}
