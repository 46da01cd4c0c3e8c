// MetadataSeeds: the seed corpus, written by the codecs the daemon writes with
// (MetadataLoad.newFileSlots, MetadataSuperblockCodec, MetadataConversion): a new file, a
// file after record writes, a primary's, one slot torn, a newer format, a truncated file,
// format 2's `.meta` (two records, and the old daemon's never-written zeroes), and the
// input of finding 5 (a volume size whose geometry overflowed).
import FuzzSupport
import TandemCore

enum MetadataSeeds {
    static func superblock(role: MetadataRole) -> MetadataSuperblock {
        var superblock = MetadataSuperblock(resourceName: "r0", volumeSizeBytes: 1 << 30)
        superblock.resourceUUID = 0x1234_5678_9ABC_DEF0_0FED_CBA9_8765_4321
        superblock.roleLastTaken = role
        return superblock
    }

    static var newFile: [UInt8] {
        let slots = MetadataLoad.newFileSlots(superblock(role: .secondary))
        return slots.slotA + slots.slotB
    }

    /// A secondary after record writes: sequence 4 in slot A, 3 in slot B.
    static var afterWrites: [UInt8] {
        var older = superblock(role: .secondary)
        older.record = ReplicationRecord(generation: 2, session: 0xFEED, durableThroughEpoch: 7, synced: false)
        older.sequence = 3
        older.enabled = true
        var newer = older
        newer.record = ReplicationRecord(generation: 3, session: 0xFEED, durableThroughEpoch: 9, synced: true)
        newer.sequence = 4
        return MetadataSuperblockCodec.encode(newer) + MetadataSuperblockCodec.encode(older)
    }

    /// A primary with every field the format has set (most are written only in later issues).
    static var primary: [UInt8] {
        var sb = superblock(role: .primary)
        sb.sequence = 6
        sb.record = ReplicationRecord(generation: 5, session: 0xABCD, durableThroughEpoch: 0, synced: true,
                                      continuedFrom: 0x1111, cleanStop: 0xABCD, primaryStarted: true)
        sb.set(.peerLacksWrites, true)
        sb.set(.writtenWhileDisabled, true)
        sb.currentGeneration = 0xABCD
        sb.bitmapGeneration = 0x1111
        sb.history = [0x1111, 0x2222, 0, 0]
        sb.promotionNumber = 3
        sb.peerNodeName = "beta"
        sb.alSlots = 64
        sb.bitmapBlockBytes = 1 << 20
        sb.alExtentBytes = 1 << 30
        sb.placement = .internal
        var older = sb
        older.sequence = 5
        return MetadataSuperblockCodec.encode(older) + MetadataSuperblockCodec.encode(sb)
    }

    /// Slot A torn in its middle (half new, half old bytes); slot B holds the previous state.
    static var tornSlot: [UInt8] {
        var file = afterWrites
        for index in 2048..<4096 { file[index] = UInt8(truncatingIfNeeded: index &* 31) }
        return file
    }

    /// Slot A of a format 4 (sealed, the magic's prefix kept).
    static var newerFormat: [UInt8] {
        var file = newFile
        file[7] = 0x34
        MetadataFixup.store(UInt32(4), into: &file, at: 8)
        MetadataFixup.seal(&file, slotAt: 0)
        return file
    }

    static var legacyMeta: [UInt8] {
        MetadataConversion.encodeLegacySlot(ReplicationRecord(generation: 4, session: 0x77, durableThroughEpoch: 3, synced: true))
            + MetadataConversion.encodeLegacySlot(ReplicationRecord(generation: 5, session: 0x77, durableThroughEpoch: 4,
                                                                    synced: true, cleanStop: 0x77, primaryStarted: true))
    }

    /// Both slots sealed with a volume size near 2^64, whose geometry overflowed before
    /// the codec refused it (docs/fuzzing.md, finding 5).
    static var volumeSizeMax: [UInt8] {
        var superblock = superblock(role: .secondary)
        superblock.volumeSizeBytes = UInt64.max
        superblock.sequence = 1
        let slotB = MetadataSuperblockCodec.encode(superblock)
        superblock.sequence = 2
        return MetadataSuperblockCodec.encode(superblock) + slotB
    }

    static func all() -> [(name: String, bytes: [UInt8])] {
        let files: [(String, [UInt8], UInt64)] = [
            ("new-file", newFile, 0x07),
            ("after-writes", afterWrites, 0x17),
            ("primary-every-field", primary, 0x2F),
            ("torn-slot-a", tornSlot, 0x07),
            ("newer-format", newerFormat, 0x07),
            ("truncated", Array(newFile.prefix(6000)), 0x07),
            ("legacy-meta", legacyMeta, 0x0B),
            ("legacy-never-written", [UInt8](repeating: 0, count: 8192), 0x0B),
            ("volume-size-max", volumeSizeMax, 0x07),
        ]
        return files.map { ($0.0, FuzzInput.file(seed: $0.2, stream: $0.1)) }
    }
}
