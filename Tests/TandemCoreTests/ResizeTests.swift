// Online resize's pure parts: the check both nodes run (ResizeCheck), the metadata at a new
// size (MetadataResize: the file grows at its end, so a crash between the new pages and the
// new superblock loads the old geometry, and after it the new one), a volume larger than
// its metadata (opens at the metadata's size), the bitmap at a new size (the new area
// dirty), and the Resize frame.
import TandemCore
import Testing

@Suite struct ResizeTests {
    static let mib: UInt64 = 1 << 20

    static func facts(current: UInt64 = 64 << 20, size: UInt64, volume: UInt64 = 64 << 20, file: Bool = false,
                      force: Bool = false, busy: String? = nil) -> ResizeFacts {
        ResizeFacts(currentBytes: current, sizeBytes: size, volumeBytes: volume, volumeIsFile: file, force: force,
                    bitmapBlockBytes: 4096, busy: busy)
    }

    @Test func theCheckRefusesWhatCannotBeDoneAndPlansTheRest() {
        let decide = { ResizeCheck.decide($0) }
        #expect(decide(Self.facts(size: (128 << 20) + 512, volume: 256 << 20)) == .failure(.notAligned(sizeBytes: (128 << 20) + 512)))
        #expect(decide(Self.facts(size: 0)) == .failure(.notAligned(sizeBytes: 0)))
        let max = ResizeCheck.maxBytes(bitmapBlockBytes: 4096)
        #expect(max == UInt64(UInt32.max) * 4096)
        #expect(decide(Self.facts(size: max + 4096, file: true)) == .failure(.tooLarge(sizeBytes: max + 4096, maxBytes: max)))
        #expect(decide(Self.facts(size: 32 << 20)) == .failure(.shrinkNotForced(currentBytes: 64 << 20, sizeBytes: 32 << 20)))
        #expect(decide(Self.facts(size: 32 << 20, force: true)) == .success(.shrink))
        #expect(decide(Self.facts(size: 64 << 20)) == .success(.unchanged))
        // A block device must have been grown already; a file is extended by the resize.
        #expect(decide(Self.facts(size: 128 << 20)) == .failure(.volumeTooSmall(volumeBytes: 64 << 20, sizeBytes: 128 << 20)))
        #expect(decide(Self.facts(size: 128 << 20, volume: 256 << 20)) == .success(.grow(extendFileToBytes: nil)))
        #expect(decide(Self.facts(size: 128 << 20, file: true)) == .success(.grow(extendFileToBytes: 128 << 20)))
        #expect(decide(Self.facts(size: 128 << 20, volume: 256 << 20, busy: "a resize is under way"))
            == .failure(.busy("a resize is under way")))
    }

    @Test func aPeersRefusalReadsAsTheSameWordsItWouldHaveLocally() {
        let refusals: [(ResizeRefusal, size: UInt64)] = [
            (.notAligned(sizeBytes: 4097), 4097), (.tooLarge(sizeBytes: 1 << 62, maxBytes: 1 << 44), 1 << 62),
            (.shrinkNotForced(currentBytes: 64 << 20, sizeBytes: 4096), 4096),
            (.volumeTooSmall(volumeBytes: 16 << 20, sizeBytes: 32 << 20), 32 << 20),
        ]
        for (refusal, size) in refusals {
            #expect(ResizeRefusal(wireCode: refusal.wireCode, sizeBytes: size, senderBytes: refusal.senderBytes) == refusal)
        }
        #expect(Set(([ResizeRefusal.busy(""), .failed(""), .wrongState("")] + refusals.map(\.0)).map(\.wireCode)).count == 7,
                "every refusal has its own code")
    }

    static func superblock(sizeBytes: UInt64, sequence: UInt64) -> MetadataSuperblock {
        var superblock = MetadataSuperblock(resourceName: "r0", volumeSizeBytes: sizeBytes)
        superblock.sequence = sequence
        superblock.resourceUUID = 0xABCD
        superblock.session = 9
        superblock.durableEpoch = 8
        superblock.bitmapSealedSequence = sequence - 1
        superblock.catchUpBases = [CatchUpBase(session: 9, durableThroughEpoch: 8)]
        return superblock
    }

    private func load(_ superblock: MetadataSuperblock, fileBytes: UInt64, volumeBytes: UInt64)
        -> Result<MetadataLoaded, MetadataLoadFailure>
    {
        var other = superblock
        other.sequence -= 1
        return MetadataLoad.decide(fileBytes: fileBytes, slotA: MetadataSuperblockCodec.encode(superblock),
                                   slotB: MetadataSuperblockCodec.encode(other),
                                   expected: MetadataExpectation(resourceName: "r0", volumeSizeBytes: volumeBytes))
    }

    @Test func growingAddsPagesAtTheEndAndEitherGeometryLoadsFromTheGrownFile() throws {
        let old = Self.superblock(sizeBytes: 64 << 20, sequence: 5)
        let grown = MetadataResize.superblock(old, volumeSizeBytes: 4 << 30)
        #expect(grown.volumeSizeBytes == 4 << 30 && grown.session == 9 && grown.durableEpoch == 8 && grown.resourceUUID == 0xABCD)
        #expect(!grown.bitmapSealed && grown.catchUpBases.isEmpty, "the seal goes: the pages are rewritten whole")
        #expect(grown.geometry.bitmapOffset == old.geometry.bitmapOffset, "nothing before the bitmap moves")
        let pages = MetadataResize.pagesToWrite(from: old.geometry, to: grown.geometry)
        #expect(pages == old.geometry.bitmapPages..<grown.geometry.bitmapPages)
        #expect(pages.count == 33 - 1, "4 GiB of 4 KiB blocks: 33 pages where 64 MiB needed 1")
        #expect(grown.geometry.bitmapPageOffset(pages.lowerBound) == old.geometry.fileBytes, "the first new page follows the old end")
        // Crash after the new pages, before the superblock: the old geometry loads from the longer file.
        let beforeCommit = try load(old, fileBytes: grown.geometry.fileBytes, volumeBytes: 4 << 30).get()
        #expect(beforeCommit.superblock.volumeSizeBytes == 64 << 20)
        // After it: the new one.
        var committed = grown
        committed.sequence = 6
        #expect(try load(committed, fileBytes: grown.geometry.fileBytes, volumeBytes: 4 << 30).get().superblock.volumeSizeBytes == 4 << 30)
        // A new superblock over a file whose pages were never written is refused, not trusted.
        #expect(load(committed, fileBytes: old.geometry.fileBytes, volumeBytes: 4 << 30)
            == .failure(.truncated(fileBytes: old.geometry.fileBytes, neededBytes: grown.geometry.fileBytes)))
    }

    @Test func shrinkingWritesNoPagesAndTheNewGeometryLoadsFromTheLongerFile() throws {
        let old = Self.superblock(sizeBytes: 4 << 30, sequence: 5)
        var shrunk = MetadataResize.superblock(old, volumeSizeBytes: 64 << 20)
        #expect(MetadataResize.pagesToWrite(from: old.geometry, to: shrunk.geometry).isEmpty)
        shrunk.sequence = 6
        // Crash before the file is cut: the superblock names fewer pages than the file holds.
        #expect(try load(shrunk, fileBytes: old.geometry.fileBytes, volumeBytes: 4 << 30).get().superblock.volumeSizeBytes == 64 << 20)
    }

    @Test func aVolumeLargerThanItsMetadataOpensAtTheMetadatasSizeAndASmallerOneFails() throws {
        let superblock = Self.superblock(sizeBytes: 64 << 20, sequence: 5)
        let fileBytes = superblock.geometry.fileBytes
        #expect(try load(superblock, fileBytes: fileBytes, volumeBytes: 128 << 20).get().superblock.volumeSizeBytes == 64 << 20)
        #expect(load(superblock, fileBytes: fileBytes, volumeBytes: 32 << 20)
            == .failure(.otherSize(foundBytes: 64 << 20, expectedBytes: 32 << 20)))
    }

    @Test func aGrownBitmapKeepsItsBitsAndMarksTheNewAreaDirty() {
        var bitmap = DirtyBitmap(volumeSizeBytes: (64 << 20) + 4096, blockBytes: 64 << 10)
        _ = bitmap.setRange(offsetBytes: 1 << 20, lengthBytes: 8192)
        _ = bitmap.setRange(offsetBytes: 63 << 20, lengthBytes: 4096)
        let grown = bitmap.resized(toVolumeSizeBytes: 96 << 20)
        #expect(grown.volumeSizeBytes == 96 << 20 && grown.blockBytes == 64 << 10)
        #expect(grown.isSet(block: 16) && grown.isSet(block: 1008), "the old bits stay")
        #expect(!grown.isSet(block: 17) && !grown.isSet(block: 1000))
        // The old last block was partial (4 KiB of 64 KiB): it grew, so it may differ too.
        #expect((1024..<1536).allSatisfy { grown.isSet(block: UInt64($0)) })
        #expect(grown.outOfSyncBytes == 2 * (64 << 10) + (32 << 20))
        let shrunk = grown.resized(toVolumeSizeBytes: 32 << 20)
        #expect(shrunk.blockCount == 512 && shrunk.outOfSyncBytes == 64 << 10, "only the bit below 32 MiB stays")
    }

    @Test func resizeFramesRoundTripAndMalformedOnesAreRefused() throws {
        let messages: [WireMessage] = [
            .resize(WireResize(sizeBytes: 1 << 40, kind: .request, force: true, senderBytes: 1 << 30)),
            .resize(WireResize(sizeBytes: 1 << 40, kind: .done, senderBytes: 1 << 40)),
            .resize(WireResize(sizeBytes: 1 << 40, kind: .refused, refusalCode: 4, senderBytes: 1 << 30)),
        ]
        var stream: [UInt8] = []
        for message in messages { stream += try WireEncoder.encode(message, promotionNumber: 3) }
        #expect(try WireFixtures.decodeAll(stream).map(\.message) == messages)
        #expect(WireMessageType.resize.rawValue == 28)
        #expect(WireFormat.helloVersion >= WireFormat.resizeVersion)
        // A refusal without a code, or reserved bits set, is refused.
        for bad in [(9, UInt8(2)), (8, UInt8(9)), (9, UInt8(0))] {
            var frame = try WireEncoder.encode(.resize(WireResize(sizeBytes: 4096, kind: .request, senderBytes: 0)),
                                               promotionNumber: 0)
            frame[WireFormat.headerBytes + bad.0] = bad.1
            if bad.0 == 9 && bad.1 == 0 { frame[WireFormat.headerBytes + 8] = 2 }  // refused, code 0
            #expect(throws: WireError.self) { _ = try WireFixtures.decodeAll(frame) }
        }
    }
}
