// MetadataFileIO: the blocking file operations of a metadata file (docs/metadata.md): load
// (both slots, handed to TandemCore's verdict), crash-safe creation (`<path>.new`, written
// whole, fsync, rename, directory fsync), removal, and whole-buffer writes that continue
// after a short write or EINTR. Used at open, create, conversion and create-md only.
import Glibc
import TandemCore
import TandemIO

/// Why a metadata file cannot be opened: status and the log say `message`.
struct MetadataOpenError: Error, CustomStringConvertible {
    var path: String
    var reason: String
    var errno: Int32

    var description: String { "metadata \(path): \(reason)" }
}

enum MetadataFileIO {
    static let chunkBytes = 1 << 20

    /// The file's size and both slots' bytes (shorter where the file is), nil if missing.
    static func readSlots(path: String) throws(IOError) -> (fileBytes: UInt64, slotA: [UInt8], slotB: [UInt8])? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT { return nil }
        guard fd >= 0 else { throw IOError(errno: errno, "open \(path)") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw IOError(errno: errno, "fstat \(path)") }
        let slotA = try readAll(fd: fd, count: MetadataGeometry.slotBytes, offset: 0, path: path)
        let slotB = try readAll(fd: fd, count: MetadataGeometry.slotBytes, offset: UInt64(MetadataGeometry.slotBytes), path: path)
        return (UInt64(st.st_size), slotA, slotB)
    }

    /// Internal metadata: the area's size (standing for a file's) and both slots, read at
    /// the layout's offset in the volume at `path`. A missing volume is nil, as a missing file.
    static func readInternalSlots(path: String, layout: MetadataInternalLayout) throws(IOError)
        -> (fileBytes: UInt64, slotA: [UInt8], slotB: [UInt8])?
    {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT { return nil }
        guard fd >= 0 else { throw IOError(errno: errno, "open \(path)") }
        defer { close(fd) }
        let base = layout.metadataOffsetBytes
        let slotA = try readAll(fd: fd, count: MetadataGeometry.slotBytes, offset: base, path: path)
        let slotB = try readAll(fd: fd, count: MetadataGeometry.slotBytes, offset: base + UInt64(MetadataGeometry.slotBytes),
                                path: path)
        return (layout.areaBytes, slotA, slotB)
    }

    /// Internal metadata: writes a new file's units into the volume's metadata area. No
    /// rename can make it atomic, so the order does: both slots zeroed and synced first (a
    /// crash from then on leaves no valid superblock, never the old one over new pages),
    /// then the ring and the pages, synced, then the two slots, synced.
    static func createInternal(path: String, layout: MetadataInternalLayout,
                               _ superblock: MetadataSuperblock) throws(IOError) -> MetadataSuperblock {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw IOError(errno: errno, "open \(path)") }
        defer { close(fd) }
        let base = layout.metadataOffsetBytes
        let slots = MetadataLoad.newFileSlots(superblock)
        let geometry = slots.superblock.geometry
        precondition(geometry.fileBytes <= layout.areaBytes, "internal metadata larger than its area")
        try wipeSlots(fd: fd, base: base, path: path)
        let zeroes = [UInt8](repeating: 0, count: Int(geometry.bitmapOffset - geometry.activityLogOffset))
        try writeAll(fd: fd, bytes: zeroes, offset: base + geometry.activityLogOffset, path: path)
        try writeClearPages(fd: fd, baseOffsetBytes: base, geometry: geometry, pages: 0..<geometry.bitmapPages,
                            superblock: slots.superblock, path: path)
        try dataSync(fd: fd, path: path)
        try writeAll(fd: fd, bytes: slots.slotA + slots.slotB, offset: base, path: path)
        try dataSync(fd: fd, path: path)
        return slots.superblock
    }

    /// Internal metadata of a deleted resource: both slots zeroed durably, so that the area
    /// no longer proves a resource (a later `create` on the volume is not refused for it).
    static func wipeInternal(path: String, layout: MetadataInternalLayout) throws(IOError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw IOError(errno: errno, "open \(path)") }
        defer { close(fd) }
        try wipeSlots(fd: fd, base: layout.metadataOffsetBytes, path: path)
    }

    private static func wipeSlots(fd: Int32, base: UInt64, path: String) throws(IOError) {
        try writeAll(fd: fd, bytes: [UInt8](repeating: 0, count: 2 * MetadataGeometry.slotBytes), offset: base, path: path)
        try dataSync(fd: fd, path: path)
    }

    /// The whole content of a small file (a format-2 `.meta`), nil if missing.
    static func readFile(path: String, bytesMax: Int) throws(IOError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT { return nil }
        guard fd >= 0 else { throw IOError(errno: errno, "open \(path)") }
        defer { close(fd) }
        return try readAll(fd: fd, count: bytesMax, offset: 0, path: path)
    }

    /// Reads up to `count` bytes (fewer only at the end of the file).
    static func readAll(fd: Int32, count: Int, offset: UInt64, path: String) throws(IOError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { throw IOError(errno: errno, "read \(path)") }
            if got == 0 { break }
            done += got
        }
        return Array(bytes[0..<done])
    }

    /// Writes all of `buffer` at `offset`, continuing after short writes and EINTR.
    static func writeAll(fd: Int32, _ buffer: UnsafeRawBufferPointer, offset: UInt64, path: String) throws(IOError) {
        var done = 0
        while done < buffer.count {
            let wrote = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if wrote < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard wrote > 0 else { throw IOError(errno: wrote < 0 ? errno : EIO, "write \(path)") }
            done += wrote
        }
    }

    /// Writes all of `bytes` at `offset` (as `writeAll(fd:_:offset:path:)`).
    static func writeAll(fd: Int32, bytes: [UInt8], offset: UInt64, path: String) throws(IOError) {
        var done = 0
        while done < bytes.count {
            let wrote = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(offset) + off_t(done)) }
            if wrote < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard wrote > 0 else { throw IOError(errno: wrote < 0 ? errno : EIO, "write \(path)") }
            done += wrote
        }
    }

    /// fdatasync, retried only on EINTR (after a real error the kernel may have dropped the
    /// dirty pages: retrying would report success for data that is gone).
    static func dataSync(fd: Int32, path: String) throws(IOError) {
        while fdatasync(fd) != 0 {
            guard errno == EINTR else { throw IOError(errno: errno, "fdatasync \(path)") }
        }
    }

    static func syncDirectory(of path: String) throws(IOError) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) }.flatMap { $0.isEmpty ? "/" : $0 } ?? "."
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw IOError(errno: errno, "open directory \(directory)") }
        defer { close(fd) }
        while fsync(fd) != 0 {
            guard errno == EINTR else { throw IOError(errno: errno, "fsync directory \(directory)") }
        }
    }

    /// Creates the file whole at `<path>.new` and renames it into place: a crash leaves no
    /// file or the old one, never a partial one. Every unit is written (no holes). Returns
    /// the superblock as written (sequence 2, in slot A).
    static func create(path: String, _ superblock: MetadataSuperblock) throws(IOError) -> MetadataSuperblock {
        let temporary = path + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw IOError(errno: errno, "create \(temporary)") }
        let slots = MetadataLoad.newFileSlots(superblock)
        do throws(IOError) {
            defer { close(fd) }
            try writeUnits(fd: fd, slots: slots, path: temporary)
            while fsync(fd) != 0 {
                guard errno == EINTR else { throw IOError(errno: errno, "fsync \(temporary)") }
            }
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw IOError(errno: code, "rename \(temporary)")
        }
        try syncDirectory(of: path)
        return slots.superblock
    }

    private static func writeUnits(fd: Int32, slots: (slotA: [UInt8], slotB: [UInt8], superblock: MetadataSuperblock),
                                   path: String) throws(IOError) {
        let geometry = slots.superblock.geometry
        try writeAll(fd: fd, bytes: slots.slotA + slots.slotB, offset: 0, path: path)
        // Activity-log slots: zeroes (no transaction yet: the active set is empty).
        let zeroes = [UInt8](repeating: 0, count: Int(geometry.bitmapOffset - geometry.activityLogOffset))
        try writeAll(fd: fd, bytes: zeroes, offset: geometry.activityLogOffset, path: path)
        // Bitmap pages, every bit clear (not sealed: the superblock's `bitmap sealed` is 0, so
        // nothing reads them before a bitmap write replaces them).
        try writeClearPages(fd: fd, geometry: geometry, pages: 0..<geometry.bitmapPages, superblock: slots.superblock,
                            path: path)
    }

    /// Writes `pages` of `geometry`'s bitmap, every bit clear, in chunks of `chunkBytes`
    /// (creation, and the pages a resize adds past the old end). Not synced.
    static func writeClearPages(fd: Int32, baseOffsetBytes: UInt64 = 0, geometry: MetadataGeometry, pages: Range<UInt64>,
                                superblock: MetadataSuperblock, path: String) throws(IOError) {
        let clear = [UInt8](repeating: 0, count: BitmapPageHeader.bitsBytes)
        let tag = BitmapPageHeader.resourceTag(superblock.resourceUUID)
        let pagesPerChunk = UInt64(chunkBytes / MetadataGeometry.slotBytes)
        // Aligned: an open metadata file may be O_DIRECT (MetadataFile's descriptor).
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, MetadataGeometry.slotBytes, chunkBytes) == 0)
        defer { free(memory) }
        var page = pages.lowerBound
        while page < pages.upperBound {
            let end = min(pages.upperBound, page + pagesPerChunk)
            for index in page..<end {
                let bytes = BitmapPageHeader(pageIndex: UInt32(index), superblockSequence: superblock.sequence,
                                             resourceTag: tag).encodePage(bits: clear)
                bytes.withUnsafeBytes {
                    (memory! + Int(index - page) * MetadataGeometry.slotBytes).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
                }
            }
            let count = Int(end - page) * MetadataGeometry.slotBytes
            try writeAll(fd: fd, UnsafeRawBufferPointer(start: memory, count: count),
                         offset: baseOffsetBytes + geometry.bitmapPageOffset(page), path: path)
            page = end
        }
    }

    /// Removes a file and makes the removal durable; a missing file is no error.
    static func remove(path: String) throws(IOError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw IOError(errno: errno, "unlink \(path)") }
        try syncDirectory(of: path)
    }
}
