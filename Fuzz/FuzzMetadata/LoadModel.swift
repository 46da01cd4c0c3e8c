// LoadModel: docs/metadata.md's *Loading* table, read independently of MetadataLoad, and
// the checks of a verdict against it.
import FuzzSupport
import TandemCore

struct LoadModel {
    let fileBytes: UInt64?
    let a: Result<MetadataSuperblock, MetadataUnitError>
    let b: Result<MetadataSuperblock, MetadataUnitError>
    let expected: MetadataExpectation

    func check(_ verdict: Result<MetadataLoaded, MetadataLoadFailure>) {
        switch verdict {
        case .failure(let failure):
            fuzzCheck(failure.description.utf8.count <= MetadataFuzz.descriptionBytesMax, "an over-long load error: \(failure)")
            checkRefusal(failure)
        case .success(let loaded):
            checkLoaded(loaded)
        }
    }

    /// Whether the failure is one the table gives for these slots.
    private func checkRefusal(_ failure: MetadataLoadFailure) {
        guard let fileBytes else { return fuzzCheck(failure == .missing, "a missing file refused as \(failure)") }
        if let version = unknownVersion {
            return fuzzCheck(failure == .unknownVersion(version), "a newer format refused as \(failure)")
        }
        switch (a, b) {
        case (.failure(let reasonA), .failure(let reasonB)):
            if reasonA == .legacyFormat || reasonB == .legacyFormat {
                return fuzzCheck(failure == .legacyFormat, "a format-2 slot refused as \(failure)")
            }
            fuzzCheck(failure == .bothSlotsBad(slotA: reasonA, slotB: reasonB)
                || failure == .truncated(fileBytes: fileBytes, neededBytes: UInt64(2 * MetadataFuzz.slotBytes)),
                "two bad slots refused as \(failure)")
        default:
            // A proven superblock: only identity and size refuse it.
            guard let chosen else { return fuzzCheck(false, "no slot chosen") }
            switch failure {
            case .otherResource(let found, _): fuzzCheck(found == chosen.resourceName && found != expected.resourceName, "\(failure)")
            case .otherSize(let found, _): fuzzCheck(found == chosen.volumeSizeBytes && found > expected.volumeSizeBytes, "\(failure)")
            case .otherUUID(let found, let wanted):
                fuzzCheck(found == chosen.resourceUUID && found != 0 && wanted == expected.resourceUUID, "\(failure)")
            case .truncated(let bytes, let needed): fuzzCheck(bytes == fileBytes && bytes < needed, "\(failure)")
            default: fuzzCheck(false, "a proven superblock refused as \(failure)")
            }
        }
    }

    private func checkLoaded(_ loaded: MetadataLoaded) {
        guard let fileBytes else { return fuzzCheck(false, "a missing file loaded") }
        fuzzCheck(unknownVersion == nil, "a file with a newer format's slot loaded")
        guard let chosen else { return fuzzCheck(false, "a file without a valid slot loaded: never fresh") }
        fuzzCheck(loaded.superblock == chosen, "the superblock loaded is not the valid slot with the higher sequence")
        switch (a, b) {
        case (.success, .failure(let reason)):
            fuzzCheck(loaded.recovered?.slot == 1 && loaded.recovered?.reason == reason, "slot B's damage not reported")
        case (.failure(let reason), .success):
            fuzzCheck(loaded.recovered?.slot == 0 && loaded.recovered?.reason == reason, "slot A's damage not reported")
        default:
            fuzzCheck(loaded.recovered == nil, "a recovery reported with both slots valid")
        }
        let superblock = loaded.superblock
        fuzzCheck(superblock.resourceName == expected.resourceName, "another resource's metadata loaded")
        // A volume grown before `resize` opens at its metadata's size; a smaller one never.
        fuzzCheck(superblock.volumeSizeBytes <= expected.volumeSizeBytes, "metadata of a larger volume loaded")
        if let uuid = expected.resourceUUID, superblock.resourceUUID != 0 {
            fuzzCheck(superblock.resourceUUID == uuid, "metadata of another UUID loaded")
        }
        let needed = superblock.placement == .external ? superblock.geometry.fileBytes : UInt64(2 * MetadataFuzz.slotBytes)
        fuzzCheck(fileBytes >= needed, "a file shorter than its geometry loaded")
    }

    /// A slot of a newer format refuses the file, whatever the other holds.
    private var unknownVersion: UInt32? {
        for case .failure(.unknownVersion(let version)) in [a, b] { return version }
        return nil
    }

    /// The valid slot with the higher sequence (slot A on a tie), nil if neither is valid.
    private var chosen: MetadataSuperblock? {
        switch (a, b) {
        case (.success(let first), .success(let second)): return first.sequence >= second.sequence ? first : second
        case (.success(let only), .failure), (.failure, .success(let only)): return only
        case (.failure, .failure): return nil
        }
    }
}
