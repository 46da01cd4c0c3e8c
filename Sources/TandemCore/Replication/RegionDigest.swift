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

    /// A secondary's answer for a region its volume cannot vouch for: a staged journal it
    /// resumed holds writes of an earlier session that its volume lacks and that a commit
    /// will apply (SecondaryNode+Verify). Same layout as any digest (no new wire type).
    public static let unvouched = RegionDigest(high: .max, low: .max)

    /// Whether this (local) digest and the peer's say the region is the same on both copies:
    /// equal, and the peer vouched for its region (`unvouched` differs from every digest,
    /// also from a local one that happens to equal it).
    public func agrees(withPeer peer: RegionDigest) -> Bool {
        self == peer && peer != .unvouched
    }
}
