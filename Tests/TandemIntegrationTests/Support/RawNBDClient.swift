// RawNBDClient: the NBD protocol written by hand, byte for byte, so tests can send what no
// well-behaved client would: wrong magic, absurd lengths, requests past the end, cut-short
// payloads, floods. It negotiates fixed newstyle and OPT_GO and uses simple replies only.
import Foundation

enum NBDWire {
    static let nbdMagic: UInt64 = 0x4e42_444d_4147_4943  // "NBDMAGIC"
    static let optionMagic: UInt64 = 0x4948_4156_454f_5054  // "IHAVEOPT"
    static let optionReplyMagic: UInt64 = 0x0003_e889_0455_65a9
    static let requestMagic: UInt32 = 0x2560_9513
    static let simpleReplyMagic: UInt32 = 0x6744_6698

    static let clientFixedNewstyle: UInt32 = 1
    static let clientNoZeroes: UInt32 = 2

    static let optGo: UInt32 = 7
    static let optAbort: UInt32 = 2
    static let repAck: UInt32 = 1
    static let repInfo: UInt32 = 3
    static let repErrorBit: UInt32 = 0x8000_0000
    static let infoExport: UInt16 = 0

    static let cmdRead: UInt16 = 0
    static let cmdWrite: UInt16 = 1
    static let cmdDisconnect: UInt16 = 2
    static let cmdFlush: UInt16 = 3
    static let cmdWriteZeroes: UInt16 = 6
    static let flagFUA: UInt16 = 1

    static let errnoEINVAL: UInt32 = 22
    static let errnoENOSPC: UInt32 = 28
}

/// Big-endian encoding and decoding, as the NBD wire wants it.
extension Array where Element == UInt8 {
    mutating func appendBE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
    func readBE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size { value = value << 8 | T(self[offset + index]) }
        return value
    }
}

struct NBDSimpleReply {
    var error: UInt32
    var cookie: UInt64
    var data: [UInt8]
}

final class RawNBDClient {
    let stream: UnixStream
    private(set) var exportSizeBytes: UInt64 = 0
    private(set) var transmissionFlags: UInt16 = 0

    /// Connects and reads the server's greeting; the option phase is up to the caller.
    convenience init(socketPath: String, timeoutSeconds: Int = 10) throws {
        try self.init(stream: UnixStream(path: socketPath, timeoutSeconds: timeoutSeconds))
    }

    /// Reads the server's greeting on a connected stream (a Unix socket, or TCP).
    init(stream: UnixStream) throws {
        self.stream = stream
        let (outcome, greeting) = stream.readExact(18)
        guard outcome == .data else { throw HarnessError("no NBD greeting (\(outcome))") }
        guard greeting.readBE(UInt64.self, at: 0) == NBDWire.nbdMagic,
            greeting.readBE(UInt64.self, at: 8) == NBDWire.optionMagic
        else { throw HarnessError("not a fixed-newstyle NBD greeting: \(greeting)") }
        var flags: [UInt8] = []
        flags.appendBE(NBDWire.clientFixedNewstyle | NBDWire.clientNoZeroes)
        try stream.sendAll(flags)
    }

    /// A connection that has completed OPT_GO for `exportName` and is in transmission.
    static func transmitting(socketPath: String, exportName: String) throws -> RawNBDClient {
        let client = try RawNBDClient(socketPath: socketPath)
        try client.go(exportName: exportName)
        return client
    }

    /// The same over TCP to the export's `nbd.tcp` port on 127.0.0.1.
    static func transmitting(tcpPort: Int, exportName: String) throws -> RawNBDClient {
        let client = try RawNBDClient(stream: UnixStream(tcpPort: tcpPort))
        try client.go(exportName: exportName)
        return client
    }

    /// Writes `AcknowledgedWriter.pattern(index)` to each 4 KiB block of `blocks`, one at a
    /// time (each acknowledged before the next is sent), over a connection of its own; then
    /// a flush if `flush`.
    static func writePatterns(socketPath: String, exportName: String = "r0", blocks: Range<Int>,
                              flush: Bool = false) throws {
        let client = try transmitting(socketPath: socketPath, exportName: exportName)
        defer { client.disconnect() }
        for index in blocks { try client.write(offset: UInt64(index) * 4096, data: AcknowledgedWriter.pattern(index)) }
        if flush { try client.flush() }
    }

    func sendOption(_ option: UInt32, length: UInt32, data: [UInt8]) throws {
        var bytes: [UInt8] = []
        bytes.appendBE(NBDWire.optionMagic)
        bytes.appendBE(option)
        bytes.appendBE(length)
        try stream.sendAll(bytes + data)
    }

    /// Reads one option reply: (option, reply type, data); nil when the server closed.
    func readOptionReply() throws -> (option: UInt32, type: UInt32, data: [UInt8])? {
        let (outcome, header) = stream.readExact(20)
        if outcome == .closed { return nil }
        guard outcome == .data else { throw HarnessError("option reply: \(outcome)") }
        guard header.readBE(UInt64.self, at: 0) == NBDWire.optionReplyMagic else {
            throw HarnessError("bad option reply magic: \(header)")
        }
        let length = Int(header.readBE(UInt32.self, at: 16))
        guard length <= 1 << 20 else { throw HarnessError("option reply length \(length) absurd") }
        let (dataOutcome, data) = stream.readExact(length)
        guard dataOutcome == .data else { throw HarnessError("option reply payload: \(dataOutcome)") }
        return (header.readBE(UInt32.self, at: 8), header.readBE(UInt32.self, at: 12), data)
    }

    func go(exportName: String) throws {
        var data: [UInt8] = []
        let name = Array(exportName.utf8)
        data.appendBE(UInt32(name.count))
        data += name
        data.appendBE(UInt16(0))  // no information requests: NBD_INFO_EXPORT comes anyway
        try sendOption(NBDWire.optGo, length: UInt32(data.count), data: data)
        for _ in 0..<64 {
            guard let reply = try readOptionReply() else { throw HarnessError("server closed during OPT_GO") }
            if reply.type & NBDWire.repErrorBit != 0 {
                throw HarnessError("OPT_GO refused: type \(String(reply.type, radix: 16)) \(String(decoding: reply.data, as: UTF8.self))")
            }
            if reply.type == NBDWire.repInfo, reply.data.count >= 12,
                reply.data.readBE(UInt16.self, at: 0) == NBDWire.infoExport
            {
                exportSizeBytes = reply.data.readBE(UInt64.self, at: 2)
                transmissionFlags = reply.data.readBE(UInt16.self, at: 10)
            }
            if reply.type == NBDWire.repAck { return }
        }
        throw HarnessError("OPT_GO: no NBD_REP_ACK after 64 replies")
    }

    static func requestHeader(
        type: UInt16, flags: UInt16 = 0, cookie: UInt64, offset: UInt64, length: UInt32,
        magic: UInt32 = NBDWire.requestMagic
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendBE(magic)
        bytes.appendBE(flags)
        bytes.appendBE(type)
        bytes.appendBE(cookie)
        bytes.appendBE(offset)
        bytes.appendBE(length)
        return bytes
    }

    /// Reads one simple reply; `dataBytes` is read after it only when the reply carries no error.
    func readSimpleReply(dataBytes: Int) -> (UnixStream.ReadOutcome, NBDSimpleReply?) {
        let (outcome, header) = stream.readExact(16)
        guard outcome == .data else { return (outcome, nil) }
        precondition(header.readBE(UInt32.self, at: 0) == NBDWire.simpleReplyMagic, "bad simple reply magic")
        let error = header.readBE(UInt32.self, at: 4)
        let cookie = header.readBE(UInt64.self, at: 8)
        guard error == 0, dataBytes > 0 else { return (.data, NBDSimpleReply(error: error, cookie: cookie, data: [])) }
        let (dataOutcome, data) = stream.readExact(dataBytes)
        guard dataOutcome == .data else { return (dataOutcome, nil) }
        return (.data, NBDSimpleReply(error: error, cookie: cookie, data: data))
    }

    /// A READ that must succeed; returns the data.
    func read(offset: UInt64, length: UInt32, cookie: UInt64 = 1) throws -> [UInt8] {
        try stream.sendAll(Self.requestHeader(type: NBDWire.cmdRead, cookie: cookie, offset: offset, length: length))
        let (outcome, reply) = readSimpleReply(dataBytes: Int(length))
        guard outcome == .data, let reply else { throw HarnessError("READ at \(offset): \(outcome)") }
        guard reply.cookie == cookie else { throw HarnessError("READ reply cookie \(reply.cookie) ≠ \(cookie)") }
        guard reply.error == 0 else { throw HarnessError("READ at \(offset) failed: NBD error \(reply.error)") }
        return reply.data
    }

    /// A WRITE that must succeed.
    func write(offset: UInt64, data: [UInt8], fua: Bool = false, cookie: UInt64 = 2) throws {
        let header = Self.requestHeader(
            type: NBDWire.cmdWrite, flags: fua ? NBDWire.flagFUA : 0, cookie: cookie, offset: offset,
            length: UInt32(data.count))
        try stream.sendAll(header + data)
        let (outcome, reply) = readSimpleReply(dataBytes: 0)
        guard outcome == .data, let reply else { throw HarnessError("WRITE at \(offset): \(outcome)") }
        guard reply.error == 0, reply.cookie == cookie else {
            throw HarnessError("WRITE at \(offset) failed: NBD error \(reply.error), cookie \(reply.cookie)")
        }
    }

    /// Sends requests (headers with their payloads) in one go, without waiting for replies.
    func sendWithoutWaiting(_ requests: [UInt8]) throws {
        try stream.sendAll(requests)
    }

    /// Reads `count` simple replies to requests that carry no reply data; returns each
    /// cookie's error (0: success).
    func readReplies(_ count: Int) throws -> [UInt64: UInt32] {
        var errors: [UInt64: UInt32] = [:]
        for _ in 0..<count {
            let (outcome, reply) = readSimpleReply(dataBytes: 0)
            guard outcome == .data, let reply else { throw HarnessError("reply \(errors.count + 1) of \(count): \(outcome)") }
            errors[reply.cookie] = reply.error
        }
        return errors
    }

    /// A FLUSH that must succeed.
    func flush(cookie: UInt64 = 3) throws {
        try stream.sendAll(Self.requestHeader(type: NBDWire.cmdFlush, cookie: cookie, offset: 0, length: 0))
        let (outcome, reply) = readSimpleReply(dataBytes: 0)
        guard outcome == .data, let reply else { throw HarnessError("FLUSH: \(outcome)") }
        guard reply.error == 0, reply.cookie == cookie else {
            throw HarnessError("FLUSH failed: NBD error \(reply.error), cookie \(reply.cookie)")
        }
    }

    /// NBD_CMD_DISC and close.
    func disconnect() {
        let header = Self.requestHeader(type: NBDWire.cmdDisconnect, cookie: 99, offset: 0, length: 0)
        _ = try? stream.sendAll(header)
        stream.closeNow()
    }
}
