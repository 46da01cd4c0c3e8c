// MetadataSuperblockCodec: a superblock slot's 4096 bytes <-> MetadataSuperblock, every
// field at the offset docs/metadata.md gives. Decoding proves a slot (magic, version, CRC,
// flags, field ranges) or says precisely why it cannot. Pure: no I/O.

public enum MetadataSuperblockCodec {
    /// `TNDMMD03`.
    public static let magic: [UInt8] = Array("TNDMMD03".utf8)
    /// Format 1/2's `TNDMMETA` (the `<name>.meta` of before format 3).
    public static let legacyMagic: [UInt8] = Array("TNDMMETA".utf8)
    static let crcOffset = 12
    static let nameOffset = 40
    static let peerNameOffset = 256
    static let recordWritesOffset = 320
    static let bitmapSealedOffset = 328
    /// Two (session, durable epoch) pairs: the catch-up bases the sealed bitmap covers.
    static let catchUpBasesOffset = 336
    /// The staged catch-up's origin: session, durable epoch, continued-from (3 × u64).
    static let stagedFromOffset = 368
    /// A primary's wall-clock time (ns since the Unix epoch) since which its peer lacks
    /// acknowledged writes (0: none, or not known).
    static let lackingSinceOffset = 392

    /// The 4096 bytes of `superblock`'s slot. Precondition: names fit, history has 4 entries.
    public static func encode(_ superblock: MetadataSuperblock) -> [UInt8] {
        precondition(superblock.history.count == MetadataSuperblock.historyCount)
        var bytes = [UInt8](repeating: 0, count: MetadataBytes.unitBytes)
        for (index, byte) in magic.enumerated() { bytes[index] = byte }
        MetadataBytes.put(MetadataSuperblock.formatVersion, &bytes, at: 8)
        MetadataBytes.put(superblock.sequence, &bytes, at: 16)
        MetadataBytes.put(superblock.resourceUUID, &bytes, at: 24)
        precondition(MetadataBytes.putText(superblock.resourceName, &bytes, at: nameOffset, capacity: 64))
        MetadataBytes.put(superblock.volumeSizeBytes, &bytes, at: 104)
        MetadataBytes.put(superblock.bitmapBlockBytes, &bytes, at: 112)
        MetadataBytes.put(superblock.alExtentBytes, &bytes, at: 116)
        MetadataBytes.put(superblock.alSlots, &bytes, at: 120)
        MetadataBytes.put(superblock.alExtentsMax, &bytes, at: 124)
        bytes[128] = superblock.roleLastTaken.rawValue
        bytes[129] = superblock.placement.rawValue
        MetadataBytes.put(superblock.flags.rawValue, &bytes, at: 132)
        MetadataBytes.put(superblock.currentGeneration, &bytes, at: 136)
        MetadataBytes.put(superblock.bitmapGeneration, &bytes, at: 144)
        for (index, generation) in superblock.history.enumerated() {
            MetadataBytes.put(generation, &bytes, at: 152 + 8 * index)
        }
        let tail: [UInt64] = [
            superblock.promotionNumber, superblock.session, superblock.durableEpoch, superblock.continuedFrom,
            superblock.cleanStop, superblock.stagingSession, superblock.stagedJournalBytes, superblock.consistentAsOfNs,
            superblock.changedBytes,
        ]
        for (index, value) in tail.enumerated() { MetadataBytes.put(value, &bytes, at: 184 + 8 * index) }
        precondition(MetadataBytes.putText(superblock.peerNodeName, &bytes, at: peerNameOffset, capacity: 64))
        MetadataBytes.put(superblock.recordWrites, &bytes, at: recordWritesOffset)
        MetadataBytes.put(superblock.bitmapSealedSequence, &bytes, at: bitmapSealedOffset)
        precondition(superblock.catchUpBases.count <= CatchUpBase.countMax)
        for (index, base) in superblock.catchUpBases.enumerated() {
            MetadataBytes.put(base.session, &bytes, at: catchUpBasesOffset + 16 * index)
            MetadataBytes.put(base.durableThroughEpoch, &bytes, at: catchUpBasesOffset + 16 * index + 8)
        }
        for (index, value) in superblock.stagedFrom.enumerated() {
            MetadataBytes.put(value, &bytes, at: stagedFromOffset + 8 * index)
        }
        MetadataBytes.put(superblock.peerLacksSinceUnixNs, &bytes, at: lackingSinceOffset)
        MetadataBytes.seal(&bytes, crcOffset: crcOffset)
        return bytes
    }

    /// The superblock a slot holds, or why it holds none.
    public static func decode(_ bytes: [UInt8]) -> Result<MetadataSuperblock, MetadataUnitError> {
        guard bytes.count >= MetadataBytes.unitBytes else { return .failure(.truncated(bytes: bytes.count)) }
        let slot = bytes.count == MetadataBytes.unitBytes ? bytes : Array(bytes[0..<MetadataBytes.unitBytes])
        if slot.allSatisfy({ $0 == 0 }) { return .failure(.zeroes) }
        if Array(slot[0..<8]) == legacyMagic { return .failure(.legacyFormat) }
        // A later format keeps the 6-byte prefix and says its number in the version field.
        guard Array(slot[0..<6]) == Array(magic[0..<6]) else { return .failure(.badMagic) }
        guard MetadataBytes.sealed(slot, crcOffset: crcOffset) else { return .failure(.checksumMismatch) }
        let version = MetadataBytes.get(UInt32.self, slot, at: 8)
        guard version == MetadataSuperblock.formatVersion, Array(slot[0..<8]) == magic else {
            return .failure(.unknownVersion(version))
        }
        return decodeFields(slot)
    }

    private static func decodeFields(_ slot: [UInt8]) -> Result<MetadataSuperblock, MetadataUnitError> {
        let flags = MetadataBytes.get(UInt32.self, slot, at: 132)
        guard flags & ~MetadataFlags.known.rawValue == 0 else {
            return .failure(.unknownFlags(flags & ~MetadataFlags.known.rawValue))
        }
        guard let name = MetadataBytes.getText(slot, at: nameOffset, capacity: 64), !name.isEmpty else {
            return .failure(.invalidField("resource name is not UTF-8"))
        }
        guard let peerName = MetadataBytes.getText(slot, at: peerNameOffset, capacity: 64) else {
            return .failure(.invalidField("peer node name is not UTF-8"))
        }
        guard let role = MetadataRole(rawValue: slot[128]) else {
            return .failure(.invalidField("role last taken \(slot[128])"))
        }
        guard let placement = MetadataPlacement(rawValue: slot[129]) else {
            return .failure(.invalidField("placement \(slot[129])"))
        }
        var superblock = MetadataSuperblock(resourceName: name, volumeSizeBytes: MetadataBytes.get(UInt64.self, slot, at: 104))
        superblock.sequence = MetadataBytes.get(UInt64.self, slot, at: 16)
        superblock.resourceUUID = MetadataBytes.get(UInt128.self, slot, at: 24)
        superblock.bitmapBlockBytes = MetadataBytes.get(UInt32.self, slot, at: 112)
        superblock.alExtentBytes = MetadataBytes.get(UInt32.self, slot, at: 116)
        superblock.alSlots = MetadataBytes.get(UInt32.self, slot, at: 120)
        superblock.alExtentsMax = MetadataBytes.get(UInt32.self, slot, at: 124)
        superblock.roleLastTaken = role
        superblock.placement = placement
        superblock.flags = MetadataFlags(rawValue: flags)
        superblock.currentGeneration = MetadataBytes.get(UInt64.self, slot, at: 136)
        superblock.bitmapGeneration = MetadataBytes.get(UInt64.self, slot, at: 144)
        superblock.history = (0..<MetadataSuperblock.historyCount).map { MetadataBytes.get(UInt64.self, slot, at: 152 + 8 * $0) }
        superblock.promotionNumber = MetadataBytes.get(UInt64.self, slot, at: 184)
        superblock.session = MetadataBytes.get(UInt64.self, slot, at: 192)
        superblock.durableEpoch = MetadataBytes.get(UInt64.self, slot, at: 200)
        superblock.continuedFrom = MetadataBytes.get(UInt64.self, slot, at: 208)
        superblock.cleanStop = MetadataBytes.get(UInt64.self, slot, at: 216)
        superblock.stagingSession = MetadataBytes.get(UInt64.self, slot, at: 224)
        superblock.stagedJournalBytes = MetadataBytes.get(UInt64.self, slot, at: 232)
        superblock.consistentAsOfNs = MetadataBytes.get(UInt64.self, slot, at: 240)
        superblock.changedBytes = MetadataBytes.get(UInt64.self, slot, at: 248)
        superblock.peerNodeName = peerName
        superblock.recordWrites = MetadataBytes.get(UInt64.self, slot, at: recordWritesOffset)
        superblock.bitmapSealedSequence = MetadataBytes.get(UInt64.self, slot, at: bitmapSealedOffset)
        superblock.catchUpBases = (0..<CatchUpBase.countMax).compactMap { index in
            let base = CatchUpBase(session: MetadataBytes.get(UInt64.self, slot, at: catchUpBasesOffset + 16 * index),
                                   durableThroughEpoch: MetadataBytes.get(UInt64.self, slot, at: catchUpBasesOffset + 16 * index + 8))
            return base.session == 0 && base.durableThroughEpoch == 0 ? nil : base
        }
        superblock.stagedFrom = (0..<3).map { MetadataBytes.get(UInt64.self, slot, at: stagedFromOffset + 8 * $0) }
        superblock.peerLacksSinceUnixNs = MetadataBytes.get(UInt64.self, slot, at: lackingSinceOffset)
        if let problem = geometryProblem(superblock) { return .failure(.invalidField(problem)) }
        if superblock.stagingSession == 0, superblock.flags.contains(.stagedCommitted) || superblock.stagedJournalBytes != 0 {
            return .failure(.invalidField("a staged journal is committed or has bytes without a staging session"))
        }
        // The pages are durable before the superblock that seals them is written: a seal at
        // or above the slot's own sequence claims pages written after it.
        guard superblock.bitmapSealedSequence < superblock.sequence else {
            return .failure(.invalidField(
                "bitmap sealed at sequence \(superblock.bitmapSealedSequence), not below the slot's \(superblock.sequence)"))
        }
        return .success(superblock)
    }

    /// Ranges of docs/metadata.md; nil if every geometry field is within them.
    public static func geometryProblem(_ superblock: MetadataSuperblock) -> String? {
        let block = superblock.bitmapBlockBytes
        guard MetadataGeometry.bitmapBlockBytesRange.contains(block), block.nonzeroBitCount == 1 else {
            return "bitmap block bytes \(block) (a power of two, 4 KiB ... 1 MiB)"
        }
        let extent = superblock.alExtentBytes
        guard extent >= block, extent <= MetadataGeometry.alExtentBytesMax, extent.nonzeroBitCount == 1 else {
            return "AL extent bytes \(extent) (a power of two, ≥ the bitmap block, ≤ 1 GiB)"
        }
        guard MetadataGeometry.alSlotsRange.contains(superblock.alSlots) else {
            return "AL slots \(superblock.alSlots) (2 ... 64)"
        }
        guard MetadataGeometry.alExtentsMaxRange.contains(superblock.alExtentsMax) else {
            return "AL extents max \(superblock.alExtentsMax) (0 ... \(ActivityLogTransaction.extentsMax))"
        }
        guard superblock.volumeSizeBytes > 0, superblock.sequence > 0 else {
            return "volume size \(superblock.volumeSizeBytes), sequence \(superblock.sequence) (both > 0)"
        }
        // Beyond it the geometry's arithmetic (the file size the loader checks) overflows.
        guard superblock.volumeSizeBytes <= MetadataGeometry.volumeSizeBytesMax else {
            return "volume size \(superblock.volumeSizeBytes) (at most \(MetadataGeometry.volumeSizeBytesMax))"
        }
        return nil
    }
}
