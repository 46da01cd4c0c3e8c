// BitmapCodingError: every way bitmap bytes from the metadata file or the peer can be wrong.
// Decoding checks everything before it changes a bit, so a bad page or chunk changes nothing.

public enum BitmapCodingError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongPageLength(page: Int, bytes: Int, expected: Int)
    case bitsBeyondVolume(page: Int)
    case chunkOutsideBitmap(firstBlock: UInt64, blockCount: UInt64, bitmapBlocks: UInt64)
    case runsNotWholeWords(bytes: Int)
    case emptyRun(index: Int)
    case runsTotal(expected: UInt64, found: UInt64)

    public var description: String {
        switch self {
        case .wrongPageLength(let page, let bytes, let expected):
            return "bitmap page \(page): \(bytes) bytes of bits, expected \(expected)"
        case .bitsBeyondVolume(let page):
            return "bitmap page \(page) has bits set past the end of the volume"
        case .chunkOutsideBitmap(let first, let count, let blocks):
            return "bitmap chunk of blocks \(first)+\(count) outside the bitmap's \(blocks) blocks"
        case .runsNotWholeWords(let bytes):
            return "bitmap chunk runs of \(bytes) bytes are not whole u32 runs"
        case .emptyRun(let index):
            return "bitmap chunk run \(index) is empty (only the first, clear run may be)"
        case .runsTotal(let expected, let found):
            return "bitmap chunk runs cover \(found) blocks, the chunk says \(expected)"
        }
    }
}
