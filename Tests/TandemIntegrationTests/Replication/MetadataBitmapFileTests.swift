// The dirty bitmap in a real metadata file (docs/metadata.md, *Bitmap validity*), through
// the daemon's MetadataFile on a real event loop and a file in /var/tmp (O_DIRECT where the
// filesystem allows): a bitmap with bits in several pages survives a close and reopen; only
// changed pages are rewritten; a corrupted page, a page of another resource, a page at
// another index and a torn page write each make the load throw naming the file and the page,
// never load as clear; without the seal the caller gets "no bitmap", which is not an error.
import Foundation
import Logging
import TandemCore
import TandemIO
import Testing
@testable import TandemDaemon

@Suite struct MetadataBitmapFileTests {
    /// 1 GiB at 4 KiB blocks: 262 144 blocks in 9 pages (the last partial).
    static let volumeSizeBytes: UInt64 = 1 << 30
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    let directory: TempDirectory
    let loop: EventLoop

    init() throws {
        directory = try TempDirectory("bitmap")
        loop = try EventLoop(ringEntries: 8, poolBytes: 1 << 16, logger: Self.logger)
    }

    private func spec(_ name: String = "r0") -> ResourceSpec {
        ResourceSpec(name: name, volume: directory.file("\(name).vol"), role: .primary,
                     nbd: NBDSpec(socket: directory.file("\(name).sock")))
    }

    /// A new metadata file, created as `create` creates it.
    private func create(_ path: String) throws -> MetadataFile {
        try MetadataStore.open(spec: spec(), path: path, volumeSizeBytes: Self.volumeSizeBytes, stateDir: directory.path,
                               creating: true, legacy: false, loop: loop, logger: Self.logger).file
    }

    /// The file opened again and proven, as a restart opens it.
    private func reopen(_ file: MetadataFile) throws -> MetadataFile {
        file.close()
        return try MetadataStore.load(spec(), path: file.path, volumeSizeBytes: Self.volumeSizeBytes, loop: loop,
                                      logger: Self.logger).file
    }

    private func sample() -> DirtyBitmap {
        var bitmap = DirtyBitmap(volumeSizeBytes: Self.volumeSizeBytes, blockBytes: 4096)
        bitmap.setBlocks(BlockRun(first: 5, count: 3))  // page 0
        bitmap.setBlocks(BlockRun(first: 2 * 32_512 - 10, count: 20))  // pages 1 and 2
        bitmap.setBlocks(BlockRun(first: 5 * 32_512 + 4000, count: 9000))  // page 5
        bitmap.setBlocks(BlockRun(first: 262_143, count: 1))  // the last block, page 8
        return bitmap
    }

    private func sameBits(_ a: DirtyBitmap, _ b: DirtyBitmap) -> Bool {
        a.setBlockCount == b.setBlockCount && a.nextDirtyRun(from: 0) == b.nextDirtyRun(from: 0)
            && (0..<a.blockCount).allSatisfy { a.isSet(block: $0) == b.isSet(block: $0) }
    }

    private func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    private func pageRange(_ file: MetadataFile, _ page: Int) -> Range<Int> {
        let offset = Int(file.superblock.geometry.bitmapPageOffset(UInt64(page)))
        return offset..<offset + 4096
    }

    /// Replaces page `page`'s 4096 bytes in the (closed) file at `path`.
    private func overwrite(_ path: String, _ range: Range<Int>, with page: [UInt8]) throws {
        var content = try bytes(path)
        content.replaceSubrange(range, with: page)
        try Data(content).write(to: URL(fileURLWithPath: path))
    }

    /// Loading throws naming the file, `page` and `reason`.
    private func expectUnreadable(_ file: MetadataFile, page: Int, reason: String,
                                  sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let loaded = try file.loadBitmap()
            Issue.record("loaded instead of refusing page \(page): \(loaded?.setBlockCount ?? 0) bits set",
                         sourceLocation: sourceLocation)
        } catch {
            #expect(error.page == page, "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains(file.path) && error.description.contains("bitmap page \(page) unreadable")
                        && error.description.contains(reason), "\(error)", sourceLocation: sourceLocation)
        }
    }

    /// A file sealed with `sample()`, closed; returns its path.
    private func sealedFile(_ name: String = "r0.md") throws -> String {
        let file = try create(directory.file(name))
        var bitmap = sample()
        try file.sealBitmap(&bitmap)
        file.close()
        return file.path
    }

    // MARK: tests

    @Test func aBitmapWithBitsInSeveralPagesSurvivesACloseAndReopen() throws {
        let file = try create(directory.file("r0.md"))
        #expect(try file.loadBitmap() == nil, "a new file seals no bitmap")
        var bitmap = sample()
        try file.sealBitmap(&bitmap)
        #expect(bitmap.dirtyPageCount == 0, "sealed pages still dirty in memory")
        #expect(file.bitmapSealed && file.superblock.bitmapSealedSequence < file.superblock.sequence)
        let reopened = try reopen(file)
        #expect(reopened.bitmapSealed)
        let loaded = try #require(try reopened.loadBitmap())
        #expect(sameBits(loaded, bitmap), "loaded \(loaded.setBlockCount) bits, sealed \(bitmap.setBlockCount)")
        #expect(loaded.setBlockCount == 3 + 20 + 9000 + 1)
        #expect(loaded.dirtyPageCount == 0)
        // A clean stop with nothing changed since the load writes nothing; the seal stays.
        var unchanged = loaded
        let sequence = reopened.superblock.sequence
        try reopened.sealBitmap(&unchanged)
        #expect(reopened.superblock.sequence == sequence && reopened.bitmapSealed)
        reopened.close()
    }

    @Test func onlyThePagesChangedSinceTheLastWriteAreRewritten() throws {
        let path = try sealedFile()
        let file = try MetadataStore.load(spec(), path: path, volumeSizeBytes: Self.volumeSizeBytes, loop: loop,
                                          logger: Self.logger).file
        var bitmap = try #require(try file.loadBitmap())
        let before = try bytes(path)
        bitmap.setBlocks(BlockRun(first: 7 * 32_512 + 1, count: 2))  // page 7 only
        #expect(try file.writeBitmap(&bitmap) == 1)
        let after = try bytes(path)
        let changedPages = (0..<bitmap.pageCount).filter { before[pageRange(file, $0)] != after[pageRange(file, $0)] }
        #expect(changedPages == [7])
        #expect(!file.bitmapSealed, "pages were written under a seal")
        #expect(try file.writeBitmap(&bitmap) == 0, "an unchanged bitmap was written again")
        try file.sealBitmap(&bitmap)
        let reopened = try reopen(file)
        #expect(sameBits(try #require(try reopened.loadBitmap()), bitmap))
        // A bitmap not loaded from this file: every page is written (the area is unknown).
        var fresh = DirtyBitmap(volumeSizeBytes: Self.volumeSizeBytes, blockBytes: 4096)
        fresh.setBlocks(BlockRun(first: 0, count: 1))
        let other = try reopen(reopened)
        #expect(try other.writeBitmap(&fresh) == 9)
        other.close()
    }

    @Test func aCorruptedPageFailsTheLoadNamingThePage() throws {
        let path = try sealedFile()
        let file = try MetadataStore.load(spec(), path: path, volumeSizeBytes: Self.volumeSizeBytes, loop: loop,
                                          logger: Self.logger).file
        file.close()
        var content = try bytes(path)
        content[pageRange(file, 5).lowerBound + 3000] ^= 0x10  // one bit of page 5's bits
        try Data(content).write(to: URL(fileURLWithPath: path))
        let reopened = try reopen(file)
        expectUnreadable(reopened, page: 5, reason: "checksum mismatch")
        #expect(MetadataBitmapError.event == "metadata-page-unreadable")
        reopened.close()
    }

    @Test func aPageOfAnotherResourceOrAtAnotherIndexFailsTheLoad() throws {
        let path = try sealedFile("r0.md")
        let otherPath = try sealedFile("other.md")  // same name, same bits, another resource UUID
        let file = try MetadataStore.load(spec(), path: path, volumeSizeBytes: Self.volumeSizeBytes, loop: loop,
                                          logger: Self.logger).file
        file.close()
        let original = try bytes(path)
        try overwrite(path, pageRange(file, 2), with: Array(try bytes(otherPath)[pageRange(file, 2)]))
        let foreign = try reopen(file)
        expectUnreadable(foreign, page: 2, reason: "page of another resource")
        foreign.close()
        try Data(original).write(to: URL(fileURLWithPath: path))
        try overwrite(path, pageRange(file, 2), with: Array(original[pageRange(file, 4)]))
        let misplaced = try reopen(file)
        expectUnreadable(misplaced, page: 2, reason: "page index 4 at the place of page 2")
        misplaced.close()
    }

    @Test func aTornPageWriteFailsTheLoadAndIsNeverReadAsClear() throws {
        let path = try sealedFile()
        var file = try MetadataStore.load(spec(), path: path, volumeSizeBytes: Self.volumeSizeBytes, loop: loop,
                                          logger: Self.logger).file
        let old = Array(try bytes(path)[pageRange(file, 5)])
        var bitmap = try #require(try file.loadBitmap())
        // Page 5 changes in its second half (bit 20 000 is byte 2 532 of the page): a tear
        // between the halves leaves a page that is neither write.
        bitmap.setBlocks(BlockRun(first: 5 * 32_512 + 20_000, count: 100))
        try file.sealBitmap(&bitmap)
        file.close()
        let new = Array(try bytes(path)[pageRange(file, 5)])
        #expect(old[2048...] != new[2048...] && old[0..<2048] != new[0..<2048])
        // Half the new page landed, half the old stayed.
        try overwrite(path, pageRange(file, 5), with: Array(new[0..<2048]) + Array(old[2048...]))
        file = try reopen(file)
        expectUnreadable(file, page: 5, reason: "checksum mismatch")
        // The same tear as a crash leaves it: pages are written only while unsealed, so a
        // crash inside a page write finds no seal, and the caller gets no bitmap.
        try file.invalidateBitmap()
        let reopened = try reopen(file)
        #expect(try reopened.loadBitmap() == nil)
        reopened.close()
    }

    @Test func withoutTheSealTheCallerGetsNoBitmapNotAnError() throws {
        let path = try sealedFile()
        let file = try MetadataStore.load(spec(), path: path, volumeSizeBytes: Self.volumeSizeBytes, loop: loop,
                                          logger: Self.logger).file
        #expect(try file.loadBitmap() != nil)
        try file.invalidateBitmap()  // the first write the sealed bitmap would not cover follows
        #expect(!file.bitmapSealed)
        let reopened = try reopen(file)
        #expect(try reopened.loadBitmap() == nil, "an unsealed bitmap was believed")
        // Writing pages never seals: a crash after them (before `sealBitmap`) finds no bitmap.
        var bitmap = sample()
        try reopened.writeBitmap(&bitmap)
        let afterWrite = try reopen(reopened)
        #expect(try afterWrite.loadBitmap() == nil)
        afterWrite.close()
    }
}
