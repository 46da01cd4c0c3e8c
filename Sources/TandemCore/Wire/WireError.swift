// Every way a peer's bytes can be wrong. Each one drops the connection; `description` is the
// reason that gets logged and put into the disconnect event.

public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    case badMagic(UInt32)
    case unsupportedVersion(UInt8)
    case headerChecksumMismatch(expected: UInt32, computed: UInt32)
    case unknownType(UInt8)
    case reservedFlagsSet(UInt16)
    case oversizedBody(type: WireMessageType, bodyBytes: Int, maxBytes: Int)
    case inconsistentBody(type: WireMessageType, reason: String)
    case outOfOrder(type: WireMessageType, reason: String)
    /// The stream ended in the middle of a frame.
    case truncated(bufferedBytes: Int)

    public var description: String {
        switch self {
        case .badMagic(let magic):
            return "bad magic 0x\(String(magic, radix: 16)) (expected 0x\(String(WireFormat.magic, radix: 16)))"
        case .unsupportedVersion(let version):
            return "unsupported protocol version \(version) (this node speaks \(WireFormat.supportedVersions))"
        case .headerChecksumMismatch(let expected, let computed):
            return
                "frame header checksum mismatch: carried 0x\(String(expected, radix: 16)), computed 0x\(String(computed, radix: 16))"
        case .unknownType(let code):
            return "unknown message type \(code)"
        case .reservedFlagsSet(let flags):
            return "reserved header flags set: 0x\(String(flags, radix: 16))"
        case .oversizedBody(let type, let bodyBytes, let maxBytes):
            return "\(type) body of \(bodyBytes) bytes exceeds the limit of \(maxBytes)"
        case .inconsistentBody(let type, let reason):
            return "inconsistent \(type) body: \(reason)"
        case .outOfOrder(let type, let reason):
            return "out-of-order \(type): \(reason)"
        case .truncated(let bufferedBytes):
            return "stream ended inside a frame (\(bufferedBytes) bytes buffered)"
        }
    }
}

/// Why a message could not be encoded: a field the format cannot carry. These are local
/// mistakes (configuration or caller), never peer input.
public enum WireEncodeError: Error, Equatable, Sendable, CustomStringConvertible {
    case fieldTooLong(field: String, bytes: Int, maxBytes: Int)
    case invalidData(String)
    case bufferTooSmall(needed: Int, available: Int)

    public var description: String {
        switch self {
        case .fieldTooLong(let field, let bytes, let maxBytes):
            return "\(field) is \(bytes) bytes; the protocol carries at most \(maxBytes)"
        case .invalidData(let reason):
            return "invalid data message: \(reason)"
        case .bufferTooSmall(let needed, let available):
            return "encode buffer holds \(available) bytes; \(needed) needed"
        }
    }
}
