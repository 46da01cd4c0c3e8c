// FastCRC32C: the payload checksum of every replicated block, on both nodes. Uses the CPU's
// CRC32C instruction where there is one (about 5x the table-driven code in TandemCore) and
// TandemCore's CRC32C otherwise; both give the same values.
import CShims
import TandemCore

public enum FastCRC32C {
    public static let usesHardware = tandem_crc32c_hw_available() != 0

    @inline(__always)
    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard usesHardware, let base = bytes.baseAddress else { return CRC32C.checksum(bytes, seed: seed) }
        return tandem_crc32c_hw(seed, base, bytes.count)
    }
}
