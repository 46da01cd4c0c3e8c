// FastCRC32C: the payload checksum of every replicated block, on both nodes: TandemCore's
// CRC32C (the CPU's instruction where there is one), and `copyChecksum`, which fuses the
// checksum with a copy, so that a received payload is read from memory once, not twice.
import TandemCore

public enum FastCRC32C {
    public static var usesHardware: Bool { CRC32C.usesHardware }

    @inline(__always)
    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        CRC32C.checksum(bytes, seed: seed)
    }

    /// The piece a fused copy moves before checksumming it: small enough to be still in the
    /// L1/L2 cache when its checksum reads it, and the length (three streams of 8 KiB) at which
    /// the hardware checksum runs at full speed.
    public static let fusedPieceBytes = 24 << 10

    /// Copies `source` into `destination` (the same length) and returns the CRC32C of the
    /// bytes, which are read from memory once: each piece is checksummed right after its copy,
    /// from the cache.
    public static func copyChecksum(
        from source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer, seed: UInt32 = 0
    ) -> UInt32 {
        precondition(source.count == destination.count, "a fused copy needs buffers of one length")
        var crc = seed
        var offset = 0
        while offset < source.count {
            let end = min(offset + fusedPieceBytes, source.count)
            let target = UnsafeMutableRawBufferPointer(rebasing: destination[offset..<end])
            target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<end]))
            crc = checksum(UnsafeRawBufferPointer(target), seed: crc)
            offset = end
        }
        return crc
    }
}
