import Testing

@testable import TandemCore

/// The parted-bitmap file's bytes (PartedBitmapCodec, docs/metadata.md *Parted bitmap*): what
/// is written decodes to the same generation and bits; a file that cannot be proven is refused
/// with a reason, whatever part of it is wrong (fuzzed by FuzzBitmap).
@Suite struct PartedBitmapCodecTests {
    static let volumeBytes: UInt64 = (16 << 20) + 512

    static func parted() -> PartedBitmap {
        var bitmap = DirtyBitmap(volumeSizeBytes: volumeBytes, blockBytes: 4096)
        _ = bitmap.setBlocks(BlockRun(first: 3, count: 5))
        _ = bitmap.setBlocks(BlockRun(first: bitmap.blockCount - 1, count: 1))
        return PartedBitmap(partingGeneration: 0xABCD_EF01_2345_6789, bitmap: bitmap)
    }

    /// The file with its CRC32C recomputed after `change`.
    static func resealed(_ bytes: [UInt8], _ change: (inout [UInt8]) -> Void) -> [UInt8] {
        var body = Array(bytes.dropLast(4))
        change(&body)
        let crc = CRC32C.checksum(body)
        return body + (0..<4).map { UInt8(truncatingIfNeeded: crc >> (8 * UInt32($0))) }
    }

    static func refusal(_ bytes: [UInt8], volumeBytes: UInt64 = volumeBytes) -> String? {
        do {
            _ = try PartedBitmapCodec.decode(bytes, volumeSizeBytes: volumeBytes)
            return nil
        } catch {
            #expect(error.description.utf8.count <= 400)
            return error.description
        }
    }

    @Test func aWrittenFileDecodesToTheSameGenerationAndBits() throws {
        let bytes = try PartedBitmapCodec.encode(Self.parted())
        let back = try PartedBitmapCodec.decode(bytes, volumeSizeBytes: Self.volumeBytes)
        #expect(back.partingGeneration == Self.parted().partingGeneration)
        #expect(back.bitmap.setBlockCount == 6 && back.bitmap.blockBytes == 4096)
        #expect(back.bitmap.nextDirtyRun(from: 0) == BlockRun(first: 3, count: 5))
        #expect(back.bitmap.isSet(block: back.bitmap.blockCount - 1))
        // The defined flag (bit 0) is taken.
        #expect(Self.refusal(Self.resealed(bytes) { $0[24] = 1 }) == nil)
        #expect(!back.peerSetPending && !back.returnedPrimary && bytes[24] == 0)
    }

    /// A union resync's file written before the peer's set came says so (bit 1), and whether
    /// the resync is a returned primary's (bit 2, only with bit 1); an older build refuses
    /// such a file as of unknown flags, and copies the whole volume.
    @Test func aFileWaitingForThePeersSetSaysSo() throws {
        var parted = Self.parted()
        parted.peerSetPending = true
        let pending = try PartedBitmapCodec.encode(parted)
        #expect(pending[24] == 2)
        let back = try PartedBitmapCodec.decode(pending, volumeSizeBytes: Self.volumeBytes)
        #expect(back.peerSetPending && !back.returnedPrimary && back.bitmap.setBlockCount == 6)
        parted.returnedPrimary = true
        let returned = try PartedBitmapCodec.decode(try PartedBitmapCodec.encode(parted), volumeSizeBytes: Self.volumeBytes)
        #expect(returned.peerSetPending && returned.returnedPrimary)
        // Without the pending set, the returned primary's flag is not written.
        parted.peerSetPending = false
        #expect(try PartedBitmapCodec.encode(parted)[24] == 0)
    }

    @Test func aFileThatCannotBeProvenIsRefusedWithItsReason() throws {
        let bytes = try PartedBitmapCodec.encode(Self.parted())
        let cases: [(String, [UInt8], String)] = [
            ("empty", [], "empty (0 bytes)"),
            ("truncated header", Array(bytes.prefix(20)), "truncated: 20 bytes"),
            ("magic", Self.resealed(bytes) { $0[0] = UInt8(ascii: "X") }, "not a parted-bitmap file"),
            ("checksum", Array(bytes.dropLast()) + [bytes.last! ^ 1], "checksum mismatch"),
            ("torn", Array(bytes.dropLast(7)), "checksum mismatch"),
            ("unknown flag", Self.resealed(bytes) { $0[24] = 8 }, "unknown flags 0x8"),
            ("returned without pending", Self.resealed(bytes) { $0[24] = 4 },
             "a returned primary's flag without the pending peer set's"),
            ("generation 0", Self.resealed(bytes) { $0.replaceSubrange(8..<16, with: [UInt8](repeating: 0, count: 8)) },
             "parting generation 0"),
            ("frames length", Self.resealed(bytes) { $0[28] &+= 1 }, "frames of the wrong length"),
            ("a frame after BitmapDone", Self.resealed(bytes) {
                let extra = try! WireEncoder.encode(.bitmapDone(setBlocks: 6), promotionNumber: 0)
                $0 += extra
                let frames = UInt32($0.count - PartedBitmapCodec.headerBytes)
                for index in 0..<4 { $0[28 + index] = UInt8(truncatingIfNeeded: frames >> (8 * UInt32(index))) }
            }, "bytes after the BitmapDone"),
            ("no BitmapDone", Self.resealed(bytes) {
                let done = try! WireEncoder.encode(.bitmapDone(setBlocks: 6), promotionNumber: 0)
                $0.removeLast(done.count)
                let frames = UInt32($0.count - PartedBitmapCodec.headerBytes)
                for index in 0..<4 { $0[28 + index] = UInt8(truncatingIfNeeded: frames >> (8 * UInt32(index))) }
            }, "no BitmapDone"),
        ]
        for (name, file, reason) in cases {
            let refused = Self.refusal(file)
            #expect(refused?.contains(reason) == true, "\(name): \(refused ?? "loaded")")
        }
        #expect(Self.refusal(bytes, volumeBytes: Self.volumeBytes + 4096)?.contains("written for a volume of") == true)
    }
}
