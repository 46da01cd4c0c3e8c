// MetadataBitmapIO: the blocking reads and writes of a metadata file's bitmap area
// (docs/metadata.md, *Bitmap page*, *Bitmap validity*). Pages go in runs of up to 1 MiB
// through one aligned buffer (the file may be open O_DIRECT); a short write or read, or
// EINTR, is continued. The proof of each page is TandemCore's (BitmapAreaCodec); ordering
// (pages durable before the seal, the seal cleared before pages change) is MetadataFile's.
// Used at a clean stop, at start and when pages must be durable (activity-log eviction).
import Glibc
import TandemCore
import TandemIO

/// Why a stored bitmap cannot be believed: the file, the page (nil: not one page's fault)
/// and the reason. `event` is the event name docs/metadata.md gives it.
struct MetadataBitmapError: Error, CustomStringConvertible {
    static let event = "metadata-page-unreadable"
    var path: String
    var page: Int?
    var reason: String
    var errno: Int32

    var description: String {
        let what = page.map { "bitmap page \($0)" } ?? "bitmap"
        return "metadata \(path): \(what) unreadable: \(reason)"
    }
}

enum MetadataBitmapIO {
    static let pageBytes = MetadataGeometry.slotBytes
    static let runPagesMax = 256

    /// Writes `bitmap`'s pages (every page, or only those changed since last persisted)
    /// sealed with `sequence`, without syncing. Returns the pages written.
    static func writePages(_ bitmap: DirtyBitmap, all: Bool, fd: Int32, path: String, baseOffsetBytes: UInt64 = 0,
                           superblock: MetadataSuperblock, sequence: UInt64) throws(IOError) -> Int {
        let buffer = AlignedPages(count: min(runPagesMax, bitmap.pageCount))
        defer { buffer.free() }
        var scratch = [UInt8](repeating: 0, count: pageBytes)
        var written = 0
        var next: Int? = all ? 0 : bitmap.nextDirtyPage(from: 0)
        while let first = next {
            // A run of consecutive pages to write, at most one buffer long.
            var count = 0
            var page = first
            while page < bitmap.pageCount, count < buffer.count, all || bitmap.isPageDirty(page) {
                BitmapAreaCodec.encodePage(bitmap, page: page, resourceUUID: superblock.resourceUUID,
                                           sequence: sequence, into: &scratch)
                scratch.withUnsafeBytes { buffer.page(count).copyMemory(from: $0.baseAddress!, byteCount: pageBytes) }
                count += 1
                page += 1
            }
            try MetadataFileIO.writeAll(fd: fd, UnsafeRawBufferPointer(start: buffer.base, count: count * pageBytes),
                                        offset: baseOffsetBytes + superblock.geometry.bitmapPageOffset(UInt64(first)), path: path)
            written += count
            next = page >= bitmap.pageCount ? nil : all ? page : bitmap.nextDirtyPage(from: page)
        }
        return written
    }

    /// Writes `pages` of `bitmap` (nil: every page), ascending, each with the blocks of
    /// `alsoSet` set too, sealed with `sequence`, without syncing: the activity log's page
    /// writes. Returns the pages written.
    static func writeSelectedPages(_ bitmap: DirtyBitmap, pages: [Int]?, alsoSet: [BlockRun], fd: Int32, path: String,
                                   baseOffsetBytes: UInt64 = 0,
                                   superblock: MetadataSuperblock, sequence: UInt64) throws(IOError) -> Int {
        let list = (pages ?? Array(0..<bitmap.pageCount)).sorted()
        guard !list.isEmpty else { return 0 }
        let buffer = AlignedPages(count: min(runPagesMax, list.count))
        defer { buffer.free() }
        var scratch = [UInt8](repeating: 0, count: pageBytes)
        var index = 0
        while index < list.count {
            // A run of consecutive pages, at most one buffer long.
            let first = list[index]
            var count = 0
            while index < list.count, count < buffer.count, list[index] == first + count {
                precondition(list[index] >= 0 && list[index] < bitmap.pageCount, "page \(list[index]) outside the bitmap")
                BitmapAreaCodec.encodePage(bitmap, page: list[index], resourceUUID: superblock.resourceUUID,
                                           sequence: sequence, alsoSet: alsoSet, into: &scratch)
                scratch.withUnsafeBytes { buffer.page(count).copyMemory(from: $0.baseAddress!, byteCount: pageBytes) }
                count += 1
                index += 1
            }
            while index < list.count && list[index] < first + count { index += 1 }  // duplicates
            try MetadataFileIO.writeAll(fd: fd, UnsafeRawBufferPointer(start: buffer.base, count: count * pageBytes),
                                        offset: baseOffsetBytes + superblock.geometry.bitmapPageOffset(UInt64(first)), path: path)
        }
        return list.count
    }

    /// Reads every page of the sealed bitmap and proves it; the first page that cannot be
    /// proven is the error (nothing is guessed: no page counts as clear without its proof).
    /// `sealed` false: the pages the activity log persisted in an unsealed area.
    static func readPages(fd: Int32, path: String, baseOffsetBytes: UInt64 = 0, superblock: MetadataSuperblock,
                          sealed: Bool = true) throws(MetadataBitmapError) -> DirtyBitmap
    {
        var bitmap: DirtyBitmap
        switch BitmapAreaCodec.emptyBitmap(for: superblock) {
        case .failure(let error): throw MetadataBitmapError(path: path, page: nil, reason: error.description, errno: EINVAL)
        case .success(let empty): bitmap = empty
        }
        let buffer = AlignedPages(count: min(runPagesMax, bitmap.pageCount))
        defer { buffer.free() }
        var first = 0
        while first < bitmap.pageCount {
            let count = min(buffer.count, bitmap.pageCount - first)
            let offset = baseOffsetBytes + superblock.geometry.bitmapPageOffset(UInt64(first))
            let got = try readRun(fd: fd, buffer, count: count, offset: offset, path: path, firstPage: first)
            for index in 0..<count {
                let page = first + index
                let available = max(0, min(pageBytes, got - index * pageBytes))
                let bytes = Array(UnsafeRawBufferPointer(start: buffer.page(index), count: available))
                if let problem = BitmapAreaCodec.loadPage(bytes, page: page, superblock: superblock, sealed: sealed,
                                                          into: &bitmap) {
                    throw MetadataBitmapError(path: path, page: page, reason: problem.description, errno: EIO)
                }
            }
            first += count
        }
        return bitmap
    }

    /// Reads up to `count` pages at `offset`; fewer bytes only where the file ends.
    private static func readRun(fd: Int32, _ buffer: AlignedPages, count: Int, offset: UInt64, path: String,
                                firstPage: Int) throws(MetadataBitmapError) -> Int {
        let total = count * pageBytes
        var done = 0
        while done < total {
            let got = pread(fd, buffer.base + done, total - done, off_t(offset) + off_t(done))
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else {
                let code = errno
                let page = firstPage + done / pageBytes
                throw MetadataBitmapError(path: path, page: page, reason: "\(IOError(errno: code, "read"))",
                                          errno: code)
            }
            if got == 0 { break }
            done += got
        }
        return done
    }
}

/// `count` 4 KiB pages of 4096-aligned memory (O_DIRECT needs it), freed by the owner.
private struct AlignedPages {
    let base: UnsafeMutableRawPointer
    let count: Int

    init(count: Int) {
        precondition(count > 0)
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, count * MetadataBitmapIO.pageBytes) == 0, "out of memory")
        base = memory!
        self.count = count
    }

    func page(_ index: Int) -> UnsafeMutableRawPointer { base + index * MetadataBitmapIO.pageBytes }

    func free() { Glibc.free(base) }
}
