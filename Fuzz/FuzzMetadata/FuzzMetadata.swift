// FuzzMetadata: the metadata loader of docs/metadata.md under libFuzzer: a superblock slot's
// decoder (MetadataSuperblockCodec), the loading verdict over a whole file's two slots
// (MetadataLoad.decide, as MetadataStore calls it) and the conversion of format 2's
// `<name>.meta` (MetadataConversion). The stream is the file. Invariants, beyond "no trap":
// - a slot decodes only if it is whole, sealed and of format 3; a decoded superblock
//   encodes back to the slot's bytes (every byte but the reserved ones), decodes again to
//   itself, and its geometry (the file size the loader checks) is defined;
// - the verdict agrees with an independent reading of docs/metadata.md's *Loading* table:
//   a file that cannot be proven is never loaded (never "fresh"), the superblock loaded is
//   a decoded slot (the higher sequence), `recovered` names the bad slot, and what was
//   loaded is the expected resource's and fits the file;
// - conversion succeeds exactly when a format-2 slot is valid or the file is the old
//   daemon's two zeroed slots, takes the newest record, and gives a superblock that the
//   daemon can write and load back;
// - every failure's description is bounded (status and the log carry it).
import FuzzSupport
import TandemCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMetadataTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    MetadataFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !TANDEM_LIBFUZZER
@main
enum FuzzMetadataTool {
    static func main() {
        FuzzTool.main(name: "FuzzMetadata", seeds: MetadataSeeds.all, check: MetadataFuzz.check)
    }
}
#endif

enum MetadataFuzz {
    static let slotBytes = MetadataGeometry.slotBytes
    /// Longest failure description a check accepts: two 64-byte names and numbers.
    static let descriptionBytesMax = 400

    static func check(_ bytes: UnsafeRawBufferPointer) {
        let input = FuzzInput(bytes)
        let file = MetadataFixup.apply(input.stream, mode: input.choice(0x6D65_7461, below: 4))
        let slotA = slot(file, 0)
        let slotB = slot(file, 1)
        let decodedA = checkSlot(slotA)
        let decodedB = checkSlot(slotB)
        let fileBytes = Self.fileBytes(file.count, input)
        let expected = expectation(input, decodedA, decodedB)
        let verdict = MetadataLoad.decide(fileBytes: fileBytes, slotA: slotA, slotB: slotB, expected: expected)
        LoadModel(fileBytes: fileBytes, a: decodedA, b: decodedB, expected: expected).check(verdict)
        checkConversion(file, input)
    }

    /// Slot `index`'s bytes as MetadataFileIO reads them: 4096, fewer where the file ends.
    static func slot(_ file: [UInt8], _ index: Int) -> [UInt8] {
        let start = min(file.count, index * slotBytes)
        return Array(file[start..<min(file.count, start + slotBytes)])
    }

    /// The file's size: what was read, a larger file (only the slots are read), or none.
    static func fileBytes(_ count: Int, _ input: FuzzInput) -> UInt64? {
        switch input.choice(0x7369_7A65, below: 8) {
        case 0: return nil
        case 1: return UInt64.max - UInt64(input.choice(0x6D61_78, below: 1 << 16))
        case 2, 3: return UInt64(count) + UInt64(input.choice(0x6578_7472, below: 1 << 30)) * 4096
        default: return UInt64(count)
        }
    }

    /// What the resource expects: mostly what a decoded slot says (so the verdict gets past
    /// identity to geometry), sometimes another resource, size or UUID.
    static func expectation(_ input: FuzzInput, _ a: Result<MetadataSuperblock, MetadataUnitError>,
                            _ b: Result<MetadataSuperblock, MetadataUnitError>) -> MetadataExpectation {
        let decoded = [a, b].compactMap { try? $0.get() }
        let pick = input.choice(0x6578_7065, below: 8)
        guard let found = decoded.isEmpty ? nil : decoded[pick % decoded.count], pick < 6 else {
            return MetadataExpectation(resourceName: "r0", volumeSizeBytes: 1 << 30)
        }
        switch pick {
        case 3: return MetadataExpectation(resourceName: found.resourceName, volumeSizeBytes: found.volumeSizeBytes,
                                           resourceUUID: found.resourceUUID)
        case 4: return MetadataExpectation(resourceName: found.resourceName, volumeSizeBytes: found.volumeSizeBytes,
                                           resourceUUID: UInt128(input.seed))
        case 5: return MetadataExpectation(resourceName: found.resourceName, volumeSizeBytes: found.volumeSizeBytes &+ 4096)
        default: return MetadataExpectation(resourceName: found.resourceName, volumeSizeBytes: found.volumeSizeBytes)
        }
    }

    /// One slot through the codec, with the codec's own promises checked.
    static func checkSlot(_ slot: [UInt8]) -> Result<MetadataSuperblock, MetadataUnitError> {
        let result = MetadataSuperblockCodec.decode(slot)
        switch result {
        case .failure(let error):
            fuzzCheck(error.description.utf8.count <= descriptionBytesMax, "an over-long slot error: \(error)")
            if slot.count < slotBytes { fuzzCheck(error == .truncated(bytes: slot.count), "a short slot is not truncated: \(error)") }
        case .success(let superblock):
            fuzzCheck(slot.count == slotBytes, "a slot of \(slot.count) bytes decoded")
            fuzzCheck(Array(slot[0..<8]) == MetadataSuperblockCodec.magic, "a slot without TNDMMD03 decoded")
            fuzzCheck(MetadataFixup.sealed(slot), "a slot whose CRC32C does not match decoded")
            fuzzCheck(MetadataSuperblockCodec.geometryProblem(superblock) == nil, "a decoded slot has a geometry problem")
            // The loader checks the file against this size, and an internal area would be this large.
            _ = superblock.geometry.fileBytes
            _ = superblock.geometry.internalAreaBytes
            let encoded = MetadataSuperblockCodec.encode(superblock)
            fuzzCheck(MetadataFixup.withoutReserved(encoded) == MetadataFixup.withoutReserved(slot),
                      "a decoded slot does not encode back to its bytes")
            fuzzCheck(MetadataSuperblockCodec.decode(encoded) == .success(superblock), "a re-encoded slot decodes differently")
        }
        return result
    }

    /// Format 2's `.meta` (the same bytes) converted as MetadataStore converts it.
    static func checkConversion(_ file: [UInt8], _ input: FuzzInput) {
        let choice = input.choice(0x636F_6E76, below: 16)
        let meta: [UInt8]? = choice == 0 ? nil : Array(file.prefix(2 * slotBytes))
        let old = MetadataConversion.LegacyState(metaBytes: meta, enabledMarker: choice & 2 != 0, peerFailedMarker: choice & 4 != 0)
        let role: ResourceRole = choice & 8 != 0 ? .primary : .secondary
        let result = MetadataConversion.convert(old, role: role, resourceName: "r0", volumeSizeBytes: 1 << 30,
                                                resourceUUID: UInt128(input.seed))
        let records = meta.map { bytes in [0, 1].compactMap { MetadataConversion.decodeLegacySlot(slot(bytes, $0)) } } ?? []
        let zeroed = meta.map { $0.count == 2 * slotBytes && $0.allSatisfy { $0 == 0 } } ?? false
        switch result {
        case .failure(let failure):
            fuzzCheck(meta != nil && records.isEmpty && !zeroed, "conversion refused a provable .meta: \(failure)")
            fuzzCheck(failure.description.utf8.count <= descriptionBytesMax, "an over-long conversion error")
        case .success(var superblock):
            fuzzCheck(meta == nil || !records.isEmpty || zeroed, "conversion took a .meta with no valid slot as fresh")
            let newest = records.map(\.generation).max()
            fuzzCheck(superblock.record.generation == (newest ?? 0), "conversion did not take the newest record")
            fuzzCheck(records.isEmpty || records.contains(superblock.record), "conversion made up a record")
            fuzzCheck(superblock.enabled == old.enabledMarker && superblock.peerLacksWrites == old.peerFailedMarker,
                      "conversion lost a marker")
            // The daemon writes it as a new file and loads it back.
            superblock.sequence = 1
            fuzzCheck(MetadataSuperblockCodec.geometryProblem(superblock) == nil, "a converted superblock has a geometry problem")
            let slots = MetadataLoad.newFileSlots(superblock)
            let loaded = MetadataLoad.decide(
                fileBytes: slots.superblock.geometry.fileBytes, slotA: slots.slotA, slotB: slots.slotB,
                expected: MetadataExpectation(resourceName: "r0", volumeSizeBytes: 1 << 30))
            guard case .success(let back) = loaded else { return fuzzCheck(false, "a converted file does not load: \(loaded)") }
            fuzzCheck(back.superblock == slots.superblock && back.recovered == nil, "a converted file loads back differently")
        }
    }
}
