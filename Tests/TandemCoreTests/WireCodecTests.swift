import TandemCore
import Testing

@Suite struct WireCodecTests {
    static let everyMessage: [WireMessage] = [
        .hello(WireFixtures.hello),
        .helloReply(WireHelloReply()),
        .helloReply(WireHelloReply(refusal: .splitBrain, reason: "both nodes wrote while apart — résumé")),
        WireFixtures.data(sequence: 1, epoch: 1, payload: Array(repeating: 0xAB, count: 4096)),
        .data(
            WireData(
                header: WireDataHeader(
                    epoch: 2, sequence: 2, offsetBytes: 1 << 40, lengthBytes: 8192, flags: [.fua, .compressed],
                    crc32c: 0xDEAD_BEEF),
                payload: [9, 8, 7][...])),
        .epochBarrier(epoch: 2, writeCount: 1),  // the one Data frame of epoch 2 above
        .dataAck(epoch: 2, sequence: 2),
        .durableAck(epoch: 2),
        .flushRequest(epoch: 3),
        .ping(nonce: 0x0102_0304_0506_0708),
        .pong(nonce: UInt64.max),
        .resendComplete(throughSequence: 42),
        .syncComplete(throughSequence: 43),
        .failoverRequest(promotion: 1),
        .demoted(throughSequence: 0),
        .catchUpInPlace(session: 0x0A0B_0C0D),
        .caughtUp(session: 0x0E0F_1011),
        .replicaHello(WireReplicaHello(durableThroughEpoch: 7, diskState: .inconsistent)),
        .digestRequest(offsetBytes: 5 << 20, lengthBytes: 1 << 20),
        .digests(offsetBytes: 4096, lengthBytes: 8192, digest: RegionDigest(high: 0x0123_4567_89AB_CDEF, low: .max)),
    ]

    @Test func everyMessageRoundTripsWithItsPromotionNumber() throws {
        var stream: [UInt8] = []
        for (index, message) in Self.everyMessage.enumerated() {
            stream += try WireEncoder.encode(message, promotionNumber: UInt64(index) + 100)
        }
        let frames = try WireFixtures.decodeAll(stream)
        #expect(frames.map(\.message) == Self.everyMessage)
        #expect(frames.map(\.header.promotionNumber) == (0..<Self.everyMessage.count).map { UInt64($0) + 100 })
    }

    @Test func fragmentedFeedingYieldsTheSameFramesByteByByte() throws {
        var stream: [UInt8] = []
        for message in Self.everyMessage { stream += try WireEncoder.encode(message, promotionNumber: 1) }
        var decoder = WireDecoder()
        var frames: [WireMessage] = []
        for byte in stream {
            decoder.feed([byte])
            while let frame = try decoder.next() { frames.append(frame.message) }
        }
        try decoder.finish()
        #expect(frames == Self.everyMessage)
    }

    @Test func randomlySizedPiecesYieldTheSameFrames() throws {
        var stream: [UInt8] = []
        for message in Self.everyMessage { stream += try WireEncoder.encode(message, promotionNumber: 1) }
        for seed in 0..<20 as Range<UInt64> {
            var random = WireTestRandom(seed: seed)
            var decoder = WireDecoder()
            var frames: [WireMessage] = []
            var index = 0
            while index < stream.count {
                let piece = min(Int.random(in: 1...700, using: &random), stream.count - index)
                stream[index..<(index + piece)].withUnsafeBytes { decoder.feed($0) }
                index += piece
                while let frame = try decoder.next() { frames.append(frame.message) }
            }
            #expect(frames == Self.everyMessage, "seed \(seed)")
        }
    }

    @Test func dataPrefixPlusReferencedPayloadEqualsTheWholeFrame() throws {
        let payload = (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
        let message = WireFixtures.data(sequence: 9, epoch: 4, payload: payload)
        guard case .data(let data) = message else { return }
        var prefix = [UInt8](repeating: 0, count: WireEncoder.dataPrefixBytes)
        let written = try prefix.withUnsafeMutableBytes { buffer in
            try WireEncoder.encodeDataPrefix(data.header, payloadBytes: payload.count, promotionNumber: 5, into: buffer)
        }
        #expect(written == WireEncoder.dataPrefixBytes)
        #expect(prefix + payload == (try WireEncoder.encode(message, promotionNumber: 5)))
    }

    @Test func encodingIntoACallerBufferReportsItsSize() throws {
        var buffer = [UInt8](repeating: 0, count: 256)
        for message in Self.everyMessage where message.type != .data {
            let written = try buffer.withUnsafeMutableBytes {
                try WireEncoder.encode(message, promotionNumber: 3, into: $0)
            }
            #expect(written == WireEncoder.encodedBytes(message))
            #expect(Array(buffer[0..<written]) == (try WireEncoder.encode(message, promotionNumber: 3)))
        }
        var small = [UInt8](repeating: 0, count: 10)
        #expect(throws: WireEncodeError.bufferTooSmall(needed: 32, available: 10)) {
            try small.withUnsafeMutableBytes { try WireEncoder.encode(.ping(nonce: 1), promotionNumber: 0, into: $0) }
        }
    }

    @Test func encoderRefusesWhatThePeerWouldRefuse() {
        var hello = WireFixtures.hello
        hello.nodeName = String(repeating: "n", count: 256)
        #expect(throws: WireEncodeError.self) { try WireEncoder.encode(.hello(hello), promotionNumber: 0) }
        let bad = WireData(
            header: WireDataHeader(
                epoch: 1, sequence: 1, offsetBytes: 0, lengthBytes: 4, flags: [.compressed], crc32c: 0),
            payload: [1, 2, 3, 4][...])
        #expect(throws: WireEncodeError.self) { try WireEncoder.encode(.data(bad), promotionNumber: 0) }
    }

    @Test func diskFailedRefusalTravelsAsCode10AndAnUnknownCodeIsCarriedThrough() throws {
        #expect(WireRefusal.diskFailed.rawValue == 10)
        #expect(WireRefusal.diskFailed.description == "disk-failed")
        #expect(WireRefusal(rawValue: 11).description == "code-11")
        for refusal in [WireRefusal.diskFailed, WireRefusal(rawValue: 11)] {
            let bytes = try WireEncoder.encode(
                .helloReply(WireHelloReply(refusal: refusal, reason: "write: No space left on device")), promotionNumber: 0)
            guard case .helloReply(let reply) = try WireFixtures.decodeAll(bytes).first?.message else {
                Issue.record("no reply decoded")
                return
            }
            #expect(reply.refusal == refusal)
        }
    }

    @Test func longRefusalReasonsAreCutAtACharacterBoundary() throws {
        let reason = String(repeating: "é", count: 600)
        let bytes = try WireEncoder.encode(
            .helloReply(WireHelloReply(refusal: .other, reason: reason)), promotionNumber: 0)
        guard case .helloReply(let reply) = try WireFixtures.decodeAll(bytes).first?.message else {
            Issue.record("no reply decoded")
            return
        }
        #expect(reply.reason.utf8.count == WireFormat.maxReasonBytes)
        #expect(reply.refusal == .other)
    }

    @Test func largeFramesSurviveBufferGrowthAndCompactionWhilePayloadsAreHeld() throws {
        var random = WireTestRandom(seed: 5)
        var messages: [WireMessage] = []
        for index in 0..<6 {
            let count = Int.random(in: 1...300_000, using: &random)
            let payload = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            messages.append(WireFixtures.data(sequence: UInt64(index + 1), epoch: 1, payload: payload))
            messages.append(.ping(nonce: UInt64(index)))
        }
        var stream: [UInt8] = []
        for message in messages { stream += try WireEncoder.encode(message, promotionNumber: 1) }
        var decoder = WireDecoder()
        var held: [WireMessage] = []
        var index = 0
        while index < stream.count {
            let piece = min(Int.random(in: 1...100_000, using: &random), stream.count - index)
            let written = decoder.receive(upTo: piece + 17) { tail in
                stream[index..<(index + piece)].withUnsafeBytes { tail.copyMemory(from: $0) }
                return piece
            }
            #expect(written == piece)
            index += piece
            while let frame = try decoder.next() { held.append(frame.message) }
        }
        try decoder.finish()
        #expect(held == messages)
    }
}
