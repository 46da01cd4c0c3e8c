// The peer protocol's constants, limits and frame header. All integers on the wire are
// little-endian (both supported platforms are little-endian, so encoding is a plain store).
// See docs/protocol.md for the byte layout and the rules that drop a connection.

public enum WireFormat {
    /// "TNDM" as bytes on the wire; read as a little-endian UInt32.
    public static let magic: UInt32 = 0x4D44_4E54
    /// The protocol version this build speaks; the only one it accepts in frame headers.
    /// Version 2 added ReplicaHello (type 14) as the secondary's first stream frame.
    public static let currentVersion: UInt8 = 2
    public static let supportedVersions: ClosedRange<UInt8> = 2...2
    /// The highest version a Hello names. Version 3 adds only a Hello meaning (the catch-up
    /// bases in its history, CatchUp.swift); its frames keep the version-2 layout, so a
    /// version-2 peer reads every frame of a version-3 one.
    /// Version 4 appends the sender's generation identifiers after the names
    /// (`WireNodeGenerations`; a Hello naming 3 or less has no tail) and adds the two verify
    /// messages (DigestRequest, Digests), sent only to a peer whose Hello names 4 or more.
    /// Version 5 adds Resize (type 28), sent only to a peer whose Hello names 5 or more.
    /// Version 6 adds BitmapChunk / BitmapDone (types 16, 17) and the Hello tail's flag
    /// `split-brain-resync` (a split brain is resolved by the union of both bitmaps), and
    /// ReadRequest and ReadReply (types 29, 30; read balancing), each sent only to a peer whose
    /// Hello names 6 or more.
    /// Version 7 adds CaughtUp (type 37): a secondary tells a primary whose Hello names 7 or
    /// more that a SyncComplete's effect is durable (a staged catch-up committed and applied).
    /// Version 8 adds no message: a primary that meets a primary promoted from its generation
    /// (HandshakeDecision `.returnedPrimaryResync`) yields to it and is resynced instead of
    /// being demoted by promotion, when both Hellos name 8 or more (docs/replication.md,
    /// *The old primary returns*).
    /// Version 9 adds EpochTime (type 40): before each EpochBarrier, the primary's wall-clock
    /// time of the epoch it closes (status `consistent_as_of.time` on the secondary); sent
    /// only to a peer whose Hello names 9 or more.
    /// Version 10 adds VerifyEnd (type 41): the primary's online verify or digest compare
    /// ended, so the secondary leaves `VerifyT` at once; sent only to a peer whose Hello names
    /// 10 or more (`verifyEndVersion`; an older primary's end is inferred two seconds after its
    /// last DigestRequest).
    public static let helloVersion: UInt16 = 10
    /// The first version whose Hello carries the generation tail.
    public static let generationsVersion: UInt16 = 4
    /// The first version whose secondary reads a catch-up's bases (older ones take the
    /// catch-up for a full copy).
    public static let catchUpVersion: UInt16 = 3
    /// The first version that answers DigestRequest (online verify).
    public static let verifyVersion: UInt16 = 4
    /// The first version that answers Resize (online resize, docs/replication.md *Resize*).
    public static let resizeVersion: UInt16 = 5
    /// The Hello version from which a peer sends and reads BitmapChunk / BitmapDone (split-brain
    /// resolve by the union of both bitmaps).
    public static let bitmapExchangeVersion: UInt16 = 6
    /// The first version that knows GroupBarrier (type 27, consistency groups): a group member
    /// refuses a peer below it, whichever side it is on (docs/groups.md).
    public static let groupVersion: UInt16 = 6
    /// The first version that answers ReadRequest (read balancing, the diskless primary).
    public static let readVersion: UInt16 = 6
    /// The largest region one ReadRequest names: a larger read is served locally.
    public static let readBytesMax = 128 << 10
    /// The first version that reads CatchUpInPlace (type 21; docs/replication.md, *Staged
    /// catch-up*): a secondary tells only such a primary that its catch-up went in place.
    public static let catchUpInPlaceVersion: UInt16 = 6
    /// The first version whose primary yields to a primary promoted from its generation, and
    /// whose promoted primary resyncs it (older pairs: demoted by promotion, then `resolve`).
    public static let returnedPrimaryVersion: UInt16 = 8
    /// The first version that sends and reads CaughtUp (type 37; docs/replication.md,
    /// *Periodic mode*): a primary waits for it only from a peer whose Hello names this or more.
    public static let caughtUpVersion: UInt16 = 7
    /// EpochTime (type 40) is sent to a peer whose Hello names this or more.
    public static let wallClockVersion: UInt16 = 9
    /// VerifyEnd (type 41) is sent to a peer whose Hello names this or more.
    public static let verifyEndVersion: UInt16 = 10
    /// The largest region one DigestRequest names.
    public static let digestRegionBytesMax: UInt64 = 1 << 20
    public static let headerBytes = 24
    /// Fixed part of a Data body, before the payload.
    public static let dataFixedBytes = 36
    /// Largest payload (uncompressed block length) one Data message may carry.
    public static let maxPayloadBytes = 32 << 20
    /// Largest body of any frame.
    public static let maxBodyBytes = dataFixedBytes + maxPayloadBytes
    public static let maxNameBytes = 255
    public static let maxReasonBytes = 1024
    public static let generationHistoryCount = 4
    /// Largest frame of any type but Data and ReadReply (both carry a payload): the size of a buffer that can encode them all.
    public static let controlFrameBytesMax =
        headerBytes
        + WireMessageType.allCases.filter { $0 != .data && $0 != .readReply }.map(\.bodyBytesRange.upperBound).max()!
}

/// Message type codes. Unknown codes drop the connection (`WireError.unknownType`).
public enum WireMessageType: UInt8, Sendable, CaseIterable {
    case hello = 1
    case helloReply = 2
    case data = 3
    case epochBarrier = 4
    case dataAck = 5
    case durableAck = 6
    case flushRequest = 7
    case ping = 8
    case pong = 9
    case resendComplete = 10
    case syncComplete = 11
    case failoverRequest = 12
    case demoted = 13
    case replicaHello = 14
    /// Staged catch-up (protocol 5): the target's catch-up outgrew its staging journal.
    case catchUpInPlace = 21
    case caughtUp = 37
    /// Online verify (protocol 4): the region to digest, and its digest.
    case digestRequest = 23
    case digests = 24
    /// Online resize (protocol 5): the primary's request and the secondary's answer.
    case resize = 28
    /// Split-brain resolve (protocol 6): a node's changed regions since parting, run-length
    /// coded, and the total of set bits that ends them (WireBitmapChunk).
    case bitmapChunk = 16
    case bitmapDone = 17
    /// Read balancing (protocol 6): the primary's read of the peer's volume, and its answer.
    case readRequest = 29
    case readReply = 30
    /// Consistency groups (docs/groups.md): a group epoch is closed for this member.
    case groupBarrier = 27
    /// Wall-clock consistent_as_of (protocol 9): the primary's time of the epoch it closes.
    case epochTime = 40
    /// Online verify's end (protocol 10): the verify or digest compare the primary ran ended.
    case verifyEnd = 41

    /// The body length a frame of this type may have: exact for fixed-size messages, an
    /// upper bound (checked at the header, before any body is buffered) for the others.
    var bodyBytesRange: ClosedRange<Int> {
        switch self {
        case .hello:
            return WireHello.fixedBytes...(WireHello.fixedBytes + 2 * WireFormat.maxNameBytes + WireNodeGenerations.bytes)
        case .helloReply: return WireHelloReply.fixedBytes...(WireHelloReply.fixedBytes + WireFormat.maxReasonBytes)
        case .data: return (WireFormat.dataFixedBytes + 1)...WireFormat.maxBodyBytes
        case .epochBarrier, .dataAck, .replicaHello, .digestRequest, .groupBarrier, .epochTime: return 16...16
        case .digests: return 32...32
        case .resize: return WireResize.bodyBytes...WireResize.bodyBytes
        case .bitmapChunk: return (WireBitmapChunk.fixedBytes + 4)...(WireBitmapChunk.fixedBytes + WireBitmapChunk.runsBytesMax)
        case .bitmapDone: return 8...8
        case .readRequest: return WireReadRequest.bodyBytes...WireReadRequest.bodyBytes
        case .readReply: return WireReadReply.fixedBytes...(WireReadReply.fixedBytes + WireFormat.readBytesMax)
        case .durableAck, .flushRequest, .ping, .pong, .resendComplete, .syncComplete, .failoverRequest, .demoted:
            return 8...8
        case .catchUpInPlace, .caughtUp: return 8...8
        case .verifyEnd: return 0...0
        }
    }
}

/// The fixed 24-byte header in front of every body.
///
/// | offset | size | field                                          |
/// |--------|------|------------------------------------------------|
/// | 0      | 4    | magic "TNDM"                                   |
/// | 4      | 1    | protocol version                               |
/// | 5      | 1    | message type                                   |
/// | 6      | 2    | flags, reserved, must be 0 in version 1        |
/// | 8      | 4    | body length in bytes                           |
/// | 12     | 8    | sender's promotion number                      |
/// | 20     | 4    | CRC32C of bytes 0..<20                         |
public struct WireFrameHeader: Equatable, Sendable {
    public var type: WireMessageType
    public var bodyBytes: Int
    public var promotionNumber: UInt64

    public init(type: WireMessageType, bodyBytes: Int, promotionNumber: UInt64) {
        self.type = type
        self.bodyBytes = bodyBytes
        self.promotionNumber = promotionNumber
    }

    /// Writes the header into the first 24 bytes of `buffer`.
    public func encode(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= WireFormat.headerBytes, "header buffer too small")
        precondition(bodyBytes >= 0 && bodyBytes <= WireFormat.maxBodyBytes, "body too large")
        buffer.storeBytes(of: WireFormat.magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: WireFormat.currentVersion, toByteOffset: 4, as: UInt8.self)
        buffer.storeBytes(of: type.rawValue, toByteOffset: 5, as: UInt8.self)
        buffer.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        buffer.storeBytes(of: UInt32(bodyBytes).littleEndian, toByteOffset: 8, as: UInt32.self)
        buffer.storeBytes(of: promotionNumber.littleEndian, toByteOffset: 12, as: UInt64.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[0..<20]))
        buffer.storeBytes(of: crc.littleEndian, toByteOffset: 20, as: UInt32.self)
    }

    /// Parses and validates a header. Checks run in the order the reader sees the bytes, so
    /// the error names the first thing wrong: magic, version, checksum, type, flags, length.
    public static func decode(_ bytes: ArraySlice<UInt8>) throws(WireError) -> WireFrameHeader {
        guard bytes.count >= WireFormat.headerBytes else { throw .truncated(bufferedBytes: bytes.count) }
        var reader = WireByteReader(bytes)
        let magic = reader.u32()!
        guard magic == WireFormat.magic else { throw .badMagic(magic) }
        let version = reader.u8()!
        guard WireFormat.supportedVersions.contains(version) else { throw .unsupportedVersion(version) }
        let typeCode = reader.u8()!
        let flags = reader.u16()!
        let length = reader.u32()!
        let promotion = reader.u64()!
        let crc = reader.u32()!
        let start = bytes.startIndex
        let computed = CRC32C.checksum(bytes[start..<(start + 20)])
        guard crc == computed else { throw .headerChecksumMismatch(expected: crc, computed: computed) }
        guard let type = WireMessageType(rawValue: typeCode) else { throw .unknownType(typeCode) }
        guard flags == 0 else { throw .reservedFlagsSet(flags) }
        guard type.bodyBytesRange.contains(Int(length)) else {
            throw Int(length) > type.bodyBytesRange.upperBound
                ? .oversizedBody(type: type, bodyBytes: Int(length), maxBytes: type.bodyBytesRange.upperBound)
                : .inconsistentBody(
                    type: type,
                    reason: "body of \(length) bytes is shorter than the \(type.bodyBytesRange.lowerBound) required")
        }
        return WireFrameHeader(type: type, bodyBytes: Int(length), promotionNumber: promotion)
    }
}

/// Reads little-endian integers from a byte slice; every read returns nil past the end, so
/// that no peer input can trap.
struct WireByteReader {
    private let bytes: ArraySlice<UInt8>
    private(set) var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    var remaining: Int { bytes.endIndex - index }

    mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func u16() -> UInt16? { integer(UInt16.self) }
    mutating func u32() -> UInt32? { integer(UInt32.self) }
    mutating func u64() -> UInt64? { integer(UInt64.self) }

    mutating func bytes(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, remaining >= count else { return nil }
        defer { index += count }
        return bytes[index..<(index + count)]
    }

    private mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) -> T? {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { return nil }
        var value: T = 0
        for offset in 0..<size { value |= T(bytes[index + offset]) << (8 * offset) }
        index += size
        return value
    }
}

/// Writes little-endian integers into a caller-provided buffer; bounds are the caller's
/// responsibility (the encoder sizes the buffer first), and are checked by precondition.
struct WireByteWriter {
    let buffer: UnsafeMutableRawBufferPointer
    private(set) var index: Int

    init(_ buffer: UnsafeMutableRawBufferPointer, at index: Int = 0) {
        self.buffer = buffer
        self.index = index
    }

    mutating func put<T: FixedWidthInteger>(_ value: T) {
        let size = MemoryLayout<T>.size
        precondition(index + size <= buffer.count, "wire buffer overflow")
        buffer.storeBytes(of: value.littleEndian, toByteOffset: index, as: T.self)
        index += size
    }

    mutating func put<C: Collection<UInt8>>(bytes: C) {
        precondition(index + bytes.count <= buffer.count, "wire buffer overflow")
        for byte in bytes {
            buffer[index] = byte
            index += 1
        }
    }
}
