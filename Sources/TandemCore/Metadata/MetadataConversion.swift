// MetadataConversion: format 2's three files (`<name>.meta` with two TNDMMETA slots, the
// `<name>.enabled` and `<name>.peer-failed` markers) -> a format-3 superblock
// (docs/metadata.md, *Conversion*). The decoder is kept only for this. Pure: the daemon
// reads the old files, writes the new one and removes the old ones.

public enum MetadataConversion {
    static let legacySlotBytes = 4096
    static let legacyChecksummedBytes = 60

    /// Encodes a format-2 slot (tests write old state directories with it).
    public static func encodeLegacySlot(_ record: ReplicationRecord) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: legacySlotBytes)
        for (index, byte) in MetadataSuperblockCodec.legacyMagic.enumerated() { bytes[index] = byte }
        MetadataBytes.put(record.generation, &bytes, at: 8)
        MetadataBytes.put(record.session, &bytes, at: 16)
        MetadataBytes.put(record.durableThroughEpoch, &bytes, at: 24)
        bytes[32] = record.synced ? 1 : 0
        bytes[33] = record.primaryStarted ? 1 : 0
        bytes[34] = record.promotedInconsistent ? 1 : 0
        MetadataBytes.put(record.continuedFrom, &bytes, at: 40)
        MetadataBytes.put(record.cleanStop, &bytes, at: 48)
        MetadataBytes.put(CRC32C.checksum(bytes[0..<legacyChecksummedBytes]), &bytes, at: legacyChecksummedBytes)
        return bytes
    }

    /// A format-2 slot's record, or nil if it is not a whole valid one.
    public static func decodeLegacySlot(_ bytes: [UInt8]) -> ReplicationRecord? {
        guard bytes.count >= legacySlotBytes, Array(bytes[0..<8]) == MetadataSuperblockCodec.legacyMagic,
            MetadataBytes.get(UInt32.self, bytes, at: legacyChecksummedBytes)
                == CRC32C.checksum(bytes[0..<legacyChecksummedBytes])
        else { return nil }
        return ReplicationRecord(
            generation: MetadataBytes.get(UInt64.self, bytes, at: 8), session: MetadataBytes.get(UInt64.self, bytes, at: 16),
            durableThroughEpoch: MetadataBytes.get(UInt64.self, bytes, at: 24), synced: bytes[32] == 1,
            continuedFrom: MetadataBytes.get(UInt64.self, bytes, at: 40), cleanStop: MetadataBytes.get(UInt64.self, bytes, at: 48),
            primaryStarted: bytes[33] == 1, promotedInconsistent: bytes[34] == 1)
    }

    /// The old state of a resource as the daemon found it.
    public struct LegacyState: Equatable, Sendable {
        /// The `.meta` file's bytes (nil: no file; the old daemon wrote it only at the first
        /// record write, so a resource that never wrote one had none).
        public var metaBytes: [UInt8]?
        public var enabledMarker: Bool
        public var peerFailedMarker: Bool

        public init(metaBytes: [UInt8]?, enabledMarker: Bool, peerFailedMarker: Bool) {
            self.metaBytes = metaBytes
            self.enabledMarker = enabledMarker
            self.peerFailedMarker = peerFailedMarker
        }
    }

    /// The format-3 superblock (sequence not set) for the old state, or why it cannot be
    /// proven: a `.meta` that exists with no valid slot is not a fresh record.
    public static func convert(_ old: LegacyState, role: ResourceRole, resourceName: String, volumeSizeBytes: UInt64,
                               resourceUUID: UInt128) -> Result<MetadataSuperblock, MetadataLoadFailure> {
        var record = ReplicationRecord()
        if let bytes = old.metaBytes {
            let slots = [0, 1].map { slot -> [UInt8] in
                let start = min(bytes.count, slot * legacySlotBytes)
                return Array(bytes[start..<min(bytes.count, start + legacySlotBytes)])
            }
            let found = slots.compactMap(decodeLegacySlot)
            // The old daemon created the file zeroed when a secondary first started, before
            // its first record write: two whole zero slots are that, not damage.
            let neverWritten = bytes.count == 2 * legacySlotBytes && bytes.allSatisfy { $0 == 0 }
            guard neverWritten || !found.isEmpty else {
                let reasons = slots.map { $0.count < legacySlotBytes ? MetadataUnitError.truncated(bytes: $0.count) : .checksumMismatch }
                return .failure(.bothSlotsBad(slotA: reasons[0], slotB: reasons[1]))
            }
            if let newest = found.max(by: { $0.generation < $1.generation }) { record = newest }
        }
        var superblock = MetadataSuperblock(resourceName: resourceName, volumeSizeBytes: volumeSizeBytes)
        superblock.resourceUUID = resourceUUID
        superblock.record = record
        superblock.roleLastTaken = MetadataRole(role)
        superblock.enabled = old.enabledMarker
        superblock.peerLacksWrites = old.peerFailedMarker
        // Generations derived from the session (docs/metadata.md, *Conversion*).
        superblock.currentGeneration = role == .primary ? record.cleanStop : record.session
        if role == .primary && record.primaryStarted && record.cleanStop == 0 { superblock.set(.crashedPrimary, true) }
        return .success(superblock)
    }
}
