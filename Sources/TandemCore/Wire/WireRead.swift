// WireRead: the bodies of ReadRequest (type 29) and ReadReply (type 30), protocol 6: read
// balancing and the diskless primary (docs/replication.md, *Read balancing*). The primary asks
// its UpToDate peer for a region of its volume; the peer answers with the bytes, or with an
// errno and no bytes (then the primary reads the region itself, or fails the read when its own
// disk is gone).
//
// ReadRequest, 24 bytes:
//
// | offset | size | field                                                          |
// |--------|------|----------------------------------------------------------------|
// | 0      | 8    | tag: the primary's handle, echoed by the reply                 |
// | 8      | 8    | offset bytes (a multiple of 4 KiB)                             |
// | 16     | 4    | length bytes (4 KiB multiples, 4 KiB ... `readBytesMax`)        |
// | 20     | 4    | reserved, 0                                                    |
//
// ReadReply, 16 bytes, then the payload:
//
// | offset | size | field                                                          |
// |--------|------|----------------------------------------------------------------|
// | 0      | 8    | tag of the request                                             |
// | 8      | 4    | errno: 0, or why the peer did not read (no payload follows)    |
// | 12     | 4    | CRC32C of the payload (0 without one)                          |
// | 16     | n    | the region's bytes: exactly the request's length when errno 0  |

public struct WireReadRequest: Equatable, Sendable {
    public static let bodyBytes = 24

    public var tag: UInt64
    public var offsetBytes: UInt64
    public var lengthBytes: UInt32

    public init(tag: UInt64, offsetBytes: UInt64, lengthBytes: UInt32) {
        self.tag = tag
        self.offsetBytes = offsetBytes
        self.lengthBytes = lengthBytes
    }

    /// The rules the decoder enforces (the sender checks them too, so it never sends what a
    /// peer refuses): whole 4 KiB blocks, at most `readBytesMax`, no overflow.
    public static func isValid(offsetBytes: UInt64, lengthBytes: UInt64) -> Bool {
        lengthBytes > 0 && lengthBytes <= UInt64(WireFormat.readBytesMax) && offsetBytes % 4096 == 0
            && lengthBytes % 4096 == 0 && offsetBytes <= UInt64(Int64.max) - lengthBytes
    }

    static func decode(_ reader: inout WireByteReader) throws(WireError) -> WireReadRequest {
        let tag = reader.u64()!
        let offset = reader.u64()!
        let length = reader.u32()!
        let reserved = reader.u32()!
        guard reserved == 0 else { throw .inconsistentBody(type: .readRequest, reason: "reserved field is not zero") }
        guard isValid(offsetBytes: offset, lengthBytes: UInt64(length)) else {
            throw .inconsistentBody(
                type: .readRequest,
                reason: "read region \(offset)+\(length) is not a whole 4 KiB run of at most \(WireFormat.readBytesMax) bytes")
        }
        return WireReadRequest(tag: tag, offsetBytes: offset, lengthBytes: length)
    }

    func encode(_ writer: inout WireByteWriter) {
        writer.put(tag)
        writer.put(offsetBytes)
        writer.put(lengthBytes)
        writer.put(UInt32(0))
    }
}

/// A ReadReply. When decoded, `payload` is a slice of the decoder's buffer: copy it out and
/// drop it before feeding the decoder again.
public struct WireReadReply: Equatable, Sendable {
    public static let fixedBytes = 16

    public var tag: UInt64
    public var errno: Int32
    public var crc32c: UInt32
    public var payload: ArraySlice<UInt8>

    public init(tag: UInt64, errno: Int32, crc32c: UInt32 = 0, payload: ArraySlice<UInt8> = []) {
        self.tag = tag
        self.errno = errno
        self.crc32c = crc32c
        self.payload = payload
    }

    static func decode(_ reader: inout WireByteReader) throws(WireError) -> WireReadReply {
        let tag = reader.u64()!
        let errno = Int32(bitPattern: reader.u32()!)
        let crc = reader.u32()!
        let payload = reader.bytes(reader.remaining)!
        guard errno >= 0 else { throw .inconsistentBody(type: .readReply, reason: "negative errno \(errno)") }
        guard (errno == 0) == !payload.isEmpty, payload.count % 4096 == 0 else {
            throw .inconsistentBody(
                type: .readReply, reason: "errno \(errno) with \(payload.count) payload bytes (whole 4 KiB blocks, only without an errno)")
        }
        guard errno != 0 || CRC32C.checksum(payload) == crc else {
            throw .inconsistentBody(type: .readReply, reason: "payload checksum mismatch")
        }
        return WireReadReply(tag: tag, errno: errno, crc32c: crc, payload: payload)
    }

    /// The frame prefix (header and fixed fields) of a reply whose `payloadBytes` follow it.
    /// Returns `prefixBytes`.
    public static func encodePrefix(
        tag: UInt64, errno: Int32, crc32c: UInt32, payloadBytes: Int, promotionNumber: UInt64,
        into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        precondition(payloadBytes >= 0 && payloadBytes <= WireFormat.readBytesMax && payloadBytes % 4096 == 0)
        precondition((errno == 0) == (payloadBytes > 0), "a read reply carries bytes exactly when it has no errno")
        precondition(buffer.count >= prefixBytes)
        WireFrameHeader(type: .readReply, bodyBytes: fixedBytes + payloadBytes, promotionNumber: promotionNumber)
            .encode(into: buffer)
        var writer = WireByteWriter(buffer, at: WireFormat.headerBytes)
        writer.put(tag)
        writer.put(UInt32(bitPattern: errno))
        writer.put(crc32c)
        return writer.index
    }

    public static let prefixBytes = WireFormat.headerBytes + fixedBytes
}
