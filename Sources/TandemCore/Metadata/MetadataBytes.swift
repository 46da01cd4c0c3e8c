// MetadataBytes: little-endian reads and writes at fixed offsets of a metadata unit (a
// superblock slot, an activity-log transaction, a bitmap page), and the unit's CRC32C rule
// (computed over the whole unit with its CRC field zeroed). Pure: no I/O.

enum MetadataBytes {
    /// Every unit of the file: superblock slot, AL transaction, bitmap page.
    static let unitBytes = 4096

    static func put<T: FixedWidthInteger>(_ value: T, _ bytes: inout [UInt8], at offset: Int) {
        var little = value.littleEndian
        withUnsafeBytes(of: &little) { raw in
            for index in 0..<raw.count { bytes[offset + index] = raw[index] }
        }
    }

    static func get<T: FixedWidthInteger>(_ type: T.Type, _ bytes: [UInt8], at offset: Int) -> T {
        var value: T = 0
        withUnsafeMutableBytes(of: &value) { raw in
            for index in 0..<raw.count { raw[index] = bytes[offset + index] }
        }
        return T(littleEndian: value)
    }

    /// UTF-8 of at most `capacity` bytes, zero padded; false if it does not fit.
    static func putText(_ text: String, _ bytes: inout [UInt8], at offset: Int, capacity: Int) -> Bool {
        let utf8 = Array(text.utf8)
        guard utf8.count <= capacity, !utf8.contains(0) else { return false }
        for index in 0..<capacity { bytes[offset + index] = index < utf8.count ? utf8[index] : 0 }
        return true
    }

    /// The zero-padded UTF-8 text at `offset`, or nil if it is not valid UTF-8.
    static func getText(_ bytes: [UInt8], at offset: Int, capacity: Int) -> String? {
        let field = bytes[offset..<offset + capacity]
        let end = field.firstIndex(of: 0) ?? field.endIndex
        guard field[end...].allSatisfy({ $0 == 0 }) else { return nil }
        return String(validating: field[offset..<end], as: UTF8.self)
    }

    /// The unit's CRC32C with the 4 bytes at `crcOffset` taken as zero.
    static func checksum(_ bytes: [UInt8], crcOffset: Int) -> UInt32 {
        let zeros: [UInt8] = [0, 0, 0, 0]
        var crc = CRC32C.checksum(bytes[0..<crcOffset])
        crc = CRC32C.checksum(zeros, seed: crc)
        return CRC32C.checksum(bytes[(crcOffset + 4)...], seed: crc)
    }

    static func seal(_ bytes: inout [UInt8], crcOffset: Int) {
        put(UInt32(0), &bytes, at: crcOffset)
        put(checksum(bytes, crcOffset: crcOffset), &bytes, at: crcOffset)
    }

    static func sealed(_ bytes: [UInt8], crcOffset: Int) -> Bool {
        get(UInt32.self, bytes, at: crcOffset) == checksum(bytes, crcOffset: crcOffset)
    }
}

/// Why one 4 KiB unit of a metadata file cannot be used.
public enum MetadataUnitError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer bytes than a unit (the file ends inside it).
    case truncated(bytes: Int)
    /// Every byte is zero: never written.
    case zeroes
    case badMagic
    case checksumMismatch
    /// Format 1/2's `TNDMMETA` (a `<name>.meta` of before format 3).
    case legacyFormat
    case unknownVersion(UInt32)
    case unknownFlags(UInt32)
    case invalidField(String)

    public var description: String {
        switch self {
        case .truncated(let bytes): return "truncated (\(bytes) of 4096 bytes)"
        case .zeroes: return "all zeroes (never written)"
        case .badMagic: return "not Tandem metadata (bad magic)"
        case .checksumMismatch: return "checksum mismatch (torn or corrupted)"
        case .legacyFormat: return "format 2 (TNDMMETA), not format 3"
        case .unknownVersion(let version): return "format \(version)"
        case .unknownFlags(let bits): return "unknown flag bits 0x\(String(bits, radix: 16))"
        case .invalidField(let what): return what
        }
    }
}
