import TandemCore
import Testing

/// The CPU's CRC32C instruction must give exactly the table-driven code's values: a peer on a
/// CPU without SSE4.2 would otherwise refuse every block, and a journal, bitmap or metadata
/// file written by the other implementation would not load.
struct CRC32CHardwareTests {
    @Test func hardwareAndTableDrivenChecksumsAgreeOnEveryLengthAndAlignment() {
        #if arch(x86_64)
        #expect(CRC32C.usesHardware, "every x86-64 CPU this runs on has SSE4.2")
        #endif
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32C.tableChecksum($0) } == 0xE306_9283)
        var random = SplitMix64(seed: 42)
        let bytes = (0..<(1 << 20) + 200).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        bytes.withUnsafeBytes { all in
            for round in 0..<300 {
                let start = Int(random.next() % 64)
                // Mostly below 70 000 bytes (every path of the code), now and then up to 1 MiB.
                let countMax = round % 10 == 0 ? all.count - start : 70_000
                let count = Int(random.next() % UInt64(countMax))
                let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + count)])
                let seed = UInt32(truncatingIfNeeded: random.next())
                #expect(CRC32C.checksum(slice, seed: seed) == CRC32C.tableChecksum(slice, seed: seed),
                        "length \(count) at offset \(start)")
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
                    #expect(CRC32C.checksum(slice, seed: 0) == CRC32C.tableChecksum(slice, seed: 0),
                            "length \(length) at offset \(start)")
                }
            }
        }
    }
}
