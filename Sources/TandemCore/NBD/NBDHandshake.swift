// NBDHandshake: the server side of fixed-newstyle negotiation as a pure state machine.
// Bytes in, reply bytes out, and finally either transmission or a reason to close.

public struct NBDExport: Sendable, Equatable {
    public var name: String
    public var description: String
    public var sizeBytes: UInt64
    public var transmissionFlags: UInt16
    public var minimumBlockBytes: UInt32
    public var preferredBlockBytes: UInt32
    public var maximumBlockBytes: UInt32

    public init(name: String, description: String = "", sizeBytes: UInt64, transmissionFlags: UInt16,
                minimumBlockBytes: UInt32 = 1, preferredBlockBytes: UInt32 = 4096,
                maximumBlockBytes: UInt32 = 32 << 20) {
        self.name = name
        self.description = description
        self.sizeBytes = sizeBytes
        self.transmissionFlags = transmissionFlags
        self.minimumBlockBytes = minimumBlockBytes
        self.preferredBlockBytes = preferredBlockBytes
        self.maximumBlockBytes = maximumBlockBytes
    }
}

public struct NBDHandshake {
    public enum Outcome: Equatable {
        case needMore
        case transmission(structuredReplies: Bool)
        case close(reason: String)
    }

    /// Longest option payload accepted; anything longer is malformed here and closes. An
    /// export name is at most 4 KiB, so 16 KiB leaves room and fits a connection's staging
    /// buffer whole.
    public static let maxOptionBytes = 16 << 10
    public static let greetingBytes = 18

    private enum Phase: Equatable {
        case clientFlags, optionHeader
        /// Ended in transmission or close; every later feed repeats this outcome.
        case done(Outcome)
    }
    private var phase = Phase.clientFlags
    private var noZeroes = false
    private var structuredReplies = false
    /// The one export this connection can reach (the socket is per resource).
    public let export: NBDExport
    public private(set) var output = ByteWriter()

    public init(export: NBDExport) {
        self.export = export
    }

    public static func greeting() -> [UInt8] {
        var writer = ByteWriter()
        writer.append(NBD.initMagic)
        writer.append(NBD.optionMagic)
        writer.append(NBD.HandshakeFlag.fixedNewstyle | NBD.HandshakeFlag.noZeroes)
        return writer.bytes
    }

    public mutating func takeOutput() -> [UInt8] {
        let bytes = output.bytes
        output.removeAll()
        return bytes
    }

    /// Consumes what it can from `input`; returns the bytes used and the outcome so far. Once
    /// the handshake has ended (transmission or close), it consumes nothing more, says nothing
    /// more and returns that outcome again: a refused client stays refused.
    public mutating func feed(_ input: UnsafeRawBufferPointer) -> (consumed: Int, outcome: Outcome) {
        if case .done(let outcome) = phase { return (0, outcome) }
        let (used, outcome) = negotiate(input)
        if outcome != .needMore { phase = .done(outcome) }
        return (used, outcome)
    }

    private mutating func negotiate(_ input: UnsafeRawBufferPointer) -> (consumed: Int, outcome: Outcome) {
        var used = 0
        while true {
            let rest = UnsafeRawBufferPointer(rebasing: input[used...])
            switch phase {
            case .done(let outcome):
                preconditionFailure("negotiate after the handshake ended in \(outcome)")
            case .clientFlags:
                guard rest.count >= 4 else { return (used, .needMore) }
                let flags = rest.loadBE(UInt32.self, at: 0)
                used += 4
                if flags & ~(NBD.ClientFlag.fixedNewstyle | NBD.ClientFlag.noZeroes) != 0 {
                    return (used, .close(reason: "unknown client flags \(flags)"))
                }
                guard flags & NBD.ClientFlag.fixedNewstyle != 0 else {
                    return (used, .close(reason: "client does not speak fixed newstyle"))
                }
                noZeroes = flags & NBD.ClientFlag.noZeroes != 0
                phase = .optionHeader
            case .optionHeader:
                guard rest.count >= 16 else { return (used, .needMore) }
                guard rest.loadBE(UInt64.self, at: 0) == NBD.optionMagic else {
                    return (used, .close(reason: "bad option magic"))
                }
                let option = rest.loadBE(UInt32.self, at: 8)
                let length = Int(rest.loadBE(UInt32.self, at: 12))
                guard length <= Self.maxOptionBytes else {
                    return (used + 16, .close(reason: "option \(option) length \(length) exceeds \(Self.maxOptionBytes)"))
                }
                guard rest.count >= 16 + length else { return (used, .needMore) }
                used += 16 + length
                let data = UnsafeRawBufferPointer(rebasing: rest[16..<(16 + length)])
                let outcome = handle(option: option, data: data)
                if outcome != .needMore { return (used, outcome) }
            }
        }
    }

    private mutating func handle(option: UInt32, data: UnsafeRawBufferPointer) -> Outcome {
        switch NBD.Option(rawValue: option) {
        case .exportName:
            let name = String(decoding: data, as: UTF8.self)
            guard name == export.name || name.isEmpty else {
                return .close(reason: "unknown export '\(Self.quoted(data))'")
            }
            output.append(export.sizeBytes)
            output.append(export.transmissionFlags)
            if !noZeroes { output.append(bytes: repeatElement(UInt8(0), count: 124)) }
            return .transmission(structuredReplies: structuredReplies)
        case .abort:
            reply(option, .ack)
            return .close(reason: "client aborted negotiation")
        case .list:
            guard data.isEmpty else { return replyError(option, .errInvalid, "LIST takes no data") }
            var payload = ByteWriter()
            payload.append(UInt32(export.name.utf8.count))
            payload.append(bytes: export.name.utf8)
            reply(option, .server, payload.bytes)
            reply(option, .ack)
        case .structuredReply:
            guard data.isEmpty else { return replyError(option, .errInvalid, "STRUCTURED_REPLY takes no data") }
            structuredReplies = true
            reply(option, .ack)
        case .info, .go:
            return infoOrGo(option: option, data: data)
        case .startTLS:
            return replyError(option, .errPolicy, "TLS is not offered on this socket")
        default:
            return replyError(option, .errUnsupported, "option \(option) is not supported")
        }
        return .needMore
    }

    private mutating func infoOrGo(option: UInt32, data: UnsafeRawBufferPointer) -> Outcome {
        guard data.count >= 6 else { return replyError(option, .errInvalid, "INFO/GO data too short") }
        let nameLength = Int(data.loadBE(UInt32.self, at: 0))
        guard nameLength <= data.count - 6 else { return replyError(option, .errInvalid, "name length overruns the option") }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: data[4..<(4 + nameLength)]), as: UTF8.self)
        let infoCount = Int(data.loadBE(UInt16.self, at: 4 + nameLength))
        guard data.count == 6 + nameLength + 2 * infoCount else {
            return replyError(option, .errInvalid, "information request count does not match the length")
        }
        guard name == export.name || name.isEmpty else {
            let quoted = Self.quoted(UnsafeRawBufferPointer(rebasing: data[4..<(4 + nameLength)]))
            return replyError(option, .errUnknown, "unknown export '\(quoted)'")
        }
        var wantsName = false
        var wantsDescription = false
        for index in 0..<infoCount {
            switch NBD.Info(rawValue: data.loadBE(UInt16.self, at: 6 + nameLength + 2 * index)) {
            case .name: wantsName = true
            case .description: wantsDescription = true
            default: break
            }
        }
        sendInfos(option: option, name: wantsName, description: wantsDescription)
        reply(option, .ack)
        return option == NBD.Option.go.rawValue ? .transmission(structuredReplies: structuredReplies) : .needMore
    }

    private mutating func sendInfos(option: UInt32, name: Bool, description: Bool) {
        var info = ByteWriter()
        info.append(NBD.Info.export.rawValue)
        info.append(export.sizeBytes)
        info.append(export.transmissionFlags)
        reply(option, .info, info.bytes)
        info = ByteWriter()
        info.append(NBD.Info.blockSize.rawValue)
        info.append(export.minimumBlockBytes)
        info.append(export.preferredBlockBytes)
        info.append(export.maximumBlockBytes)
        reply(option, .info, info.bytes)
        if name {
            info = ByteWriter()
            info.append(NBD.Info.name.rawValue)
            info.append(bytes: export.name.utf8)
            reply(option, .info, info.bytes)
        }
        if description && !export.description.isEmpty {
            info = ByteWriter()
            info.append(NBD.Info.description.rawValue)
            info.append(bytes: export.description.utf8)
            reply(option, .info, info.bytes)
        }
    }

    private mutating func reply(_ option: UInt32, _ type: NBD.OptionReply, _ payload: [UInt8] = []) {
        output.append(NBD.optionReplyMagic)
        output.append(option)
        output.append(type.rawValue)
        output.append(UInt32(payload.count))
        output.append(bytes: payload)
    }

    /// A client's name as an error message quotes it: printable ASCII kept, every other byte
    /// `?`, at most `quotedBytesMax` bytes and `...` after. So a reply never grows past the
    /// option that caused it (a name of invalid UTF-8 decodes to 3 bytes per byte; found by
    /// FuzzNBD: an 823-byte reply to a 518-byte GO), and a log line stays one short line.
    static func quoted(_ bytes: UnsafeRawBufferPointer) -> String {
        let kept = bytes.prefix(quotedBytesMax).map { $0 >= 0x20 && $0 < 0x7F ? Character(UnicodeScalar($0)) : "?" }
        return String(kept) + (bytes.count > quotedBytesMax ? "..." : "")
    }

    static let quotedBytesMax = 64

    private mutating func replyError(_ option: UInt32, _ type: NBD.OptionReply, _ message: String) -> Outcome {
        reply(option, type, Array(message.utf8))
        return .needMore
    }
}
