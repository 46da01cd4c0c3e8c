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
}
