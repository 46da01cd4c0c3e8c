// WireResize: the body of Resize (type 28, protocol 5; docs/protocol.md, *Resize*). One
// fixed 24-byte layout serves the primary's request and the secondary's answer, so that a
// receiver can check every field before acting on any:
//
// | offset | size | field                                                              |
// |--------|------|--------------------------------------------------------------------|
// | 0      | 8    | size bytes: the new volume size asked for (the answer echoes it)    |
// | 8      | 1    | kind: 0 request, 1 done, 2 refused                                  |
// | 9      | 1    | flags: bit 0 `force` (a request to shrink); other bits 0            |
// | 10     | 2    | refusal code (ResizeRefusal.wireCode; 0 unless refused)             |
// | 12     | 4    | reserved, 0                                                         |
// | 16     | 8    | sender's bytes: the request, the primary's size now; the answer,    |
// |        |      | the secondary's size after (done) or its volume's bytes (refused)   |

public struct WireResize: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        case request = 0, done = 1, refused = 2
    }

    public static let bodyBytes = 24

    public var sizeBytes: UInt64
    public var kind: Kind
    public var force: Bool
    /// 0 unless `kind` is `refused` (ResizeRefusal.wireCode).
    public var refusalCode: UInt16
    public var senderBytes: UInt64

    public init(sizeBytes: UInt64, kind: Kind, force: Bool = false, refusalCode: UInt16 = 0, senderBytes: UInt64) {
        self.sizeBytes = sizeBytes
        self.kind = kind
        self.force = force
        self.refusalCode = refusalCode
        self.senderBytes = senderBytes
    }

    static func decode(_ reader: inout WireByteReader) throws(WireError) -> WireResize {
        let size = reader.u64()!
        let kindCode = reader.u8()!
        let flags = reader.u8()!
        let refusal = reader.u16()!
        let reserved = reader.u32()!
        let sender = reader.u64()!
        guard let kind = Kind(rawValue: kindCode) else {
            throw .inconsistentBody(type: .resize, reason: "unknown kind \(kindCode)")
        }
        guard flags & ~1 == 0, reserved == 0 else {
            throw .inconsistentBody(type: .resize, reason: "reserved bits set")
        }
        guard (refusal == 0) == (kind != .refused) else {
            throw .inconsistentBody(type: .resize, reason: "refusal code \(refusal) with kind \(kindCode)")
        }
        return WireResize(sizeBytes: size, kind: kind, force: flags & 1 != 0, refusalCode: refusal, senderBytes: sender)
    }
}
