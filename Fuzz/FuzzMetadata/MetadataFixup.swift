// MetadataFixup: rewrites a mutated file so that the fuzzer reaches the field decoders: the
// CRC32C of each whole slot (keeping its magic), or format 3's magic and version and then
// the CRC, or format 2's magic and its CRC (the conversion's decoder). Mode 0 leaves the
// bytes alone, so that the checksum and magic checks stay covered. Also the codec's CRC rule
// and the slot's reserved bytes, written out independently of TandemCore's internals.
import TandemCore

enum MetadataFixup {
    static let slotBytes = MetadataGeometry.slotBytes
    static let crcOffset = 12
    static let legacyChecksummedBytes = 60
    /// Bytes of a format-3 slot that no field uses (docs/metadata.md: reserved, written 0).
    static let reserved: [Range<Int>] = [130..<132, 328..<4096]

    static func apply(_ file: [UInt8], mode: Int) -> [UInt8] {
        guard mode != 0 else { return file }
        var fixed = file
        for start in stride(from: 0, to: min(fixed.count, 2 * slotBytes), by: slotBytes)
        where start + slotBytes <= fixed.count {
            switch mode {
            case 1:
                seal(&fixed, slotAt: start)
            case 2:
                fixed.replaceSubrange(start..<(start + 8), with: MetadataSuperblockCodec.magic)
                store(MetadataSuperblock.formatVersion, into: &fixed, at: start + 8)
                seal(&fixed, slotAt: start)
            default:
                fixed.replaceSubrange(start..<(start + 8), with: MetadataSuperblockCodec.legacyMagic)
                let crc = CRC32C.checksum(fixed[start..<(start + legacyChecksummedBytes)])
                store(crc, into: &fixed, at: start + legacyChecksummedBytes)
            }
        }
        return fixed
    }

    /// The CRC32C of the slot with its CRC field taken as zero (docs/metadata.md, *Layout*).
    static func checksum(_ slot: ArraySlice<UInt8>) -> UInt32 {
        var zeroed = Array(slot)
        for index in crcOffset..<(crcOffset + 4) { zeroed[index] = 0 }
        return CRC32C.checksum(zeroed)
    }

    static func seal(_ file: inout [UInt8], slotAt start: Int) {
        store(checksum(file[start..<(start + slotBytes)]), into: &file, at: start + crcOffset)
    }

    static func sealed(_ slot: [UInt8]) -> Bool {
        let stored = (0..<4).reduce(UInt32(0)) { $0 | UInt32(slot[crcOffset + $1]) << (8 * UInt32($1)) }
        return stored == checksum(slot[...])
    }

    /// The slot with the reserved bytes and the CRC (which covers them) zeroed.
    static func withoutReserved(_ slot: [UInt8]) -> [UInt8] {
        var bytes = slot
        for range in reserved + [crcOffset..<(crcOffset + 4)] {
            for index in range { bytes[index] = 0 }
        }
        return bytes
    }

    static func store<T: FixedWidthInteger>(_ value: T, into bytes: inout [UInt8], at offset: Int) {
        for index in 0..<(T.bitWidth / 8) { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
}
