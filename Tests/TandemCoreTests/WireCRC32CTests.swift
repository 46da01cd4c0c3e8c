import TandemCore
import Testing

@Suite struct WireCRC32CTests {
    @Test func knownAnswersMatchTheCastagnoliCheckValues() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    @Test func chainingASplitInputEqualsOneChecksum() {
        var random = WireTestRandom(seed: 42)
        let bytes = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &random) }
        let whole = CRC32C.checksum(bytes)
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let first = CRC32C.checksum(bytes[0..<split])
            #expect(CRC32C.checksum(bytes[split...], seed: first) == whole)
        }
    }

    @Test func sliceByEightAgreesWithTheBytewiseDefinition() {
        var random = WireTestRandom(seed: 7)
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            #expect(CRC32C.checksum(bytes) == bitwise(bytes), "length \(length)")
            #expect(bytes.withUnsafeBytes { CRC32C.tableChecksum($0) } == bitwise(bytes), "length \(length)")
        }
    }

    private func bitwise(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }
}
