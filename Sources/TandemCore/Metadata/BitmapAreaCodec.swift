// BitmapAreaCodec: a DirtyBitmap as the metadata file's bitmap area holds it
// (docs/metadata.md, *Bitmap page* and *Bitmap validity*): each page sealed with its index,
// the superblock sequence it was written under and the resource's tag; and the proof of a
// stored page before its bits are believed (unit, resource, sequence, bits inside the
// volume). A page that cannot be proven is a reason, never a clear page. Pure: the daemon
// reads and writes the bytes.

/// Why one stored bitmap page cannot be believed.
public enum BitmapPageProblem: Error, Equatable, Sendable, CustomStringConvertible {
    /// Truncated, zeroes, bad magic, checksum mismatch (torn or corrupted), wrong index.
    case unit(MetadataUnitError)
    case otherResource(foundTag: UInt64, expectedTag: UInt64)
    /// Written after the superblock that seals the bitmap: not part of the sealed bitmap.
    case writtenAfterSeal(pageSequence: UInt64, sealedSequence: UInt64)
    case bits(BitmapCodingError)

    public var description: String {
        switch self {
        case .unit(let error): return "\(error)"
        case .otherResource(let found, let expected):
            let tags = "tag \(String(found, radix: 16)), this resource's is \(String(expected, radix: 16))"
            return "page of another resource (\(tags))"
        case .writtenAfterSeal(let page, let sealed):
            return "page written at superblock sequence \(page), after the bitmap was sealed at \(sealed)"
        case .bits(let error): return "\(error)"
        }
    }
}

/// Why a superblock's geometry cannot hold a DirtyBitmap.
public struct BitmapGeometryError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

public enum BitmapAreaCodec {
    /// An all-clear bitmap of the superblock's geometry, or why the geometry cannot hold one
    /// (more blocks than a page index and a wire run can name, or a page count the layout
    /// disagrees with). Checked before allocating, so a bad superblock cannot stop the daemon.
    public static func emptyBitmap(for superblock: MetadataSuperblock) -> Result<DirtyBitmap, BitmapGeometryError> {
        let geometry = superblock.geometry
        let blockBytes = UInt64(superblock.bitmapBlockBytes)
        guard DirtyBitmap.isValidBlockBytes(blockBytes), superblock.volumeSizeBytes > 0 else {
            return .failure(BitmapGeometryError(
                "bitmap block bytes \(blockBytes) over a volume of \(superblock.volumeSizeBytes) bytes"))
        }
        guard geometry.bitmapBits <= DirtyBitmap.blockCountMax else {
            return .failure(BitmapGeometryError("\(geometry.bitmapBits) bitmap blocks exceed \(DirtyBitmap.blockCountMax)"))
        }
        let bitmap = DirtyBitmap(volumeSizeBytes: superblock.volumeSizeBytes, blockBytes: blockBytes)
        guard UInt64(bitmap.pageCount) == geometry.bitmapPages else {
            return .failure(BitmapGeometryError("\(bitmap.pageCount) bitmap pages, the layout has \(geometry.bitmapPages)"))
        }
        return .success(bitmap)
    }

    /// Whether `bitmap` has the superblock's geometry (it may be written to that file).
    public static func fits(_ bitmap: DirtyBitmap, _ superblock: MetadataSuperblock) -> Bool {
        bitmap.volumeSizeBytes == superblock.volumeSizeBytes && bitmap.blockBytes == UInt64(superblock.bitmapBlockBytes)
            && UInt64(bitmap.pageCount) == superblock.geometry.bitmapPages
    }

    /// Page `page` of `bitmap`, sealed, in `bytes` (4096 bytes, reused by the caller).
    /// `alsoSet`: blocks written as set whatever the bitmap says (the activity log's page
    /// writes: regions the copy cleared but the peer has not confirmed yet).
    public static func encodePage(_ bitmap: DirtyBitmap, page: Int, resourceUUID: UInt128, sequence: UInt64,
                                  alsoSet: [BlockRun] = [], into bytes: inout [UInt8]) {
        precondition(bytes.count == MetadataBytes.unitBytes, "a bitmap page is 4096 bytes")
        bitmap.encodePageBits(page, into: &bytes, at: BitmapPageHeader.headerBytes)
        let pageFirst = UInt64(page) * DirtyBitmap.bitsPerPage
        let pageEnd = min(pageFirst + DirtyBitmap.bitsPerPage, bitmap.blockCount)
        for run in alsoSet {
            var block = max(run.first, pageFirst)
            while block < min(run.end, pageEnd) {
                let bit = Int(block - pageFirst)
                bytes[BitmapPageHeader.headerBytes + bit / 8] |= UInt8(1) << UInt8(bit % 8)
                block += 1
            }
        }
        BitmapPageHeader(pageIndex: UInt32(page), superblockSequence: sequence,
                         resourceTag: BitmapPageHeader.resourceTag(resourceUUID)).seal(&bytes)
    }

    /// Proves stored page `page` against the superblock that seals the bitmap and loads its
    /// bits into `bitmap` (the page then counts as persisted). On a problem nothing changes.
    /// `sealed` false: the pages the activity log persisted while the area is not sealed (a
    /// crash restart whose transaction says they count); the seal's sequence is not checked.
    public static func loadPage(_ bytes: [UInt8], page: Int, superblock: MetadataSuperblock, sealed: Bool = true,
                                into bitmap: inout DirtyBitmap) -> BitmapPageProblem? {
        precondition(!sealed || superblock.bitmapSealed, "loading pages of a bitmap that is not sealed")
        let decoded: (header: BitmapPageHeader, bits: ArraySlice<UInt8>)
        switch BitmapPageHeader.decodePage(bytes, expectedIndex: UInt32(page)) {
        case .failure(let error): return .unit(error)
        case .success(let value): decoded = value
        }
        let expectedTag = BitmapPageHeader.resourceTag(superblock.resourceUUID)
        guard decoded.header.resourceTag == expectedTag else {
            return .otherResource(foundTag: decoded.header.resourceTag, expectedTag: expectedTag)
        }
        guard !sealed || decoded.header.superblockSequence <= superblock.bitmapSealedSequence else {
            return .writtenAfterSeal(pageSequence: decoded.header.superblockSequence,
                                     sealedSequence: superblock.bitmapSealedSequence)
        }
        do throws(BitmapCodingError) {
            try bitmap.loadPageBits(page, from: decoded.bits)
        } catch {
            return .bits(error)
        }
        return nil
    }
}
