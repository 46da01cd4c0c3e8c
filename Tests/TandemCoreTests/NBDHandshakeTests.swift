import Testing
@testable import TandemCore

/// Drives the server handshake with client bytes built by hand, as a client would send them.
struct NBDHandshakeTests {
    static let export = NBDExport(name: "r0", sizeBytes: 1 << 30, transmissionFlags: 0x0D6D)

    struct OptionReply: Equatable {
        var option: UInt32
        var type: UInt32
        var payload: [UInt8]
    }

    func option(_ code: UInt32, _ payload: [UInt8] = []) -> [UInt8] {
        var writer = ByteWriter()
        writer.append(NBD.optionMagic)
        writer.append(code)
        writer.append(UInt32(payload.count))
        writer.append(bytes: payload)
        return writer.bytes
    }

    func goPayload(name: String, infos: [UInt16] = []) -> [UInt8] {
        var writer = ByteWriter()
        writer.append(UInt32(name.utf8.count))
        writer.append(bytes: name.utf8)
        writer.append(UInt16(infos.count))
        for info in infos { writer.append(info) }
        return writer.bytes
    }

    func parseReplies(_ bytes: [UInt8]) -> [OptionReply] {
        var replies: [OptionReply] = []
        var offset = 0
        bytes.withUnsafeBytes { raw in
            while offset + 20 <= raw.count {
                #expect(raw.loadBE(UInt64.self, at: offset) == NBD.optionReplyMagic)
                let length = Int(raw.loadBE(UInt32.self, at: offset + 16))
                replies.append(OptionReply(option: raw.loadBE(UInt32.self, at: offset + 8),
                                           type: raw.loadBE(UInt32.self, at: offset + 12),
                                           payload: Array(raw[(offset + 20)..<(offset + 20 + length)])))
                offset += 20 + length
            }
        }
        #expect(offset == bytes.count, "reply stream has trailing bytes")
        return replies
    }

    func feed(_ handshake: inout NBDHandshake, _ bytes: [UInt8]) -> (Int, NBDHandshake.Outcome) {
        bytes.withUnsafeBytes { handshake.feed($0) }
    }

    @Test func greetingAnnouncesFixedNewstyleAndNoZeroes() {
        let greeting = NBDHandshake.greeting()
        #expect(greeting.count == NBDHandshake.greetingBytes)
        greeting.withUnsafeBytes { raw in
            #expect(raw.loadBE(UInt64.self, at: 0) == NBD.initMagic)
            #expect(raw.loadBE(UInt64.self, at: 8) == NBD.optionMagic)
            #expect(raw.loadBE(UInt16.self, at: 16) == 3)
        }
    }

    @Test func goOnTheExportReportsSizeFlagsAndBlockSizesThenEntersTransmission() {
        var handshake = NBDHandshake(export: Self.export)
        let input = [0, 0, 0, 3] + option(NBD.Option.structuredReply.rawValue)
            + option(NBD.Option.go.rawValue, goPayload(name: "r0", infos: [NBD.Info.blockSize.rawValue]))
        let (used, outcome) = feed(&handshake, input)
        #expect(used == input.count)
        #expect(outcome == .transmission(structuredReplies: true))
        let replies = parseReplies(handshake.takeOutput())
        #expect(replies.map(\.type) == [1, 3, 3, 1])
        #expect(replies[1].payload == [0, 0] + [0, 0, 0, 0, 0x40, 0, 0, 0] + [0x0D, 0x6D])
        #expect(replies[2].payload == [0, 3, 0, 0, 0, 1, 0, 0, 0x10, 0, 0x02, 0, 0, 0])
    }

    @Test func bytesArrivingOneAtATimeGiveTheSameResult() {
        var handshake = NBDHandshake(export: Self.export)
        let input = [0, 0, 0, 1] + option(NBD.Option.go.rawValue, goPayload(name: ""))
        var buffer: [UInt8] = []
        var outcome = NBDHandshake.Outcome.needMore
        for byte in input {
            buffer.append(byte)
            let (used, result) = feed(&handshake, buffer)
            buffer.removeFirst(used)
            outcome = result
        }
        #expect(outcome == .transmission(structuredReplies: false))
        #expect(buffer.isEmpty)
    }

    /// Found by FuzzNBD (docs/fuzzing.md): a close for unknown client flags, a bad option
    /// magic or an over-long option left the handshake where it was, so bytes fed after the
    /// close were negotiated again. The fuzzer's input was the flags 0x13130a0a.
    @Test func aHandshakeThatEndedConsumesNothingMoreAndKeepsItsOutcome() {
        let valid = [0, 0, 0, 1] + option(NBD.Option.go.rawValue, goPayload(name: "r0"))
        var tooLong = ByteWriter()
        tooLong.append(NBD.optionMagic)
        tooLong.append(NBD.Option.info.rawValue)
        tooLong.append(UInt32(NBDHandshake.maxOptionBytes + 1))
        let endings: [[UInt8]] = [
            [0x13, 0x13, 0x0A, 0x0A],
            [0, 0, 0, 1] + Array(repeating: 0x41, count: 16),
            [0, 0, 0, 1] + tooLong.bytes,
            [0, 0, 0, 1] + option(NBD.Option.abort.rawValue),
            valid,
        ]
        for input in endings {
            var handshake = NBDHandshake(export: Self.export)
            let (_, outcome) = feed(&handshake, input)
            #expect(outcome != .needMore)
            _ = handshake.takeOutput()
            for _ in 0..<2 {
                let (used, again) = feed(&handshake, valid)
                #expect(used == 0)
                #expect(again == outcome)
                #expect(handshake.takeOutput().isEmpty)
            }
        }
    }

    @Test func unknownExportIsRefusedWithErrUnknownAndNegotiationGoesOn() {
        var handshake = NBDHandshake(export: Self.export)
        let (_, outcome) = feed(&handshake, [0, 0, 0, 1] + option(NBD.Option.go.rawValue, goPayload(name: "other")))
        #expect(outcome == .needMore)
        #expect(parseReplies(handshake.takeOutput()).map(\.type) == [NBD.OptionReply.errUnknown.rawValue])
    }

    @Test func anUnknownExportsNameIsQuotedPrintableAndBoundedNeverLargerThanTheOption() {
        // 512 bytes of invalid UTF-8: decoded, each would be 3 bytes (U+FFFD) in the reply.
        var writer = ByteWriter()
        writer.append(UInt32(512))
        writer.append(bytes: [UInt8](repeating: 0xFF, count: 510) + Array("ok".utf8))
        writer.append(UInt16(0))
        var handshake = NBDHandshake(export: Self.export)
        _ = feed(&handshake, [0, 0, 0, 1] + option(NBD.Option.go.rawValue, writer.bytes))
        let replies = parseReplies(handshake.takeOutput())
        #expect(replies.map(\.type) == [NBD.OptionReply.errUnknown.rawValue])
        let message = String(decoding: replies.first?.payload ?? [], as: UTF8.self)
        #expect(message == "unknown export '" + String(repeating: "?", count: 64) + "...'", "\(message)")
        #expect((replies.first?.payload.count ?? .max) < writer.bytes.count)
        // A short printable name is quoted whole.
        var plain = NBDHandshake(export: Self.export)
        _ = feed(&plain, [0, 0, 0, 1] + option(NBD.Option.go.rawValue, goPayload(name: "other")))
        #expect(parseReplies(plain.takeOutput()).first?.payload == Array("unknown export 'other'".utf8))
    }

    @Test func malformedInfoRequestIsRefusedWithErrInvalid() {
        var handshake = NBDHandshake(export: Self.export)
        // Name length claims more bytes than the option carries.
        let (_, outcome) = feed(&handshake, [0, 0, 0, 1] + option(NBD.Option.info.rawValue, [0, 0, 1, 0, 0, 0]))
        #expect(outcome == .needMore)
        #expect(parseReplies(handshake.takeOutput()).map(\.type) == [NBD.OptionReply.errInvalid.rawValue])
    }

    @Test func unsupportedOptionsGetErrUnsupported() {
        var handshake = NBDHandshake(export: Self.export)
        _ = feed(&handshake, [0, 0, 0, 1] + option(NBD.Option.extendedHeaders.rawValue) + option(999))
        #expect(parseReplies(handshake.takeOutput()).map(\.type) == [0x8000_0001, 0x8000_0001])
    }

    @Test func listNamesTheOneExport() {
        var handshake = NBDHandshake(export: Self.export)
        _ = feed(&handshake, [0, 0, 0, 1] + option(NBD.Option.list.rawValue))
        let replies = parseReplies(handshake.takeOutput())
        #expect(replies.map(\.type) == [2, 1])
        #expect(replies[0].payload == [0, 0, 0, 2] + Array("r0".utf8))
    }

    @Test func hugeOptionLengthClosesWithoutWaitingForTheData() {
        var handshake = NBDHandshake(export: Self.export)
        var header = ByteWriter()
        header.append(NBD.optionMagic)
        header.append(NBD.Option.go.rawValue)
        header.append(UInt32(0xFFFF_FFF0))
        let (_, outcome) = feed(&handshake, [0, 0, 0, 1] + header.bytes)
        guard case .close = outcome else {
            Issue.record("expected close, got \(outcome)")
            return
        }
    }

    @Test func wrongOptionMagicOrUnknownClientFlagsClose() {
        var first = NBDHandshake(export: Self.export)
        if case .close = feed(&first, [0, 0, 0, 0x81]).1 {} else { Issue.record("unknown client flags accepted") }
        var second = NBDHandshake(export: Self.export)
        var bad = option(NBD.Option.go.rawValue)
        bad[0] ^= 0xFF
        if case .close = feed(&second, [0, 0, 0, 1] + bad).1 {} else { Issue.record("bad option magic accepted") }
    }

    @Test func exportNameWithoutNoZeroesSendsTheZeroPadding() {
        var handshake = NBDHandshake(export: Self.export)
        let (_, outcome) = feed(&handshake, [0, 0, 0, 1] + option(NBD.Option.exportName.rawValue, Array("r0".utf8)))
        #expect(outcome == .transmission(structuredReplies: false))
        #expect(handshake.takeOutput().count == 8 + 2 + 124)
    }

    @Test func abortIsAcknowledgedThenCloses() {
        var handshake = NBDHandshake(export: Self.export)
        let (_, outcome) = feed(&handshake, [0, 0, 0, 1] + option(NBD.Option.abort.rawValue))
        if case .close = outcome {} else { Issue.record("abort did not close") }
        #expect(parseReplies(handshake.takeOutput()).map(\.type) == [1])
    }
}

struct NBDMessageTests {
    @Test func requestHeaderRoundTripsAndWrongMagicIsRejected() {
        let header = NBDRequestHeader(flags: 1, type: 1, handle: 0x0102_0304_0506_0708, offset: 1 << 40, length: 4096)
        var bytes = [UInt8](repeating: 0, count: 28)
        bytes.withUnsafeMutableBytes { header.encode(into: $0) }
        #expect(bytes.withUnsafeBytes { NBDRequestHeader.parse($0) } == header)
        bytes[0] ^= 1
        #expect(bytes.withUnsafeBytes { NBDRequestHeader.parse($0) } == nil)
    }

    @Test func readChunkAndErrorChunkLayoutsMatchTheSpec() {
        var bytes = [UInt8](repeating: 0, count: 28)
        bytes.withUnsafeMutableBytes {
            NBDReply.encodeReadChunkHeader(into: $0, handle: 7, offset: 4096, dataLength: 512)
        }
        #expect(bytes == [0x66, 0x8e, 0x33, 0xef, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 2, 8,
                          0, 0, 0, 0, 0, 0, 0x10, 0])
        var error = [UInt8](repeating: 0, count: NBDReply.structuredErrorBytes)
        error.withUnsafeMutableBytes { NBDReply.encodeStructuredError(into: $0, handle: 7, error: 22) }
        #expect(error == [0x66, 0x8e, 0x33, 0xef, 0, 1, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 6,
                          0, 0, 0, 22, 0, 0])
    }

    @Test func linuxErrnosMapOntoTheProtocolsSet() {
        #expect(NBD.Errno.wire(28) == 28)
        #expect(NBD.Errno.wire(30) == 1)
        #expect(NBD.Errno.wire(122) == 28)
        #expect(NBD.Errno.wire(61) == 5)
    }
}
