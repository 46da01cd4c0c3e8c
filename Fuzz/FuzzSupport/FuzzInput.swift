// FuzzSupport: what the fuzz targets share. FuzzInput turns one libFuzzer input into a seed
// for the chunk plan and the byte stream a decoder sees, so that one input exercises both
// "everything at once" and "the same bytes in random pieces" (the way a socket delivers them).
// FuzzTool is the plain-build entry point: it writes the seed corpus and replays inputs.
import TandemCore

/// One fuzz input: the first 8 bytes seed the chunk plan, the rest is the stream.
public struct FuzzInput {
    public static let seedBytes = 8
    /// Largest piece the chunk plan cuts; larger reads behave like "everything at once".
    public static let chunkBytesMax = 4096

    public let seed: UInt64
    /// The bytes the decoder sees; a target may rewrite them (e.g. to fix checksums).
    public var stream: [UInt8]

    public init(_ bytes: UnsafeRawBufferPointer) {
        let seedCount = min(bytes.count, Self.seedBytes)
        var seed: UInt64 = 0
        for index in 0..<seedCount { seed |= UInt64(bytes[index]) << (8 * UInt64(index)) }
        self.seed = seed
        self.stream = Array(bytes[seedCount...])
    }

    /// A seed file's bytes: the chunk-plan seed, then the stream.
    public static func file(seed: UInt64, stream: [UInt8]) -> [UInt8] {
        (0..<seedBytes).map { UInt8(truncatingIfNeeded: seed >> (8 * UInt64($0))) } + stream
    }

    /// The stream cut into consecutive non-empty pieces that cover it exactly. Sizes mix
    /// single bytes, small pieces and whole reads, so every boundary inside a header and a
    /// body gets tried.
    public func chunks() -> [Range<Int>] {
        var random = SplitMix64(seed: seed)
        var ranges: [Range<Int>] = []
        var start = 0
        while start < stream.count {
            let draw = random.next()
            let limit = [1, 8, 64, Self.chunkBytesMax][Int(draw & 3)]
            let size = 1 + Int((draw >> 8) % UInt64(limit))
            let end = min(stream.count, start + size)
            ranges.append(start..<end)
            start = end
        }
        return ranges
    }

    /// A second, independent draw from the same seed (for choices other than the chunk plan).
    public func choice(_ salt: UInt64, below bound: Int) -> Int {
        precondition(bound > 0)
        var random = SplitMix64(seed: seed ^ salt)
        return Int(random.next() % UInt64(bound))
    }
}

/// A broken invariant: stops the run with the message, which libFuzzer then reports as a
/// crash with the input that caused it. `fatalError` prints its message in release builds.
public func fuzzCheck(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() { fatalError("fuzz invariant broken: \(message())", file: file, line: line) }
}
