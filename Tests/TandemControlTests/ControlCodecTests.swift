import Testing
import TandemControl

@Suite struct ControlCodecTests {
    func decode(_ text: String) -> (JSONValue, Result<ControlRequest, ControlError>) {
        let (id, result) = ControlCodec.decodeRequestWithID(line: bytes(text))
        return (id, result)
    }

    func errorCode(_ text: String) -> ControlErrorCode? {
        if case .failure(let error) = decode(text).1 { return error.code }
        return nil
    }

    @Test func aValidRequestKeepsIdCommandAndArguments() throws {
        let request = try decode(#"{"id": 7, "cmd": "status", "name": "r0"}"#).1.get()
        #expect(request == ControlRequest(id: .int(7), cmd: "status", args: ["name": .string("r0")]))
    }

    @Test func notJSONIsBadJSON() {
        #expect(errorCode("{nope") == .badJSON)
        #expect(errorCode("") == .badJSON)
    }

    @Test func anythingButAnObjectIsBadRequest() {
        #expect(errorCode("[1,2]") == .badRequest)
        #expect(errorCode("42") == .badRequest)
        #expect(errorCode(#""ping""#) == .badRequest)
    }

    @Test func aMissingOrNonStringCmdIsBadRequestAndTheIdIsStillEchoed() {
        #expect(errorCode(#"{"id":3}"#) == .badRequest)
        #expect(errorCode(#"{"id":3,"cmd":5}"#) == .badRequest)
        #expect(decode(#"{"id":3,"cmd":5}"#).0 == .int(3))
        #expect(decode(#"{"id":"abc"}"#).0 == .string("abc"))
    }

    @Test func anUnknownCommandIsUnknownCommandWithItsIdEchoed() {
        #expect(errorCode(#"{"id":9,"cmd":"format-disk"}"#) == .unknownCommand)
        #expect(decode(#"{"id":9,"cmd":"format-disk"}"#).0 == .int(9))
    }

    @Test(arguments: ["ping", "create", "enable", "disable", "failover", "demote", "status", "set",
                      "verify", "resolve", "outdate", "outdate-peer", "delete", "events"])
    func everyDesignedCommandDecodes(cmd: String) {
        #expect(errorCode(#"{"cmd":"\#(cmd)"}"#) == nil)
    }

    @Test func aSuccessReplyIsOneSortedLine() {
        let line = ControlCodec.encode(ControlReply.ok(.int(7), ["role": .string("primary"), "b": .int(1)]))
        #expect(String(decoding: line, as: UTF8.self) == #"{"b":1,"id":7,"ok":true,"role":"primary"}"# + "\n")
    }

    @Test func anErrorReplyCarriesCodeAndMessage() {
        let line = ControlCodec.encode(.failure(.int(7), ControlError(.notFound, "no resource 'r9'")))
        #expect(String(decoding: line, as: UTF8.self) == #"{"error":"not-found","id":7,"message":"no resource 'r9'","ok":false}"# + "\n")
    }

    @Test func handlerFieldsCannotOverrideIdOrOk() {
        let line = ControlCodec.encode(.ok(.int(1), ["id": .int(99), "ok": .bool(false)]))
        #expect(String(decoding: line, as: UTF8.self) == #"{"id":1,"ok":true}"# + "\n")
    }

    @Test(arguments: ControlErrorCode.allCases)
    func everyErrorCodeRoundTripsThroughAReplyLine(code: ControlErrorCode) throws {
        let reply = ControlReply.failure(.string("x"), ControlError(code, "because"))
        let decoded = try ControlCodec.decodeReply(line: ControlCodec.encode(reply).dropLast()).get()
        #expect(decoded == reply)
    }

    @Test func requestsRoundTripThroughTheClientEncoding() throws {
        let request = ControlRequest(id: .int(12), cmd: "create", args: ["name": .string("r0"), "nbd": .object(["socket": .string("/s")])])
        let decoded = try ControlCodec.decodeRequest(line: ControlCodec.encode(request).dropLast()).get()
        #expect(decoded == request)
    }

    @Test func anUnknownErrorCodeFromANewerDaemonIsKeptInTheMessage() throws {
        let reply = try ControlCodec.decodeReply(line: bytes(#"{"id":1,"ok":false,"error":"quantum","message":"m"}"#)).get()
        #expect(reply.result == .failure(ControlError(.internalError, "quantum: m")))
    }
}

@Suite struct LineBufferTests {
    @Test func linesSplitAcrossChunksAreReassembled() {
        var buffer = LineBuffer(lineBytesMax: 100)
        buffer.append(bytes("ab"))
        #expect(buffer.next() == nil)
        buffer.append(bytes("c\r\nde\n"))
        #expect(buffer.next() == .line(bytes("abc")))
        #expect(buffer.next() == .line(bytes("de")))
        #expect(buffer.next() == nil)
    }

    @Test func anOverLongLineIsReportedOnceAndItsRestDiscarded() {
        var buffer = LineBuffer(lineBytesMax: 4)
        buffer.append(bytes("123456"))
        #expect(buffer.next() == .tooLong)
        buffer.append(bytes("789"))
        #expect(buffer.next() == nil)
        buffer.append(bytes("0\nok\n"))
        #expect(buffer.next() == .line(bytes("ok")))
        buffer.append(bytes("toolong\nyes\n"))
        #expect(buffer.next() == .tooLong)
        #expect(buffer.next() == .line(bytes("yes")))
    }

    /// Found by FuzzControl (docs/fuzzing.md): a line of exactly the limit ending in "\r\n"
    /// was refused as too long when a read ended between the "\r" and the "\n", and accepted
    /// otherwise. The fuzzer's input: a 65-byte unfinished line with a 64-byte limit.
    @Test func aLineOfExactlyTheLimitEndingInCRLFIsALineWhereverTheReadsAreCut() {
        let line = [UInt8](repeating: 0x76, count: 64)
        for cut in 1...(line.count + 2) {
            let stream = line + [0x0D, 0x0A]
            var buffer = LineBuffer(lineBytesMax: 64)
            var events: [LineBuffer.Event] = []
            buffer.append(stream[..<cut])
            while let event = buffer.next() { events.append(event) }
            buffer.append(stream[cut...])
            while let event = buffer.next() { events.append(event) }
            #expect(events == [.line(line)], "read cut after \(cut) bytes")
        }
        var buffer = LineBuffer(lineBytesMax: 64)
        buffer.append(line + [0x0D])
        #expect(buffer.next() == nil)
        #expect(buffer.pendingBytes == 65)
        buffer.append([0x0D])
        #expect(buffer.next() == .tooLong)
    }

    /// Many lines in one read: each line taken must not move the rest of the read (which
    /// made a read of n short lines cost n²/2 byte moves).
    @Test func manyLinesInOneReadCostLinearWork() {
        let count = 50_000
        let stream = bytes(String(repeating: "ab\n", count: count))
        var buffer = LineBuffer(lineBytesMax: 1 << 20)
        buffer.append(stream)
        var lines = 0
        while let event = buffer.next() {
            #expect(event == .line(bytes("ab")))
            lines += 1
        }
        #expect(lines == count)
        #expect(buffer.pendingBytes == 0)
        #expect(buffer.movedBytes <= stream.count, "\(buffer.movedBytes) bytes moved for \(stream.count) read")
    }

    /// A long line without a newline, arriving in small reads, is searched once, and what is
    /// held stays within the limit plus one byte however long it goes on.
    @Test func aLongLineWithoutNewlineInSmallReadsIsHeldWithinTheLimit() {
        var buffer = LineBuffer(lineBytesMax: 4096)
        var events: [LineBuffer.Event] = []
        for _ in 0..<10_000 {
            buffer.append([UInt8](repeating: 0x61, count: 100))
            while let event = buffer.next() { events.append(event) }
            #expect(buffer.pendingBytes <= 4097)
        }
        buffer.append(bytes("\nok\n"))
        while let event = buffer.next() { events.append(event) }
        #expect(events == [.tooLong, .line(bytes("ok"))])
        #expect(buffer.movedBytes <= 10)
    }
}
