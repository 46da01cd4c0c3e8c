import TandemCore
import Testing
@testable import TandemIO

/// The fused copy and checksum (the agreement of the CPU's instruction with the table-driven
/// code is TandemCoreTests' CRC32CHardwareTests).
struct FastCRC32CTests {
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
}
