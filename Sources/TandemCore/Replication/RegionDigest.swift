// RegionDigest: the 128-bit digest of a volume region that online verify compares across the
// nodes (SHA-256 truncated to its first 16 bytes, big-endian halves; docs/protocol.md,
// *Verify*). 128 bits, not a 32-bit CRC: at this scale a CRC would let real differences
// through. Computed by the drivers (OpenSSL); compared in TandemCore.
public struct RegionDigest: Sendable, Hashable {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
}
