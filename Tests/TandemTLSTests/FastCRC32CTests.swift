import TandemCore
import Testing
@testable import TandemIO

/// The hardware CRC32C must give exactly TandemCore's values, or a peer with the other
/// implementation would refuse every block.
struct FastCRC32CTests {
    @Test func hardwareAndTableDrivenChecksumsAgreeOnEveryLengthAndAlignment() {
        #if arch(x86_64)
        #expect(FastCRC32C.usesHardware, "every x86-64 CPU this runs on has SSE4.2")
        #endif
        #expect(Array("123456789".utf8).withUnsafeBytes { FastCRC32C.checksum($0) } == 0xE306_9283)
        var random = SplitMix64(seed: 42)
        let bytes = (0..<70_000).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        bytes.withUnsafeBytes { all in
            for _ in 0..<300 {
                let start = Int(random.next() % 64)
                let count = Int(random.next() % UInt64(all.count - start))
                let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + count)])
                let seed = UInt32(truncatingIfNeeded: random.next())
                #expect(FastCRC32C.checksum(slice, seed: seed) == CRC32C.checksum(slice, seed: seed))
            }
        }
    }

    /// The fused copy copies every byte and checksums the bytes it copied, across piece
    /// boundaries and at odd alignments.
    @Test func fusedCopyChecksumMatchesACopyThenAChecksum() {
        var random = SplitMix64(seed: 11)
        let bytes = (0..<(3 * FastCRC32C.fusedPieceBytes + 100)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let piece = FastCRC32C.fusedPieceBytes
        for length in [0, 1, 9, piece - 1, piece, piece + 1, 2 * piece + 77, 3 * piece + 99] {
            for start in [0, 1] {
                var copy = [UInt8](repeating: 0xEE, count: length)
                let crc = bytes.withUnsafeBytes { all in
                    copy.withUnsafeMutableBytes { target in
                        FastCRC32C.copyChecksum(from: UnsafeRawBufferPointer(rebasing: all[start..<(start + length)]),
                                                into: target, seed: 5)
                    }
                }
                #expect(copy == Array(bytes[start..<(start + length)]), "length \(length) at offset \(start)")
                #expect(crc == CRC32C.checksum(bytes[start..<(start + length)], seed: 5), "length \(length)")
            }
        }
    }

    /// Every path of the three-stream code: just below, at and above each block size, and
    /// several long blocks in a row, at odd alignments.
    @Test func threeStreamBoundariesAgree() {
        var random = SplitMix64(seed: 7)
        let bytes = (0..<(4 * 3 * 8192 + 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let lengths = [0, 1, 7, 8, 767, 768, 769, 775, 1536, 24_575, 24_576, 24_577, 24_576 + 768, 49_152, 98_304 + 5]
        bytes.withUnsafeBytes { all in
            for length in lengths {
                for start in [0, 1, 3, 8] {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                    #expect(FastCRC32C.checksum(slice, seed: 0) == CRC32C.checksum(slice, seed: 0),
                            "length \(length) at offset \(start)")
                }
            }
        }
    }
}
