// ActivityLogTransaction: one 4 KiB slot of the activity-log ring (docs/metadata.md,
// *Activity-log transaction*): the whole active set of extents as of transaction number
// `transaction`, and the catch-up bases it proves: the points the peer held when it was
// written, relative to which every write not in its extents was the same on both copies.
// What enters or leaves the set is the activity log's logic (Tracking); this is only the
// codec. Pure: no I/O.

public struct ActivityLogTransaction: Equatable, Sendable {
    public static let magic: [UInt8] = Array("TNAL".utf8)
    /// Extents one transaction holds at most (40 header bytes + 4 per extent fit 4096).
    public static let extentsMax: UInt32 = 1000
    static let crcOffset = 4
    static let flagsOffset = 36
    /// Flag bit 0: `bitmapPagesCount`. Other bits are refused (a newer format).
    static let flagBitmapPagesCount: UInt32 = 1
    static let extentsOffset = 40
    /// Two (session, durable epoch) pairs after the largest extent list (40 + 4 × 1000).
    static let basesOffset = 4064

    /// Bumped per transaction; the ring slot is `transaction % alSlots`.
    public var transaction: UInt64
    public var resourceUUID: UInt128
    /// Extent numbers (offset / AL extent bytes), strictly ascending.
    public var extents: [UInt32]
    /// What a crash restart may catch up from (`CatchUpBase`, newest first, at most
    /// `CatchUpBase.countMax`); empty: the peer's state is not known (a copy was due or the
    /// node was Ahead with no bases when it was written), so a crash costs a full copy.
    public var bases: [CatchUpBase]
    /// The bitmap area's pages count: a crash restart catches up the durable pages' set bits
    /// as well as the extents (the node was Ahead or catching up; every bit set and not in
    /// the extents was on disk when this was written). False: the extents alone.
    public var bitmapPagesCount: Bool

    public init(transaction: UInt64, resourceUUID: UInt128, extents: [UInt32], bases: [CatchUpBase] = [],
                bitmapPagesCount: Bool = false) {
        self.transaction = transaction
        self.resourceUUID = resourceUUID
        self.extents = extents
        self.bases = bases
        self.bitmapPagesCount = bitmapPagesCount
    }

    /// Precondition: at most `extentsMax` extents, strictly ascending.
    public func encode() -> [UInt8] {
        precondition(extents.count <= Int(Self.extentsMax))
        precondition(zip(extents, extents.dropFirst()).allSatisfy { $0 < $1 }, "extents must ascend")
        precondition(bases.count <= CatchUpBase.countMax, "\(bases.count) bases")
        var bytes = [UInt8](repeating: 0, count: MetadataBytes.unitBytes)
        for (index, byte) in Self.magic.enumerated() { bytes[index] = byte }
        MetadataBytes.put(transaction, &bytes, at: 8)
        MetadataBytes.put(resourceUUID, &bytes, at: 16)
        MetadataBytes.put(UInt32(extents.count), &bytes, at: 32)
        MetadataBytes.put(bitmapPagesCount ? Self.flagBitmapPagesCount : 0, &bytes, at: Self.flagsOffset)
        for (index, extent) in extents.enumerated() {
            MetadataBytes.put(extent, &bytes, at: Self.extentsOffset + 4 * index)
        }
        for (index, base) in bases.enumerated() {
            MetadataBytes.put(base.session, &bytes, at: Self.basesOffset + 16 * index)
            MetadataBytes.put(base.durableThroughEpoch, &bytes, at: Self.basesOffset + 16 * index + 8)
        }
        MetadataBytes.seal(&bytes, crcOffset: Self.crcOffset)
        return bytes
    }

    /// The transaction a slot holds, or why it holds none. `resourceUUID`: a transaction of
    /// another resource is refused; `extentsMax`: the superblock's AL extents max.
    public static func decode(_ bytes: [UInt8], resourceUUID: UInt128, extentsMax: UInt32)
        -> Result<ActivityLogTransaction, MetadataUnitError>
    {
        guard bytes.count >= MetadataBytes.unitBytes else { return .failure(.truncated(bytes: bytes.count)) }
        let slot = bytes.count == MetadataBytes.unitBytes ? bytes : Array(bytes[0..<MetadataBytes.unitBytes])
        if slot.allSatisfy({ $0 == 0 }) { return .failure(.zeroes) }
        guard Array(slot[0..<4]) == magic else { return .failure(.badMagic) }
        guard MetadataBytes.sealed(slot, crcOffset: crcOffset) else { return .failure(.checksumMismatch) }
        let uuid = MetadataBytes.get(UInt128.self, slot, at: 16)
        guard uuid == resourceUUID else { return .failure(.invalidField("transaction of another resource")) }
        let count = MetadataBytes.get(UInt32.self, slot, at: 32)
        guard count <= min(extentsMax, Self.extentsMax) else {
            return .failure(.invalidField("\(count) extents, more than AL extents max \(extentsMax)"))
        }
        // Reserved (zero) before the flag existed: an older transaction reads as extents only.
        let flags = MetadataBytes.get(UInt32.self, slot, at: flagsOffset)
        guard flags & ~flagBitmapPagesCount == 0 else {
            return .failure(.invalidField("unknown transaction flags \(String(flags, radix: 16))"))
        }
        let extents = (0..<Int(count)).map { MetadataBytes.get(UInt32.self, slot, at: extentsOffset + 4 * $0) }
        guard zip(extents, extents.dropFirst()).allSatisfy({ $0 < $1 }) else {
            return .failure(.invalidField("extents not ascending"))
        }
        var bases: [CatchUpBase] = []
        for index in 0..<CatchUpBase.countMax {
            let base = CatchUpBase(session: MetadataBytes.get(UInt64.self, slot, at: basesOffset + 16 * index),
                                   durableThroughEpoch: MetadataBytes.get(UInt64.self, slot, at: basesOffset + 16 * index + 8))
            if base.session != 0 || base.durableThroughEpoch != 0 { bases.append(base) }
        }
        return .success(ActivityLogTransaction(
            transaction: MetadataBytes.get(UInt64.self, slot, at: 8), resourceUUID: uuid, extents: extents, bases: bases,
            bitmapPagesCount: flags & flagBitmapPagesCount != 0))
    }

    /// Recovery's pick: the valid transaction with the highest number (nil: none valid, the
    /// active set is empty). A torn newest one is skipped: no data write was issued under it.
    public static func newest(_ slots: [[UInt8]], resourceUUID: UInt128, extentsMax: UInt32) -> ActivityLogTransaction? {
        var best: ActivityLogTransaction?
        for slot in slots {
            guard case .success(let found) = decode(slot, resourceUUID: resourceUUID, extentsMax: extentsMax) else {
                continue
            }
            if found.transaction >= (best?.transaction ?? 0) { best = found }
        }
        return best
    }
}
