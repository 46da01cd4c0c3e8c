// BitmapPageHeader: the 32-byte header of a 4 KiB bitmap page (docs/metadata.md, *Bitmap
// page*) and the page's CRC. The 4064 bytes of bits are opaque here: the bitmap's logic
// (Tracking) owns what they mean, and BitmapAreaCodec joins the two. Pure: no I/O.

public struct BitmapPageHeader: Equatable, Sendable {
    public static let magic: [UInt8] = Array("TNBM".utf8)
    public static let headerBytes = 32
    public static let bitsBytes = 4096 - headerBytes
    static let crcOffset = 4

    /// Position of the page in the bitmap.
    public var pageIndex: UInt32
    /// The superblock's sequence when the page was written.
    public var superblockSequence: UInt64
    /// The first 8 bytes of the resource UUID (`resourceTag(_:)`): a page of another
    /// resource's file is refused even where its CRC and index hold.
    public var resourceTag: UInt64

    public init(pageIndex: UInt32, superblockSequence: UInt64, resourceTag: UInt64) {
        self.pageIndex = pageIndex
        self.superblockSequence = superblockSequence
        self.resourceTag = resourceTag
    }

    /// The tag of `resourceUUID`: its first 8 bytes as the superblock stores them
    /// (little-endian), i.e. its low 64 bits.
    public static func resourceTag(_ resourceUUID: UInt128) -> UInt64 { UInt64(truncatingIfNeeded: resourceUUID) }

    /// The whole sealed page: this header and `bits` (exactly `bitsBytes`).
    public func encodePage(bits: [UInt8]) -> [UInt8] {
        precondition(bits.count == Self.bitsBytes)
        var bytes = [UInt8](repeating: 0, count: MetadataBytes.unitBytes)
        bytes.replaceSubrange(Self.headerBytes..<MetadataBytes.unitBytes, with: bits)
        seal(&bytes)
        return bytes
    }

    /// Writes this header into the first 32 bytes of `page` (4096 bytes whose bits are
    /// already in place) and seals the page's CRC.
    func seal(_ page: inout [UInt8]) {
        precondition(page.count == MetadataBytes.unitBytes)
        for index in 0..<Self.headerBytes { page[index] = 0 }
        for (index, byte) in Self.magic.enumerated() { page[index] = byte }
        MetadataBytes.put(pageIndex, &page, at: 8)
        MetadataBytes.put(superblockSequence, &page, at: 16)
        MetadataBytes.put(resourceTag, &page, at: 24)
        MetadataBytes.seal(&page, crcOffset: Self.crcOffset)
    }

    /// The header and bits of page `expectedIndex`, or why the page is unreadable. Proves
    /// only the unit (magic, CRC, index); BitmapAreaCodec checks the resource and sequence.
    public static func decodePage(_ bytes: [UInt8], expectedIndex: UInt32)
        -> Result<(header: BitmapPageHeader, bits: ArraySlice<UInt8>), MetadataUnitError>
    {
        guard bytes.count >= MetadataBytes.unitBytes else { return .failure(.truncated(bytes: bytes.count)) }
        let page = bytes.count == MetadataBytes.unitBytes ? bytes : Array(bytes[0..<MetadataBytes.unitBytes])
        if page.allSatisfy({ $0 == 0 }) { return .failure(.zeroes) }
        guard Array(page[0..<4]) == magic else { return .failure(.badMagic) }
        guard MetadataBytes.sealed(page, crcOffset: crcOffset) else { return .failure(.checksumMismatch) }
        let index = MetadataBytes.get(UInt32.self, page, at: 8)
        guard index == expectedIndex else {
            return .failure(.invalidField("page index \(index) at the place of page \(expectedIndex)"))
        }
        let header = BitmapPageHeader(pageIndex: index, superblockSequence: MetadataBytes.get(UInt64.self, page, at: 16),
                                      resourceTag: MetadataBytes.get(UInt64.self, page, at: 24))
        return .success((header, page[headerBytes...]))
    }
}
