// PagesModel: docs/metadata.md's rules for the activity-log ring and a bitmap page, written
// out independently of TandemCore's ActivityLogRing and BitmapAreaCodec, for the fuzzer to
// compare their verdicts with. Also the units' CRC rule (PagesFixup).
import FuzzSupport
import TandemCore

/// The ring rule over each slot's decode: transaction t belongs in slot t % count; the
/// newest valid transaction n is proven when each of the count − 1 slots before slot
/// (n + 1) % count holds n, n − 1, ... and, where that number is below 1, zeroes.
struct RingModel {
    var decoded: [Result<ActivityLogTransaction, MetadataUnitError>]

    func check(_ verdict: Result<ActivityLogTransaction?, ActivityLogRing.ProofError>) {
        let count = decoded.count
        let valid = decoded.compactMap { try? $0.get() }
        if case .failure(let error) = verdict {
            fuzzCheck(error.slot >= 0 && error.slot < count, "a proof error names slot \(error.slot) of \(count)")
            fuzzCheck(error.description.utf8.count <= PagesFuzz.descriptionBytesMax, "an over-long ring error: \(error)")
        }
        // Transactions are numbered from 1: a ring of sealed slots numbered 0 proves nothing.
        guard let newest = valid.map(\.transaction).max(), newest > 0 else {
            let allZero = decoded.allSatisfy { $0 == .failure(.zeroes) }
            switch verdict {
            case .success(let found): fuzzCheck(found == nil && allZero, "a ring with no valid transaction proves \(String(describing: found))")
            case .failure: fuzzCheck(!allZero, "a zeroed ring is refused")
            }
            return
        }
        // Transaction numbers are 64-bit: newest − back, below 1 where back ≥ newest, whose
        // slot is then count − (back − newest) mod count. The K − 1 slots on either side of the
        // newest (transactions that may have been in flight with it) are not judged.
        let window = UInt64(ActivityLogRing.transactionsInFlightMax - 1)
        let judged = (0..<UInt64(count)).filter { back in
            back == 0 || (back > window && back + window < UInt64(count))
        }
        let proven = judged.allSatisfy { back in
            guard newest > back else {
                let slot = Int((UInt64(count) - (back - newest) % UInt64(count)) % UInt64(count))
                return decoded[slot] == .failure(.zeroes)
            }
            let expected = newest - back
            guard case .success(let held) = decoded[Int(expected % UInt64(count))] else { return false }
            return held.transaction == expected
        }
        switch verdict {
        case .success(let found):
            fuzzCheck(proven, "the ring proves \(String(describing: found?.transaction)) although the rule does not")
            fuzzCheck(found?.transaction == newest, "the ring proves \(String(describing: found?.transaction)), not the newest \(newest)")
            if let found { fuzzCheck(decoded[Int(newest % UInt64(count))] == .success(found), "the proven transaction is not its slot's") }
        case .failure(let error):
            fuzzCheck(!proven, "a ring that proves transaction \(newest) by the rule is refused: \(error)")
        }
    }
}

/// A stored page's proof (docs/metadata.md, *Bitmap validity*): a decodable unit of this
/// resource, written no later than the seal, with no bit past the volume.
struct PageModel {
    var unit: Result<(header: BitmapPageHeader, bits: ArraySlice<UInt8>), MetadataUnitError>
    var superblock: MetadataSuperblock
    var page: Int

    func check(_ problem: BitmapPageProblem?, before: DirtyBitmap, after: DirtyBitmap) {
        let firstBlock = UInt64(page) * DirtyBitmap.bitsPerPage
        let pageBlocks = BlockRun(first: firstBlock, count: min(DirtyBitmap.bitsPerPage, before.blockCount - firstBlock))
        if let problem {
            fuzzCheck(problem.description.utf8.count <= PagesFuzz.descriptionBytesMax, "an over-long page problem: \(problem)")
            fuzzCheck(Self.sameBits(before, after, pageBlocks), "a refused page changed the bitmap: \(problem)")
        }
        guard case .success(let (header, bits)) = unit else {
            return fuzzCheck(problem != nil, "an undecodable page loaded")
        }
        let tagMatches = header.resourceTag == BitmapPageHeader.resourceTag(superblock.resourceUUID)
        let inSeal = header.superblockSequence <= superblock.bitmapSealedSequence
        let beyond = (Int(pageBlocks.count)..<(bits.count * 8)).contains { bit in
            bits[bits.startIndex + bit / 8] & (1 << UInt8(bit % 8)) != 0
        }
        let loads = tagMatches && inSeal && !beyond
        fuzzCheck(loads == (problem == nil), "page load \(problem.map { "refused: \($0)" } ?? "accepted"), the rule says \(loads ? "load" : "refuse")")
        guard problem == nil else { return }
        for bit in 0..<Int(pageBlocks.count) {
            let stored = bits[bits.startIndex + bit / 8] & (1 << UInt8(bit % 8)) != 0
            fuzzCheck(after.isSet(block: firstBlock + UInt64(bit)) == stored, "block \(firstBlock + UInt64(bit)) loaded wrong")
        }
    }

    /// The same blocks set: the same count in all, and block by block on the page that was
    /// loaded (the only one a load touches).
    static func sameBits(_ a: DirtyBitmap, _ b: DirtyBitmap, _ page: BlockRun) -> Bool {
        a.blockCount == b.blockCount && a.outOfSyncBytes == b.outOfSyncBytes
            && (page.first..<page.end).allSatisfy { a.isSet(block: $0) == b.isSet(block: $0) }
    }
}

/// The 4 KiB units' CRC rule (docs/metadata.md: CRC32C of the unit with bytes 4..<8, where
/// it is stored, taken as zero) and their reserved bytes.
enum PagesFixup {
    static let crcOffset = 4

    static func checksum(_ unit: ArraySlice<UInt8>) -> UInt32 {
        var zeroed = Array(unit.prefix(4096))
        for index in crcOffset..<(crcOffset + 4) { zeroed[index] = 0 }
        return CRC32C.checksum(zeroed)
    }

    static func seal(_ unit: inout [UInt8]) {
        let crc = checksum(unit[...])
        for index in 0..<4 { unit[crcOffset + index] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(index))) }
    }

    static func sealed(_ unit: [UInt8]) -> Bool {
        let stored = (0..<4).reduce(UInt32(0)) { $0 | UInt32(unit[crcOffset + $1]) << (8 * UInt32($1)) }
        return stored == checksum(unit[...])
    }

    /// A bitmap page with its CRC and its reserved header bytes (12..<16) zeroed.
    static func withoutReserved(_ page: [UInt8]) -> [UInt8] {
        var bytes = page
        for index in [4, 5, 6, 7, 12, 13, 14, 15] { bytes[index] = 0 }
        return bytes
    }
}
