import TandemCore
import Testing

@testable import TandemIO

@Suite struct LZ4Tests {
    @Test func compressibleBlocksRoundTripAndShrink() throws {
        let block = (0..<65536).map { UInt8(truncatingIfNeeded: ($0 / 64) % 7) }
        var compressed = [UInt8](repeating: 0, count: LZ4.compressBound(block.count))
        let count = try #require(
            block.withUnsafeBytes { source in
                compressed.withUnsafeMutableBytes { LZ4.compress(source, into: $0) }
            })
        #expect(count < block.count / 10)
        var restored = [UInt8](repeating: 0, count: block.count)
        try compressed[0..<count].withUnsafeBytes { source in
            try restored.withUnsafeMutableBytes { try LZ4.decompress(source, into: $0) }
        }
        #expect(restored == block)
    }

    @Test func incompressibleBlocksAreSentAsTheyAre() {
        var random = SeededRandom(seed: 3)
        let block = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &random) }
        var scratch = [UInt8](repeating: 0, count: block.count)
        let result = block.withUnsafeBytes { source in
            scratch.withUnsafeMutableBytes { LZ4.compressIfItPays(source, into: $0) }
        }
        #expect(result == nil)
    }

    @Test func malformedOrWrongLengthBlocksAreRefused() {
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01]
        var destination = [UInt8](repeating: 0, count: 4096)
        #expect(throws: LZ4Error.self) {
            try garbage.withUnsafeBytes { source in
                try destination.withUnsafeMutableBytes { try LZ4.decompress(source, into: $0) }
            }
        }
        // A valid block that expands to less than the declared length is refused too.
        let block = [UInt8](repeating: 9, count: 1000)
        var compressed = [UInt8](repeating: 0, count: LZ4.compressBound(block.count))
        let count = block.withUnsafeBytes { source in
            compressed.withUnsafeMutableBytes { LZ4.compress(source, into: $0)! }
        }
        #expect(throws: LZ4Error.self) {
            try compressed[0..<count].withUnsafeBytes { source in
                try destination.withUnsafeMutableBytes { try LZ4.decompress(source, into: $0) }
            }
        }
    }

    @Test func seededGarbageNeverOverrunsTheDestination() {
        var random = SeededRandom(seed: 11)
        // The decoder gets the first 8 KiB; a canary fills the rest, and must survive.
        let canary: UInt8 = 0xC3
        var memory = [UInt8](repeating: canary, count: 8192 + 4096)
        var refused = 0
        for _ in 0..<500 {
            let garbage = (0..<Int.random(in: 1...300, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
            do {
                try garbage.withUnsafeBytes { source in
                    try memory.withUnsafeMutableBytes {
                        try LZ4.decompress(source, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<8192]))
                    }
                }
            } catch {
                refused += 1
            }
            #expect(memory[8192...].allSatisfy { $0 == canary }, "decompression wrote past its destination")
        }
        // Nearly all random blocks are invalid LZ4; they must be refused, not decoded.
        #expect(refused > 400, "only \(refused) of 500 garbage blocks were refused")
    }

    @Test func aCorruptedBlockFailsItsCRCBeforeItCanBeWritten() throws {
        let block = [UInt8](repeating: 0x5A, count: 4096)
        var scratch = [UInt8](repeating: 0, count: block.count)
        let (header, compressed) = block.withUnsafeBytes { source in
            scratch.withUnsafeMutableBytes {
                WirePayload.prepare(
                    block: source, epoch: 1, sequence: 1, offsetBytes: 8192, fua: false, compress: false, scratch: $0)
            }
        }
        #expect(compressed == nil)
        #expect(header.crc32c == CRC32C.checksum(block))
        var corrupted = block
        corrupted[100] ^= 1
        var destination = [UInt8](repeating: 0, count: block.count)
        #expect(throws: WirePayloadError.self) {
            try corrupted.withUnsafeBytes { payload in
                try destination.withUnsafeMutableBytes { try WirePayload.restore(header, payload: payload, into: $0) }
            }
        }
        #expect(throws: WirePayloadError.self) {
            try corrupted.withUnsafeBytes { try WirePayload.verify(header, payload: $0) }
        }
        try block.withUnsafeBytes { try WirePayload.verify(header, payload: $0) }
    }
}

/// What a receiver allocates for a Data frame is sized by what arrived, not by the length
/// the peer claims (WirePayload.restoredBytes, which the secondary asks before allocating).
@Suite struct WirePayloadSizingTests {
    static func header(lengthBytes: Int, compressed: Bool) -> WireDataHeader {
        WireDataHeader(epoch: 1, sequence: 1, offsetBytes: 0, lengthBytes: UInt32(lengthBytes),
                       flags: compressed ? [.compressed] : [], crc32c: 0)
    }

    @Test func aCompressedFrameClaiming32MiBInAFewBytesSizesNothing() {
        for payloadBytes in [1, 4, 1000] {
            let claimed = WireFormat.maxPayloadBytes
            #expect(throws: WirePayloadError.implausibleLength(lengthBytes: claimed, payloadBytes: payloadBytes)) {
                try WirePayload.restoredBytes(Self.header(lengthBytes: claimed, compressed: true), payloadBytes: payloadBytes)
            }
        }
        // Restore refuses it too, before liblz4 is asked, whatever buffer it is given.
        var destination = [UInt8](repeating: 0, count: 4096 * 255 + 4096)
        let payload = [UInt8](repeating: 0, count: 16)
        #expect(throws: WirePayloadError.implausibleLength(lengthBytes: destination.count, payloadBytes: 16)) {
            try payload.withUnsafeBytes { source in
                try destination.withUnsafeMutableBytes {
                    try WirePayload.restore(Self.header(lengthBytes: $0.count, compressed: true), payload: source, into: $0)
                }
            }
        }
    }

    @Test func anUncompressedFrameIsSizedByItsPayload() throws {
        #expect(try WirePayload.restoredBytes(Self.header(lengthBytes: 4096, compressed: false), payloadBytes: 4096) == 4096)
        #expect(throws: WirePayloadError.bufferSizeMismatch(expectedBytes: 4096, bufferBytes: 512)) {
            try WirePayload.restoredBytes(Self.header(lengthBytes: 4096, compressed: false), payloadBytes: 512)
        }
    }

    /// The bound admits everything a primary sends: the most compressible blocks (zeros) of
    /// every size up to the largest a Data frame carries.
    @Test func everyBlockAPrimaryCompressesIsWithinTheBound() throws {
        for size in [4096, 65536, 1 << 20, WireFormat.maxPayloadBytes] {
            let block = [UInt8](repeating: 0, count: size)
            var scratch = [UInt8](repeating: 0, count: size)
            let (header, compressed) = block.withUnsafeBytes { source in
                scratch.withUnsafeMutableBytes {
                    WirePayload.prepare(block: source, epoch: 1, sequence: 1, offsetBytes: 0, fua: false,
                                        compress: true, scratch: $0)
                }
            }
            let payloadBytes = try #require(compressed)
            #expect(try WirePayload.restoredBytes(header, payloadBytes: payloadBytes) == size)
            var restored = [UInt8](repeating: 1, count: size)
            try scratch[..<payloadBytes].withUnsafeBytes { payload in
                try restored.withUnsafeMutableBytes { try WirePayload.restore(header, payload: payload, into: $0) }
            }
            #expect(restored == block, "\(size) bytes (\(payloadBytes) compressed)")
        }
    }
}

typealias SeededRandom = SplitMix64
