import TandemCore
import Testing

/// Every way a peer's bytes can be wrong yields a precise error, never a trap.
@Suite struct WireDecoderErrorTests {
    typealias F = WireFixtures
    let eight = F.le(UInt64(1))

    @Test func badMagicIsRefused() {
        #expect(F.firstError(F.rawFrame(type: 8, body: eight, magic: 0x5054_5448)) == .badMagic(0x5054_5448))
    }

    @Test func unsupportedVersionIsRefused() {
        #expect(F.firstError(F.rawFrame(type: 8, body: eight, version: 1)) == .unsupportedVersion(1))
        #expect(F.firstError(F.rawFrame(type: 8, body: eight, version: 0)) == .unsupportedVersion(0))
    }

    @Test func corruptedHeaderFailsItsChecksum() {
        var frame = F.rawFrame(type: 8, body: eight)
        frame[14] ^= 0x01
        guard case .headerChecksumMismatch = F.firstError(frame) else {
            Issue.record("expected a checksum mismatch")
            return
        }
    }

    @Test func unknownTypeAndReservedFlagsAreRefused() {
        #expect(F.firstError(F.rawFrame(type: 99, body: eight)) == .unknownType(99))
        #expect(F.firstError(F.rawFrame(type: 0, body: eight)) == .unknownType(0))
        #expect(F.firstError(F.rawFrame(type: 15, body: eight)) == .unknownType(15))
        // ReplicaHello's seven reserved bytes must be zero.
        var hello = [UInt8](repeating: 0, count: 16)
        hello[8] = 3
        #expect(F.firstError(F.rawFrame(type: 14, body: hello)) == nil)
        hello[15] = 1
        #expect(F.firstError(F.rawFrame(type: 14, body: hello))
                == .inconsistentBody(type: .replicaHello, reason: "reserved field is not zero"))
        #expect(F.firstError(F.rawFrame(type: 8, body: eight, flags: 4)) == .reservedFlagsSet(4))
    }

    @Test func verifyRegionsThatAreNotWholeBoundedRunsAreRefused() {
        func request(_ offset: UInt64, _ length: UInt64) -> [UInt8] {
            var body: [UInt8] = []
            for value in [offset, length] {
                for shift in stride(from: 0, through: 56, by: 8) { body.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
            }
            return F.rawFrame(type: 23, body: body)
        }
        #expect(F.firstError(request(4096, 1 << 20)) == nil)
        for (offset, length) in [(UInt64(0), UInt64(0)), (0, (1 << 20) + 4096), (100, 4096), (0, 4095), (UInt64.max - 4095, 4096)] {
            guard case .inconsistentBody(.digestRequest, _) = F.firstError(request(offset, length)) else {
                Issue.record("region \(offset)+\(length) was accepted")
                continue
            }
        }
    }

    @Test func oversizedLengthsAreRefusedBeforeTheBodyArrives() {
        let huge = UInt32(WireFormat.maxBodyBytes + 1)
        var decoder = WireDecoder()
        decoder.feed(F.rawFrame(type: 3, body: [], bodyLength: huge))
        #expect(throws: WireError.oversizedBody(type: .data, bodyBytes: Int(huge), maxBytes: WireFormat.maxBodyBytes)) {
            try decoder.next()
        }
        #expect(
            F.firstError(F.rawFrame(type: 8, body: eight + [0]))
                == .oversizedBody(type: .ping, bodyBytes: 9, maxBytes: 8))
        #expect(
            F.firstError(F.rawFrame(type: 1, body: [], bodyLength: UInt32.max))
                == .oversizedBody(type: .hello, bodyBytes: Int(UInt32.max), maxBytes: 70 + 510 + 32))
    }

    @Test func shortFixedBodiesAreInconsistent() {
        guard case .inconsistentBody(.ping, _) = F.firstError(F.rawFrame(type: 8, body: [1, 2, 3])) else {
            Issue.record("expected an inconsistent ping")
            return
        }
    }

    @Test func truncatedStreamIsReportedAtTheEnd() throws {
        let frame = try WireEncoder.encode(.ping(nonce: 1), promotionNumber: 0)
        for cut in 1..<frame.count {
            var decoder = WireDecoder()
            decoder.feed(frame[0..<cut])
            #expect(try decoder.next() == nil)
            #expect(throws: WireError.truncated(bufferedBytes: cut)) { try decoder.finish() }
        }
    }

    @Test func aFailedDecoderStaysFailed() {
        var decoder = WireDecoder()
        decoder.feed(F.rawFrame(type: 99, body: eight))
        #expect(throws: WireError.unknownType(99)) { try decoder.next() }
        decoder.feed(try! WireEncoder.encode(.ping(nonce: 1), promotionNumber: 0))
        #expect(throws: WireError.unknownType(99)) { try decoder.next() }
        #expect(decoder.error == .unknownType(99))
    }

    @Test func malformedHelloBodiesAreInconsistent() throws {
        let good = try WireEncoder.encode(.hello(F.hello), promotionNumber: 0)
        let body = Array(good[WireFormat.headerBytes...])
        var badRole = body
        badRole[2] = 9
        var badNameLength = body
        badNameLength[68] = 200
        var badUTF8 = body
        badUTF8[70] = 0xFF
        var reserved = body
        reserved[3] = 1
        for bad in [badRole, badNameLength, badUTF8, reserved] {
            guard case .inconsistentBody(.hello, let reason) = F.firstError(F.rawFrame(type: 1, body: bad)) else {
                Issue.record("expected an inconsistent hello")
                continue
            }
            #expect(!reason.isEmpty)
        }
    }

    @Test func malformedReplyBodiesAreInconsistent() {
        let tooLong = F.le(UInt16(1)) + [5, 0] + F.le(UInt16(50)) + Array("short".utf8)
        guard case .inconsistentBody(.helloReply, _) = F.firstError(F.rawFrame(type: 2, body: tooLong)) else {
            Issue.record("expected an inconsistent reply")
            return
        }
        let leftover = F.le(UInt16(1)) + [0, 0] + F.le(UInt16(1)) + [0x41, 0x42]
        guard case .inconsistentBody(.helloReply, _) = F.firstError(F.rawFrame(type: 2, body: leftover)) else {
            Issue.record("expected leftover bytes to be refused")
            return
        }
    }

    @Test(arguments: [
        (length: UInt32(10), flags: UInt16(0), payload: 5, reserved: UInt16(0)),  // short payload
        (length: 4, flags: 2, payload: 4, reserved: 0),  // "compressed" but not smaller
        (length: 4, flags: 0x80, payload: 4, reserved: 0),  // unknown flag
        (length: 0, flags: 0, payload: 0, reserved: 0),  // empty block (body also too short)
        (length: 4, flags: 0, payload: 4, reserved: 1),  // reserved set
        (length: UInt32(WireFormat.maxPayloadBytes + 1), flags: 2, payload: 10, reserved: 0),
    ])
    func malformedDataBodiesAreInconsistent(length: UInt32, flags: UInt16, payload: Int, reserved: UInt16) {
        let body =
            dataBody(offset: 0, length: length, flags: flags, reserved: reserved) + Array(repeating: 7, count: payload)
        guard case .inconsistentBody(.data, _) = F.firstError(F.rawFrame(type: 3, body: body)) else {
            Issue.record("expected an inconsistent data body")
            return
        }
    }

    @Test func dataWhoseRangeOverflowsIsRefused() {
        let body = dataBody(offset: UInt64.max - 1, length: 4, flags: 0, reserved: 0) + [1, 2, 3, 4]
        guard case .inconsistentBody(.data, let reason) = F.firstError(F.rawFrame(type: 3, body: body)) else {
            Issue.record("expected an overflow refusal")
            return
        }
        #expect(reason.contains("overflows"))
    }

    @Test func sequenceGapsAndEpochRegressionsDropTheConnection() throws {
        func stream(_ messages: [WireMessage]) throws -> [UInt8] {
            try messages.flatMap { try WireEncoder.encode($0, promotionNumber: 0) }
        }
        let gap = try stream([F.data(sequence: 5, epoch: 1), F.data(sequence: 7, epoch: 1)])
        let epochBack = try stream([F.data(sequence: 1, epoch: 3), F.data(sequence: 2, epoch: 2)])
        let afterBarrier = try stream([
            F.data(sequence: 1, epoch: 3), .epochBarrier(epoch: 3, writeCount: 1), F.data(sequence: 2, epoch: 3),
        ])
        let barrierTwice = try stream([.epochBarrier(epoch: 3, writeCount: 0), .epochBarrier(epoch: 3, writeCount: 0)])
        let barrierBehindData = try stream([F.data(sequence: 1, epoch: 4), .epochBarrier(epoch: 3, writeCount: 0)])
        let durableBack = try stream([.durableAck(epoch: 4), .durableAck(epoch: 3)])
        // A barrier's write count is the number of Data frames of its epoch on the connection.
        let countShort = try stream([
            F.data(sequence: 1, epoch: 2), F.data(sequence: 2, epoch: 2), .epochBarrier(epoch: 2, writeCount: 1),
        ])
        let countLong = try stream([F.data(sequence: 1, epoch: 2), .epochBarrier(epoch: 2, writeCount: 2)])
        let countWithoutData = try stream([F.data(sequence: 1, epoch: 2), .epochBarrier(epoch: 3, writeCount: 1)])
        for bytes in [gap, epochBack, afterBarrier, barrierTwice, barrierBehindData, durableBack, countShort, countLong,
                      countWithoutData] {
            guard case .outOfOrder = F.firstError(bytes) else {
                Issue.record("expected out-of-order")
                continue
            }
        }
        if case .outOfOrder(_, let reason)? = F.firstError(countShort) {
            #expect(reason == "barrier for epoch 2 counts 1 writes, 2 arrived")
        } else {
            Issue.record("a barrier that undercounts its epoch was not refused")
        }
        let inOrder = try stream([
            F.data(sequence: 1, epoch: 1), F.data(sequence: 2, epoch: 1), .epochBarrier(epoch: 1, writeCount: 2),
            F.data(sequence: 3, epoch: 2), .durableAck(epoch: 1), .durableAck(epoch: 1),
            .epochBarrier(epoch: 2, writeCount: 1), .epochBarrier(epoch: 4, writeCount: 0),
        ])
        #expect(F.firstError(inOrder) == nil)
        #expect(throws: Never.self) { try F.decodeAll(gap, checksOrdering: false) }
    }

    @Test func seededGarbageNeverTraps() {
        for seed in 0..<300 as Range<UInt64> {
            var random = WireTestRandom(seed: seed)
            var decoder = WireDecoder()
            let count = Int.random(in: 0...2000, using: &random)
            let garbage = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            decoder.feed(garbage)
            let outcome = drain(&decoder, fed: garbage.count)
            // Random bytes never pass a header CRC: no frame comes out of them.
            #expect(outcome.frames == 0, "seed \(seed): garbage decoded as \(outcome.frames) frames")
        }
    }

    @Test func seededMutationsOfValidFramesNeverTrap() throws {
        var valid: [UInt8] = []
        for message in WireCodecTests.everyMessage { valid += try WireEncoder.encode(message, promotionNumber: 1) }
        for seed in 0..<500 as Range<UInt64> {
            var random = WireTestRandom(seed: seed)
            var bytes = valid
            for _ in 0..<Int.random(in: 1...8, using: &random) {
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
            if Bool.random(using: &random) { bytes = resealHeaders(bytes) }
            var decoder = WireDecoder()
            decoder.feed(bytes)
            let outcome = drain(&decoder, fed: bytes.count)
            #expect(outcome.frames <= WireCodecTests.everyMessage.count, "seed \(seed): more frames than were encoded")
        }
    }

    @Test func seededRandomBodiesBehindValidHeadersNeverTrap() {
        for seed in 0..<2000 as Range<UInt64> {
            var random = WireTestRandom(seed: seed)
            let type = UInt8.random(in: 0...10, using: &random)
            let count = Int.random(in: 0...700, using: &random)
            var body = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            if type == 1 && count >= 70 {  // plausible hello: valid role and name lengths sometimes
                body[2] = UInt8.random(in: 0...3, using: &random)
                body[3] = 0
                body[68] = UInt8.random(in: 0...UInt8(min(255, count - 70)), using: &random)
                body[69] = UInt8(min(255, count - 70 - Int(body[68])))
            }
            var decoder = WireDecoder()
            let frame = F.rawFrame(type: type, body: body)
            decoder.feed(frame)
            let outcome = drain(&decoder, fed: frame.count)
            #expect(outcome.frames <= 1, "seed \(seed): one frame decoded as \(outcome.frames)")
        }
    }

    /// Decodes until the decoder stops and checks what it must guarantee for any input: it
    /// stops (an error, or a need for more bytes), an error is sticky, and it holds no more
    /// than it was fed. (Memory safety itself is checked by running these suites under ASan.)
    private func drain(_ decoder: inout WireDecoder, fed: Int) -> (frames: Int, failed: Bool) {
        var frames = 0
        while frames <= fed {
            do {
                guard try decoder.next() != nil else { break }
                frames += 1
            } catch {
                #expect(decoder.error != nil, "a thrown error was not kept")
                #expect(throws: WireError.self) { _ = try decoder.next() }
                return (frames, true)
            }
        }
        #expect(frames <= fed, "the decoder kept returning frames")
        #expect(decoder.bufferedBytes <= fed, "the decoder holds \(decoder.bufferedBytes) bytes of \(fed) fed")
        return (frames, false)
    }

    /// Recomputes the first header's CRC so that mutations reach the body checks.
    private func resealHeaders(_ bytes: [UInt8]) -> [UInt8] {
        var copy = bytes
        let crc = F.le(CRC32C.checksum(copy[0..<20]))
        copy.replaceSubrange(20..<24, with: crc)
        return copy
    }

    private func dataBody(offset: UInt64, length: UInt32, flags: UInt16, reserved: UInt16) -> [UInt8] {
        F.le(UInt64(1)) + F.le(UInt64(1)) + F.le(offset) + F.le(length) + F.le(flags) + F.le(reserved) + F.le(UInt32(0))
    }
}
