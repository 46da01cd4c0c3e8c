// NBDProtocol: the constants and message layouts of the NBD protocol (fixed newstyle,
// structured replies), as the NBD project's proto.md defines them. All integers on the wire
// are big-endian. Pure: parsing and encoding only, no I/O.

public enum NBD {
    public static let initMagic: UInt64 = 0x4e42_444d_4147_4943  // "NBDMAGIC"
    public static let optionMagic: UInt64 = 0x4948_4156_454f_5054  // "IHAVEOPT"
    public static let optionReplyMagic: UInt64 = 0x0003_e889_0455_65a9
    public static let requestMagic: UInt32 = 0x2560_9513
    public static let simpleReplyMagic: UInt32 = 0x6744_6698
    public static let structuredReplyMagic: UInt32 = 0x668e_33ef

    public enum HandshakeFlag {
        public static let fixedNewstyle: UInt16 = 1 << 0
        public static let noZeroes: UInt16 = 1 << 1
    }

    public enum ClientFlag {
        public static let fixedNewstyle: UInt32 = 1 << 0
        public static let noZeroes: UInt32 = 1 << 1
    }

    public enum TransmissionFlag {
        public static let hasFlags: UInt16 = 1 << 0
        public static let readOnly: UInt16 = 1 << 1
        public static let sendFlush: UInt16 = 1 << 2
        public static let sendFUA: UInt16 = 1 << 3
        public static let rotational: UInt16 = 1 << 4
        public static let sendTrim: UInt16 = 1 << 5
        public static let sendWriteZeroes: UInt16 = 1 << 6
        public static let sendDF: UInt16 = 1 << 7
        public static let canMultiConn: UInt16 = 1 << 8
        public static let sendResize: UInt16 = 1 << 9
        public static let sendCache: UInt16 = 1 << 10
        public static let sendFastZero: UInt16 = 1 << 11
    }

    public enum Option: UInt32 {
        case exportName = 1
        case abort = 2
        case list = 3
        case peekExport = 4
        case startTLS = 5
        case info = 6
        case go = 7
        case structuredReply = 8
        case listMetaContext = 9
        case setMetaContext = 10
        case extendedHeaders = 11
    }

    public enum OptionReply: UInt32 {
        case ack = 1
        case server = 2
        case info = 3
        case metaContext = 4
        case errUnsupported = 0x8000_0001
        case errPolicy = 0x8000_0002
        case errInvalid = 0x8000_0003
        case errPlatform = 0x8000_0004
        case errTLSRequired = 0x8000_0005
        case errUnknown = 0x8000_0006
        case errShutdown = 0x8000_0007
        case errBlockSizeRequired = 0x8000_0008
        case errTooBig = 0x8000_0009
    }

    public enum Info: UInt16 {
        case export = 0
        case name = 1
        case description = 2
        case blockSize = 3
    }

    public enum Command: UInt16 {
        case read = 0
        case write = 1
        case disconnect = 2
        case flush = 3
        case trim = 4
        case cache = 5
        case writeZeroes = 6
        case blockStatus = 7
        case resize = 8
    }

    public enum CommandFlag {
        public static let fua: UInt16 = 1 << 0
        public static let noHole: UInt16 = 1 << 1
        public static let dontFragment: UInt16 = 1 << 2
        public static let requestOne: UInt16 = 1 << 3
        public static let fastZero: UInt16 = 1 << 4
    }

    public enum ReplyType: UInt16 {
        case none = 0
        case offsetData = 1
        case offsetHole = 2
        case blockStatus = 5
        case error = 0x8001
        case errorOffset = 0x8002
    }

    public static let replyFlagDone: UInt16 = 1 << 0

    /// Errno values the protocol defines; anything else is sent as EIO.
    public enum Errno {
        public static let eperm: UInt32 = 1
        public static let eio: UInt32 = 5
        public static let enomem: UInt32 = 12
        public static let einval: UInt32 = 22
        public static let enospc: UInt32 = 28
        public static let eoverflow: UInt32 = 75
        public static let enotsup: UInt32 = 95
        public static let eshutdown: UInt32 = 108

        /// Maps a Linux errno to the value the protocol allows on the wire.
        public static func wire(_ errno: Int32) -> UInt32 {
            switch errno {
            case 1, 13, 30: return eperm  // EPERM, EACCES, EROFS
            case 12: return enomem
            case 22: return einval
            case 28, 122, 27: return enospc  // ENOSPC, EDQUOT, EFBIG
            case 75: return eoverflow
            case 95: return enotsup
            case 108: return eshutdown
            default: return eio
            }
        }
    }

    public static let requestHeaderBytes = 28
    public static let simpleReplyBytes = 16
    public static let structuredReplyHeaderBytes = 20
}

/// One transmission-phase request header.
public struct NBDRequestHeader: Equatable, Sendable {
    public var flags: UInt16
    public var type: UInt16
    public var handle: UInt64
    public var offset: UInt64
    public var length: UInt32

    public init(flags: UInt16, type: UInt16, handle: UInt64, offset: UInt64, length: UInt32) {
        self.flags = flags
        self.type = type
        self.handle = handle
        self.offset = offset
        self.length = length
    }

    /// Parses 28 bytes; nil when the magic is wrong (the connection must then be closed).
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> NBDRequestHeader? {
        precondition(bytes.count >= NBD.requestHeaderBytes)
        guard bytes.loadBE(UInt32.self, at: 0) == NBD.requestMagic else { return nil }
        return NBDRequestHeader(
            flags: bytes.loadBE(UInt16.self, at: 4), type: bytes.loadBE(UInt16.self, at: 6),
            handle: bytes.loadBE(UInt64.self, at: 8), offset: bytes.loadBE(UInt64.self, at: 16),
            length: bytes.loadBE(UInt32.self, at: 24))
    }

    public func encode(into bytes: UnsafeMutableRawBufferPointer) {
        bytes.storeBE(NBD.requestMagic, at: 0)
        bytes.storeBE(flags, at: 4)
        bytes.storeBE(type, at: 6)
        bytes.storeBE(handle, at: 8)
        bytes.storeBE(offset, at: 16)
        bytes.storeBE(length, at: 24)
    }
}

public enum NBDReply {
    /// A simple reply: magic, error, handle (16 bytes).
    public static func encodeSimple(into bytes: UnsafeMutableRawBufferPointer, error: UInt32, handle: UInt64) {
        bytes.storeBE(NBD.simpleReplyMagic, at: 0)
        bytes.storeBE(error, at: 4)
        bytes.storeBE(handle, at: 8)
    }

    /// A structured reply chunk header (20 bytes); `length` counts the chunk's payload.
    public static func encodeStructuredHeader(
        into bytes: UnsafeMutableRawBufferPointer, flags: UInt16, type: NBD.ReplyType, handle: UInt64,
        length: UInt32
    ) {
        bytes.storeBE(NBD.structuredReplyMagic, at: 0)
        bytes.storeBE(flags, at: 4)
        bytes.storeBE(type.rawValue, at: 6)
        bytes.storeBE(handle, at: 8)
        bytes.storeBE(length, at: 16)
    }

    /// OFFSET_DATA chunk header plus its 8-byte offset (28 bytes); the data follows.
    public static func encodeReadChunkHeader(
        into bytes: UnsafeMutableRawBufferPointer, handle: UInt64, offset: UInt64, dataLength: UInt32
    ) {
        encodeStructuredHeader(into: bytes, flags: NBD.replyFlagDone, type: .offsetData, handle: handle,
                               length: dataLength + 8)
        bytes.storeBE(offset, at: 20)
    }

    /// ERROR chunk: header, errno, message length 0 (26 bytes).
    public static let structuredErrorBytes = 26
    public static func encodeStructuredError(into bytes: UnsafeMutableRawBufferPointer, handle: UInt64, error: UInt32) {
        encodeStructuredHeader(into: bytes, flags: NBD.replyFlagDone, type: .error, handle: handle, length: 6)
        bytes.storeBE(error, at: 20)
        bytes.storeBE(UInt16(0), at: 24)
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    public func loadBE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        return T(bigEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    public func storeBE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
    }
}

/// A growable big-endian byte writer for the handshake phase (not the data path).
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
    public mutating func append(bytes more: some Sequence<UInt8>) { bytes.append(contentsOf: more) }
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }
}
