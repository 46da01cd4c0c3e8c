// FuzzPages: the metadata file's 4 KiB units after the superblock under libFuzzer: the
// activity-log ring (ActivityLogTransaction's decoder, ActivityLogRing's proof at open) and
// the bitmap pages (BitmapPageHeader's decoder, BitmapAreaCodec's proof and load). The stream
// is the units, 4096 bytes each. Invariants, beyond "no trap":
// - a transaction decodes only from a whole sealed TNAL slot of this resource, with at most
//   the superblock's AL extents max, ascending; it encodes and decodes back to itself;
// - the ring's verdict agrees with an independent reading of docs/metadata.md's ring rule
//   (RingModel): it proves its newest transaction exactly when every slot but the next
//   transaction's holds newest, newest − 1, ... (zeroes before transaction 1); an unproven
//   ring is never taken for an empty one;
// - a bitmap page decodes only from a whole sealed TNBM page of the expected index, and its
//   header and bits encode back to the same page; loading it into a bitmap of the
//   superblock's geometry succeeds exactly when the page is of this resource, not written
//   after the seal, and sets no bit past the volume, and then sets exactly its bits; on a
//   problem the bitmap is left as it was;
// - every failure's description is bounded (status and the log carry it).
import FuzzSupport
import TandemCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPagesTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    PagesFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !TANDEM_LIBFUZZER
@main
enum FuzzPagesTool {
    static func main() {
        FuzzTool.main(name: "FuzzPages", seeds: PagesSeeds.all, check: PagesFuzz.check)
    }
}
#endif

enum PagesFuzz {
    /// An AL slot and a bitmap page are 4 KiB units (docs/metadata.md).
    static let unitBytes = 4096
    static let descriptionBytesMax = 400
    static let resourceUUID: UInt128 = 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210

    static func check(_ bytes: UnsafeRawBufferPointer) {
        let input = FuzzInput(bytes)
        if input.choice(0x6B69_6E64, below: 2) == 0 {
            checkRing(input)
        } else {
            checkBitmapPage(input)
        }
    }

    /// The stream's units, each sealed or given its magic first where the input says so (so
    /// the fuzzer reaches the field decoders; mode 0 leaves the bytes alone). A unit cut
    /// short by the stream's end is passed on short.
    /// Mode 3 also writes this resource's identity (`identityOffset`: the AL slot's UUID, the
    /// bitmap page's tag), without which a unit of random bytes is always another resource's.
    static func units(_ input: FuzzInput, magic: [UInt8], identity: [UInt8], identityOffset: Int, count: Int) -> [[UInt8]] {
        let mode = input.choice(0x6669_7875, below: 4)
        return (0..<count).map { index in
            let start = min(input.stream.count, index * unitBytes)
            var unit = Array(input.stream[start..<min(input.stream.count, start + unitBytes)])
            if unit.isEmpty { return [UInt8](repeating: 0, count: unitBytes) }
            guard unit.count == unitBytes, mode != 0, unit.contains(where: { $0 != 0 }) else { return unit }
            if mode >= 2 { unit.replaceSubrange(0..<4, with: magic) }
            if mode == 3 { unit.replaceSubrange(identityOffset..<(identityOffset + identity.count), with: identity) }
            PagesFixup.seal(&unit)
            return unit
        }
    }

    // MARK: Activity-log ring

    static func checkRing(_ input: FuzzInput) {
        let slotCount = 2 + input.choice(0x7269_6E67, below: 7)
        let extentsMax = UInt32([1, 8, 61, 1000, 5000][input.choice(0x6578_7465, below: 5)])
        let uuid = (0..<16).map { UInt8(truncatingIfNeeded: resourceUUID >> (8 * UInt128($0))) }
        let slots = units(input, magic: ActivityLogTransaction.magic, identity: uuid, identityOffset: 16, count: slotCount)
        let decoded = slots.map { checkTransaction($0, extentsMax: extentsMax) }
        let verdict = ActivityLogRing.newest(slots, resourceUUID: resourceUUID, extentsMax: extentsMax)
        RingModel(decoded: decoded).check(verdict)
        // Recovery's older pick agrees with a proven ring's newest.
        if case .success(let newest?) = verdict {
            let pick = ActivityLogTransaction.newest(slots, resourceUUID: resourceUUID, extentsMax: extentsMax)
            fuzzCheck(pick == newest, "the ring proves \(newest.transaction), recovery picks \(pick.map { "\($0.transaction)" } ?? "none")")
        }
    }

    static func checkTransaction(_ slot: [UInt8], extentsMax: UInt32) -> Result<ActivityLogTransaction, MetadataUnitError> {
        let result = ActivityLogTransaction.decode(slot, resourceUUID: resourceUUID, extentsMax: extentsMax)
        switch result {
        case .failure(let error):
            fuzzCheck(error.description.utf8.count <= descriptionBytesMax, "an over-long slot error: \(error)")
            if slot.count < unitBytes { fuzzCheck(error == .truncated(bytes: slot.count), "a short slot is not truncated: \(error)") }
            if slot.count >= unitBytes && slot.prefix(unitBytes).allSatisfy({ $0 == 0 }) {
                fuzzCheck(error == .zeroes, "a zeroed slot is not zeroes: \(error)")
            }
        case .success(let transaction):
            fuzzCheck(slot.count >= unitBytes, "a slot of \(slot.count) bytes decoded")
            fuzzCheck(Array(slot[0..<4]) == ActivityLogTransaction.magic, "a slot without TNAL decoded")
            fuzzCheck(PagesFixup.sealed(slot), "a slot whose CRC32C does not match decoded")
            fuzzCheck(transaction.resourceUUID == resourceUUID, "another resource's transaction decoded")
            fuzzCheck(transaction.extents.count <= Int(min(extentsMax, ActivityLogTransaction.extentsMax)),
                      "\(transaction.extents.count) extents decoded, more than \(extentsMax)")
            fuzzCheck(zip(transaction.extents, transaction.extents.dropFirst()).allSatisfy { $0 < $1 }, "extents not ascending")
            fuzzCheck(transaction.bases.count <= CatchUpBase.countMax, "\(transaction.bases.count) bases")
            let encoded = transaction.encode()
            fuzzCheck(encoded.count == unitBytes, "a transaction encodes to \(encoded.count) bytes")
            let back = ActivityLogTransaction.decode(encoded, resourceUUID: resourceUUID, extentsMax: extentsMax)
            fuzzCheck(back == .success(transaction), "a re-encoded transaction decodes differently: \(back)")
        }
        return result
    }

    // MARK: Bitmap pages

    static func checkBitmapPage(_ input: FuzzInput) {
        var superblock = MetadataSuperblock(resourceName: "r0", volumeSizeBytes: volumeSize(input))
        superblock.resourceUUID = resourceUUID
        superblock.bitmapBlockBytes = UInt32(4096 << input.choice(0x626C_6F63, below: 3))
        superblock.sequence = 10 + UInt64(input.choice(0x7365_7175, below: 10))
        superblock.bitmapSealedSequence = superblock.sequence - UInt64(input.choice(0x7365_616C, below: 3))
        guard case .success(let empty) = BitmapAreaCodec.emptyBitmap(for: superblock) else {
            return fuzzCheck(false, "no bitmap for a volume of \(superblock.volumeSizeBytes) bytes")
        }
        let page = input.choice(0x7061_6765, below: empty.pageCount)
        let tag = BitmapPageHeader.resourceTag(resourceUUID)
        let bytes = units(input, magic: BitmapPageHeader.magic, identity: (0..<8).map { UInt8(truncatingIfNeeded: tag >> (8 * UInt64($0))) },
                          identityOffset: 24, count: 1)[0]
        let unit = BitmapPageHeader.decodePage(bytes, expectedIndex: UInt32(page))
        checkPageUnit(bytes, page: page, unit)
        var bitmap = empty
        _ = bitmap.setRange(offsetBytes: 0, lengthBytes: UInt64(superblock.bitmapBlockBytes))  // a bit the page replaces
        let before = bitmap
        let problem = BitmapAreaCodec.loadPage(bytes, page: page, superblock: superblock, into: &bitmap)
        PageModel(unit: unit, superblock: superblock, page: page).check(problem, before: before, after: bitmap)
    }

    /// Volumes of one block to a few pages of bits (a page holds 32 512 bits).
    static func volumeSize(_ input: FuzzInput) -> UInt64 {
        let blocks = [1, 63, 64, 65, 32_512, 32_513, 100_000][input.choice(0x766F_6C75, below: 7)]
        return UInt64(blocks) * 4096 * 4
    }

    static func checkPageUnit(_ bytes: [UInt8], page: Int,
                              _ unit: Result<(header: BitmapPageHeader, bits: ArraySlice<UInt8>), MetadataUnitError>) {
        switch unit {
        case .failure(let error):
            fuzzCheck(error.description.utf8.count <= descriptionBytesMax, "an over-long page error: \(error)")
            if bytes.count < unitBytes { fuzzCheck(error == .truncated(bytes: bytes.count), "a short page is not truncated") }
        case .success(let (header, bits)):
            fuzzCheck(bytes.count >= unitBytes && Array(bytes[0..<4]) == BitmapPageHeader.magic, "a page without TNBM decoded")
            fuzzCheck(PagesFixup.sealed(bytes), "a page whose CRC32C does not match decoded")
            fuzzCheck(header.pageIndex == UInt32(page), "page \(header.pageIndex) decoded at the place of \(page)")
            fuzzCheck(bits.count == BitmapPageHeader.bitsBytes, "\(bits.count) bit bytes")
            let encoded = header.encodePage(bits: Array(bits))
            let back = BitmapPageHeader.decodePage(encoded, expectedIndex: UInt32(page))
            guard case .success(let again) = back else { return fuzzCheck(false, "a re-encoded page does not decode") }
            fuzzCheck(again.header == header && again.bits == bits, "a re-encoded page decodes differently")
            fuzzCheck(PagesFixup.withoutReserved(encoded) == PagesFixup.withoutReserved(Array(bytes.prefix(unitBytes))),
                      "a decoded page does not encode back to its bytes")
        }
    }
}
