import TandemCore
import Testing

@testable import TandemIO

@Suite struct TLSWireChannelTests {
    let certs = TestCertificates.shared

    func pair() throws -> (client: TLSWireChannel, server: TLSWireChannel) {
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

    func move(from source: TLSWireChannel, to destination: TLSWireChannel) throws {
        var buffer = [UInt8](repeating: 0, count: 32 << 10)
        try source.flush()
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

extension TLSWireChannelTests {
    /// Staged messages and payloads too large to stage arrive whole and in the order sent.
    @Test func stagedAndDirectPayloadsArriveInOrder() throws {
        let (client, server) = try pair()
        var expected: [WireMessage] = []
        var random = SplitMix64(seed: 3)
        var sequence: UInt64 = 1
        for round in 0..<200 {
            let sizes = [512, 4096, TLSWireChannel.stagedPayloadMax, TLSWireChannel.stagedPayloadMax + 4096, 256 << 10]
            let size = sizes[Int(random.next() % UInt64(sizes.count))]
            let block = (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ round) }
            let header = WireDataHeader(epoch: 1, sequence: sequence, offsetBytes: UInt64(round) * 4096,
                                        lengthBytes: UInt32(size), flags: [], crc32c: CRC32C.checksum(block))
            try block.withUnsafeBytes { try client.sendData(header, payload: $0) }
            expected.append(.data(WireData(header: header, payload: block[...])))
            sequence += 1
            if random.next() % 2 == 0 {
                try client.send(.ping(nonce: UInt64(round)))
                expected.append(.ping(nonce: UInt64(round)))
            }
            // Flush (as at a turn's end) only now and then, so that many messages share one.
            if random.next() % 8 == 0 { try move(from: client, to: server) }
        }
        try move(from: client, to: server)
        #expect(try frames(server) == expected)
    }

    @Test func nothingStagedIsSentBeforeAFlush() throws {
        let (client, _) = try pair()
        try client.send(.ping(nonce: 9))
        #expect(client.hasStaged)
        var buffer = [UInt8](repeating: 0, count: 4096)
        #expect(buffer.withUnsafeMutableBytes { client.takeCiphertext(into: $0) } == 0)
        try client.flush()
        #expect(!client.hasStaged)
        #expect(buffer.withUnsafeMutableBytes { client.takeCiphertext(into: $0) } > 0)
    }
}
