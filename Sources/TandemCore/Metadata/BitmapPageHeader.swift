// BitmapPageHeader: the 32-byte header of a 4 KiB bitmap page (docs/metadata.md, *Bitmap
// page*) and the page's CRC. The 4064 bytes of bits are opaque here: the bitmap's logic
// (Tracking) owns what they mean. Pure: no I/O.

public struct BitmapPageHeader: Equatable, Sendable {
    public static let magic: [UInt8] = Array("TNBM".utf8)
    public static let headerBytes = 32
    public static let bitsBytes = 4096 - headerBytes
    static let crcOffset = 4

    /// Position of the page in the bitmap.
    public var pageIndex: UInt32
    /// The superblock's sequence when the page was written.
    public var superblockSequence: UInt64

    public init(pageIndex: UInt32, superblockSequence: UInt64) {
        self.pageIndex = pageIndex
        self.superblockSequence = superblockSequence
    }

    /// The whole sealed page: this header and `bits` (exactly `bitsBytes`).
    public func encodePage(bits: [UInt8]) -> [UInt8] {
        precondition(bits.count == Self.bitsBytes)
        var bytes = [UInt8](repeating: 0, count: MetadataBytes.unitBytes)
        for (index, byte) in Self.magic.enumerated() { bytes[index] = byte }
        MetadataBytes.put(pageIndex, &bytes, at: 8)
        MetadataBytes.put(superblockSequence, &bytes, at: 16)
        bytes.replaceSubrange(Self.headerBytes..<MetadataBytes.unitBytes, with: bits)
        MetadataBytes.seal(&bytes, crcOffset: Self.crcOffset)
        return bytes
    }

    /// The header and bits of page `expectedIndex`, or why the page is unreadable (the
    /// caller then treats every bit of it as set).
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
        let header = BitmapPageHeader(pageIndex: index, superblockSequence: MetadataBytes.get(UInt64.self, page, at: 16))
        return .success((header, page[headerBytes...]))
    }
}
