// PagesSeeds: the seed corpus, made by the real encoders: activity-log rings of each size,
// empty, partly written, wrapped, with the next slot torn or stale, with a gap or a
// transaction in the wrong slot; and bitmap pages with bits set, of another resource,
// written after the seal, with bits past the volume. Each seed's first 8 bytes are chosen so
// that FuzzInput's choices pick the ring or page geometry the bytes were made for.
import FuzzSupport
import TandemCore

enum PagesSeeds {
    static func all() -> [(name: String, bytes: [UInt8])] { rings() + pages() }

    /// The first seed whose choices are `wanted` (salt → value).
    static func seed(_ wanted: [(salt: UInt64, below: Int, value: Int)]) -> UInt64 {
        var candidate: UInt64 = 1
        while true {
            let input = file(seed: candidate, stream: []).withUnsafeBytes { FuzzInput($0) }
            if wanted.allSatisfy({ input.choice($0.salt, below: $0.below) == $0.value }) { return candidate }
            candidate += 1
        }
    }

    static func file(seed: UInt64, stream: [UInt8]) -> [UInt8] { FuzzInput.file(seed: seed, stream: stream) }

    static func transaction(_ number: UInt64, extents: [UInt32] = [1, 5, 9]) -> [UInt8] {
        ActivityLogTransaction(transaction: number, resourceUUID: PagesFuzz.resourceUUID, extents: extents,
                               bases: [CatchUpBase(session: 7, durableThroughEpoch: number * 3)]).encode()
    }

    static func rings() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(name: String, bytes: [UInt8])] = []
        let zero = [UInt8](repeating: 0, count: PagesFuzz.unitBytes)
        for count in [2, 3, 8] {
            for newest in Set([0, 1, UInt64(count) - 1, UInt64(count) + 2]).sorted() {
                var slots = Array(repeating: zero, count: count)
                if newest > 0 {
                    for number in max(1, Int(newest) - count + 1)...Int(newest) {
                        slots[number % count] = transaction(UInt64(number))
                    }
                }
                let base = seed([(0x6B69_6E64, 2, 0), (0x7269_6E67, 7, count - 2), (0x6578_7465, 5, 2), (0x6669_7875, 4, 0)])
                seeds.append(("ring-\(count)-\(newest)", file(seed: base, stream: slots.flatMap { $0 })))
                guard newest > 1 else { continue }
                var torn = slots
                torn[Int((newest + 1) % UInt64(count))][100] ^= 0xFF
                seeds.append(("ring-\(count)-\(newest)-torn-next", file(seed: base, stream: torn.flatMap { $0 })))
                var gap = slots
                gap[Int((newest - 1) % UInt64(count))] = transaction(newest - 1 + UInt64(count))
                seeds.append(("ring-\(count)-\(newest)-wrong-slot", file(seed: base, stream: gap.flatMap { $0 })))
            }
        }
        let full = seed([(0x6B69_6E64, 2, 0), (0x7269_6E67, 7, 0), (0x6578_7465, 5, 3), (0x6669_7875, 4, 0)])
        seeds.append(("ring-2-many-extents", file(seed: full, stream: transaction(2, extents: Array(0..<1000)) + transaction(1))))
        return seeds
    }

    static func pages() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(name: String, bytes: [UInt8])] = []
        for volume in [0, 2, 5] {
            var superblock = MetadataSuperblock(resourceName: "r0", volumeSizeBytes: UInt64([1, 63, 64, 65, 32_512, 32_513, 100_000][volume]) * 4096 * 4)
            superblock.bitmapBlockBytes = 4096
            guard case .success(var bitmap) = BitmapAreaCodec.emptyBitmap(for: superblock) else { continue }
            _ = bitmap.setBlocks(BlockRun(first: 0, count: min(bitmap.blockCount, 70)))
            let base = seed([(0x6B69_6E64, 2, 1), (0x766F_6C75, 7, volume), (0x626C_6F63, 3, 0), (0x7061_6765, bitmap.pageCount, 0),
                             (0x7365_7175, 10, 5), (0x7365_616C, 3, 0), (0x6669_7875, 4, 0)])
            for (name, uuid, sequence) in [("ok", PagesFuzz.resourceUUID, UInt64(15)), ("other-resource", UInt128(99), 15),
                                           ("after-seal", PagesFuzz.resourceUUID, 16)] {
                var page = [UInt8](repeating: 0, count: PagesFuzz.unitBytes)
                BitmapAreaCodec.encodePage(bitmap, page: 0, resourceUUID: uuid, sequence: sequence, into: &page)
                seeds.append(("page-\(volume)-\(name)", file(seed: base, stream: page)))
            }
            // Bits past the volume, sealed as a real page.
            var beyond = [UInt8](repeating: 0xFF, count: BitmapPageHeader.bitsBytes)
            beyond[0] = 1
            let header = BitmapPageHeader(pageIndex: 0, superblockSequence: 15, resourceTag: BitmapPageHeader.resourceTag(PagesFuzz.resourceUUID))
            seeds.append(("page-\(volume)-beyond", file(seed: base, stream: header.encodePage(bits: beyond))))
        }
        return seeds
    }
}
