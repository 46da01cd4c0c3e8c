// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): every checksum Tandem computes (wire
// frame headers, Data and ReadReply payloads, the staging journal, metadata). The CPU's crc32
// instruction where there is one (CCRC32C, about 5x faster), else slice-by-8 tables in pure
// Swift; both give the same values. Pure computation: no I/O, no allocation after the tables
// are built.
import CCRC32C

/// CRC32C with the conventional pre- and post-inversion, so that
/// `checksum(b, seed: checksum(a)) == checksum(a + b)`.
public enum CRC32C {
    static let polynomial: UInt32 = 0x82F6_3B78

    /// Eight 256-entry tables, flattened: table k at `k * 256`.
    static let tables: [UInt32] = makeTables()

    /// Whether `checksum` uses the CPU's instruction (SSE4.2), decided once.
    public static let usesHardware = tandem_crc32c_hw_available() != 0

    @inline(__always)
    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard usesHardware, let base = bytes.baseAddress else { return tableChecksum(bytes, seed: seed) }
        return tandem_crc32c_hw(seed, base, bytes.count)
    }

    /// The table-driven code alone: what `checksum` runs on a CPU without the instruction,
    /// and the reference the instruction's values are tested against.
    public static func tableChecksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        tables.withUnsafeBufferPointer { table in
            ~update(~seed, bytes, table)
        }
    }

    public static func checksum<C: Collection<UInt8>>(_ bytes: C, seed: UInt32 = 0) -> UInt32 {
        if let crc = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0), seed: seed) }) {
            return crc
        }
        return checksum(Array(bytes), seed: seed)
    }

    private static func update(
        _ state: UInt32, _ bytes: UnsafeRawBufferPointer, _ t: UnsafeBufferPointer<UInt32>
    ) -> UInt32 {
        var crc = state
        var index = 0
        let count = bytes.count
        while count - index >= 8 {
            let low = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt32.self)) ^ crc
            let high = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self))
            crc =
                t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                ^ t[1 * 256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
            index += 8
        }
        while index < count {
            crc = t[Int((crc ^ UInt32(bytes[index])) & 0xFF)] ^ (crc >> 8)
            index += 1
        }
        return crc
    }

    private static func makeTables() -> [UInt32] {
        var table = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1 }
            table[byte] = crc
        }
        for k in 1..<8 {
            for byte in 0..<256 {
                let previous = table[(k - 1) * 256 + byte]
                table[k * 256 + byte] = (previous >> 8) ^ table[Int(previous & 0xFF)]
            }
        }
        return table
    }
}
