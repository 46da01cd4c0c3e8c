// WireChecksumFixup: rewrites the checksums in a stream so that mutated frames pass them:
// each frame header's CRC32C, and each Data block's CRC32C (of the block as it restores:
// the payload itself, or what liblz4 decompresses it to). Frames are found by their length
// fields, as the decoder finds them; whatever is malformed is left for the decoder to refuse.
import TandemCore
import TandemIO

enum WireChecksumFixup {
    static let dataType: UInt8 = 3
    /// Body offsets of a Data message's fields (docs/protocol.md).
    static let lengthOffset = 24, flagsOffset = 28, crcOffset = 32

    static func apply(_ stream: [UInt8]) -> [UInt8] {
        var fixed = stream
        var position = 0
        while position + WireFormat.headerBytes <= fixed.count {
            let bodyBytes = Int(integer(fixed, at: position + 8, bytes: 4))
            let body = position + WireFormat.headerBytes
            if fixed[position + 5] == dataType && bodyBytes >= WireFormat.dataFixedBytes && body + bodyBytes <= fixed.count {
                fixBlockChecksum(&fixed, body: body, bodyBytes: bodyBytes)
            }
            store(CRC32C.checksum(fixed[position..<(position + 20)]), into: &fixed, at: position + 20)
            position = body + bodyBytes
        }
        return fixed
    }

    private static func fixBlockChecksum(_ stream: inout [UInt8], body: Int, bodyBytes: Int) {
        let length = Int(integer(stream, at: body + lengthOffset, bytes: 4))
        let flags = WireDataFlags(rawValue: UInt16(integer(stream, at: body + flagsOffset, bytes: 2)))
        let payload = stream[(body + WireFormat.dataFixedBytes)..<(body + bodyBytes)]
        guard flags.contains(.compressed) else {
            store(CRC32C.checksum(payload), into: &stream, at: body + crcOffset)
            return
        }
        guard length > 0, length <= WirePayloadFuzz.restoreBytesMax else { return }
        var block = [UInt8](repeating: 0, count: length)
        let decompressed = payload.withUnsafeBytes { source in
            block.withUnsafeMutableBytes { (try? LZ4.decompress(source, into: $0)) != nil }
        }
        if decompressed { store(CRC32C.checksum(block), into: &stream, at: body + crcOffset) }
    }

    private static func integer(_ bytes: [UInt8], at offset: Int, bytes count: Int) -> UInt64 {
        (0..<count).reduce(0) { value, index in value | UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
    }

    private static func store(_ value: UInt32, into bytes: inout [UInt8], at offset: Int) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
    }
}
