// LZ4 block compression over liblz4, into caller-provided buffers: no allocation, and a
// malformed block from a peer yields an error, never a write past a buffer.
import CLZ4

public enum LZ4Error: Error, Equatable, Sendable, CustomStringConvertible {
    /// The block is malformed or does not decompress to exactly the expected length.
    case malformedBlock(expectedBytes: Int, result: Int)
    case tooLarge(bytes: Int)

    public var description: String {
        switch self {
        case .malformedBlock(let expected, let result):
            return "LZ4 block does not decompress to \(expected) bytes (liblz4 returned \(result))"
        case .tooLarge(let bytes):
            return "LZ4 input of \(bytes) bytes exceeds LZ4_MAX_INPUT_SIZE"
        }
    }
}

public enum LZ4 {
    /// The most output bytes one input byte of a valid block yields: a match-length byte
    /// adds at most 255, a token with its offset at most 19 for 3 bytes, a literal 1.
    public static let expansionMax = 255

    /// The largest block `compressedBytes` of a valid LZ4 block can decompress to; a
    /// receiver sizes nothing on a peer's claim beyond it.
    public static func decompressedBytesMax(compressedBytes: Int) -> Int {
        precondition(compressedBytes >= 0)
        return compressedBytes.multipliedReportingOverflow(by: expansionMax).overflow
            ? Int.max : compressedBytes * expansionMax
    }

    /// Worst-case compressed size of `count` input bytes.
    public static func compressBound(_ count: Int) -> Int {
        precondition(count >= 0 && count <= Int(LZ4_MAX_INPUT_SIZE), "LZ4 input too large")
        return Int(LZ4_compressBound(Int32(count)))
    }

    /// Compresses `source` into `destination`; nil when the result does not fit, which is how
    /// `compressIfItPays` stops early on incompressible data.
    public static func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer)
        -> Int?
    {
        guard !source.isEmpty, source.count <= Int(LZ4_MAX_INPUT_SIZE), !destination.isEmpty else { return nil }
        let capacity = Int32(clamping: destination.count)
        let written = LZ4_compress_default(
            source.baseAddress!.assumingMemoryBound(to: CChar.self),
            destination.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(source.count), capacity)
        return written > 0 ? Int(written) : nil
    }

    /// Compresses only if the result is at least `minimumSavingsBytes` smaller than the input;
    /// returns the compressed length, or nil to send the block as it is. `destination` needs no
    /// more than `source.count` bytes.
    public static func compressIfItPays(
        _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer,
        minimumSavingsBytes: Int = 64
    ) -> Int? {
        let limit = min(destination.count, source.count - max(1, minimumSavingsBytes))
        guard limit > 0 else { return nil }
        return compress(source, into: UnsafeMutableRawBufferPointer(rebasing: destination[0..<limit]))
    }

    /// Decompresses a block that must expand to exactly `destination.count` bytes.
    public static func decompress(
        _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) throws(LZ4Error) {
        guard source.count <= Int(LZ4_MAX_INPUT_SIZE), destination.count <= Int(LZ4_MAX_INPUT_SIZE) else {
            throw .tooLarge(bytes: max(source.count, destination.count))
        }
        guard !source.isEmpty, !destination.isEmpty else {
            throw .malformedBlock(expectedBytes: destination.count, result: -1)
        }
        let result = LZ4_decompress_safe(
            source.baseAddress!.assumingMemoryBound(to: CChar.self),
            destination.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(source.count),
            Int32(destination.count))
        guard Int(result) == destination.count else {
            throw .malformedBlock(expectedBytes: destination.count, result: Int(result))
        }
    }
}
