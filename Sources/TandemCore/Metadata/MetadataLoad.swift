// MetadataLoad: the loading verdict of docs/metadata.md, *Loading*: given what the file
// holds (its size and both superblock slots) and what the resource expects (name, volume
// size, UUID if known), which superblock to use, which slot was recovered and why, or why
// the metadata cannot be proven. "Cannot prove" is never "fresh": a failure is a failure.
// Pure: the daemon reads the bytes and acts on the verdict.

/// What the resource expects of its metadata.
public struct MetadataExpectation: Equatable, Sendable {
    public var resourceName: String
    /// What the volume measures: the metadata may describe this much or less (a volume
    /// grown before `resize`), never more.
    public var volumeSizeBytes: UInt64
    /// nil: not known to the caller (only the metadata holds it).
    public var resourceUUID: UInt128?

    public init(resourceName: String, volumeSizeBytes: UInt64, resourceUUID: UInt128? = nil) {
        self.resourceName = resourceName
        self.volumeSizeBytes = volumeSizeBytes
        self.resourceUUID = resourceUUID
    }
}

/// Why a metadata file cannot be used. `description` is what status says after the path.
public enum MetadataLoadFailure: Error, Equatable, Sendable, CustomStringConvertible {
    case missing
    /// The file ends before what it must hold.
    case truncated(fileBytes: UInt64, neededBytes: UInt64)
    case bothSlotsBad(slotA: MetadataUnitError, slotB: MetadataUnitError)
    case unknownVersion(UInt32)
    /// Format 2's `TNDMMETA` where format 3 belongs (conversion reads `<name>.meta`).
    case legacyFormat
    case otherResource(found: String, expected: String)
    case otherSize(foundBytes: UInt64, expectedBytes: UInt64)
    case otherUUID(found: UInt128, expected: UInt128)

    public var description: String {
        switch self {
        case .missing:
            return "metadata file missing"
        case .truncated(let fileBytes, let neededBytes):
            return "metadata file truncated: \(fileBytes) bytes, format 3 needs \(neededBytes)"
        case .bothSlotsBad(let slotA, let slotB):
            return "no valid superblock: slot A \(slotA), slot B \(slotB)"
        case .unknownVersion(let version):
            return "metadata format \(version) is newer than this tandemd (3): upgrade tandemd"
        case .legacyFormat:
            return "metadata file is format 2 (TNDMMETA): only <name>.meta is converted"
        case .otherResource(let found, let expected):
            return "metadata of resource '\(found)', not '\(expected)'"
        case .otherSize(let found, let expected):
            return "metadata describes a volume of \(found) bytes, the volume has only \(expected)"
        case .otherUUID(let found, let expected):
            return "metadata of resource UUID \(String(found, radix: 16)), not \(String(expected, radix: 16))"
        }
    }
}

/// The verdict: the superblock to use, and the slot that was not used if it was bad.
public struct MetadataLoaded: Equatable, Sendable {
    public var superblock: MetadataSuperblock
    /// Set when one slot was bad and the other used (event `metadata-slot-recovered`).
    public var recovered: (slot: Int, reason: MetadataUnitError)?

    public static func == (lhs: MetadataLoaded, rhs: MetadataLoaded) -> Bool {
        lhs.superblock == rhs.superblock && lhs.recovered?.slot == rhs.recovered?.slot
            && lhs.recovered?.reason == rhs.recovered?.reason
    }

    /// "A" or "B".
    public static func slotName(_ slot: Int) -> String { slot == 0 ? "A" : "B" }
}

public enum MetadataLoad {
    /// - `fileBytes`: the file's size (nil: the file does not exist).
    /// - `slotA`, `slotB`: the bytes read at offsets 0 and 4096 (shorter if the file is).
    public static func decide(fileBytes: UInt64?, slotA: [UInt8], slotB: [UInt8], expected: MetadataExpectation)
        -> Result<MetadataLoaded, MetadataLoadFailure>
    {
        guard let fileBytes else { return .failure(.missing) }
        let slots = [MetadataSuperblockCodec.decode(slotA), MetadataSuperblockCodec.decode(slotB)]
        for case .failure(.unknownVersion(let version)) in slots {
            return .failure(.unknownVersion(version))
        }
        let loaded: MetadataLoaded
        switch (slots[0], slots[1]) {
        case (.success(let a), .success(let b)):
            loaded = MetadataLoaded(superblock: a.sequence >= b.sequence ? a : b)
        case (.success(let a), .failure(let reason)):
            loaded = MetadataLoaded(superblock: a, recovered: (1, reason))
        case (.failure(let reason), .success(let b)):
            loaded = MetadataLoaded(superblock: b, recovered: (0, reason))
        case (.failure(let reasonA), .failure(let reasonB)):
            if reasonA == .legacyFormat || reasonB == .legacyFormat { return .failure(.legacyFormat) }
            let needed = UInt64(2 * MetadataGeometry.slotBytes)
            if fileBytes < needed { return .failure(.truncated(fileBytes: fileBytes, neededBytes: needed)) }
            return .failure(.bothSlotsBad(slotA: reasonA, slotB: reasonB))
        }
        return check(loaded, fileBytes: fileBytes, expected: expected)
    }

    private static func check(_ loaded: MetadataLoaded, fileBytes: UInt64, expected: MetadataExpectation)
        -> Result<MetadataLoaded, MetadataLoadFailure>
    {
        let superblock = loaded.superblock
        guard superblock.resourceName == expected.resourceName else {
            return .failure(.otherResource(found: superblock.resourceName, expected: expected.resourceName))
        }
        if let uuid = expected.resourceUUID, superblock.resourceUUID != 0, uuid != superblock.resourceUUID {
            return .failure(.otherUUID(found: superblock.resourceUUID, expected: uuid))
        }
        // A volume larger than its metadata was grown and not (or not yet) resized: the
        // resource keeps the metadata's size until `resize` (docs/metadata.md, *Resize*).
        guard superblock.volumeSizeBytes <= expected.volumeSizeBytes else {
            return .failure(.otherSize(foundBytes: superblock.volumeSizeBytes, expectedBytes: expected.volumeSizeBytes))
        }
        let needed = superblock.placement == .external ? superblock.geometry.fileBytes : UInt64(2 * MetadataGeometry.slotBytes)
        guard fileBytes >= needed else { return .failure(.truncated(fileBytes: fileBytes, neededBytes: needed)) }
        return .success(loaded)
    }

    /// The two slots of a new file: the same superblock in both, sequence 1 in slot B and 2
    /// in slot A, so that a new file loads from two valid slots (no recovery event). The
    /// caller has set the record and flags; its `sequence` is ignored.
    public static func newFileSlots(_ superblock: MetadataSuperblock) -> (slotA: [UInt8], slotB: [UInt8], superblock: MetadataSuperblock) {
        var first = superblock
        first.sequence = 1
        var second = superblock
        second.sequence = 2
        return (MetadataSuperblockCodec.encode(second), MetadataSuperblockCodec.encode(first), second)
    }
}
