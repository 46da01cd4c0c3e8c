// Volume: a block device or regular file opened for the data path. O_DIRECT where the
// filesystem accepts it; otherwise buffered, said once in the log. The descriptor sits in
// the ring's fixed-file table. Confined to the loop thread after open.
import CShims
import CURing
import Glibc
import Logging

public final class Volume {
    public let path: String
    public let fd: Int32
    /// The bytes the resource uses: what the volume measured at open, or less when its
    /// metadata describes less (a volume grown before `resize`), changed only by `use`.
    public private(set) var sizeBytes: UInt64
    public let isBlockDevice: Bool
    public let direct: Bool
    /// Offsets and lengths of disk I/O must be multiples of this (1 when buffered).
    public let alignment: Int
    /// Whether a write submitted with RWF_DSYNC through io_uring is durable when it completes.
    /// True for block devices and the local filesystems in `dsyncFilesystems`. Elsewhere it
    /// cannot be relied on: FUSE, for one, completes such a write without syncing it (seen on
    /// Linux 6.18, where the same write through pwritev2 is synced). There a FUA write is a
    /// plain write followed by a flush.
    public let honoursDSyncWrites: Bool

    /// statfs f_type of the filesystems whose io_uring RWF_DSYNC writes are durable: ext2/3/4,
    /// XFS, Btrfs, F2FS, bcachefs, ZFS, and tmpfs (which has nothing to make durable).
    static let dsyncFilesystems: Set<Int> = [0xEF53, 0x5846_5342, 0x9123_683E, 0xF2F5_2010, 0xCA45_1A4E,
                                             0x2FC1_2FC1, 0x0102_1994]
    public private(set) var fixedSlot: UInt32?
    /// `disk_timeout_ms` in ns; 0: off. While set, every I/O on this volume is watched
    /// (VolumeIOWatch) and one outstanding longer than this is reported to `onIOOverdue`
    /// at the next tick. Loop thread only; a change applies to I/Os checked from then on.
    public var ioTimeoutNs: UInt64 = 0
    /// An I/O of this volume is overdue: its operation, how long it has been outstanding and
    /// the bound it broke (ns). Called once per I/O, on the loop thread, from the tick; the
    /// I/O itself is still in flight and completes to its owner when the disk answers.
    public var onIOOverdue: ((VolumeOperation, UInt64, UInt64) -> Void)?

    /// This open created the file (`createSizeBytes` was given and the path was missing):
    /// whoever refuses the resource afterwards removes it again (`discardCreatedFile`).
    public let createdFile: Bool

    /// Opens `path`; creates a file of `createSizeBytes` when it is missing and a size is given.
    /// A file it created is removed again when the open fails after creating it.
    public init(path: String, createSizeBytes: UInt64?, logger: Logger) throws(IOError) {
        self.path = path
        var created = false
        var fd = open(path, O_RDWR | O_CLOEXEC | tandem_O_DIRECT)
        if fd < 0 && errno == ENOENT, let size = createSizeBytes {
            fd = try Self.createFile(path: path, sizeBytes: size)
            created = true
        }
        var direct = true
        if fd < 0 && errno == EINVAL {
            fd = open(path, O_RDWR | O_CLOEXEC)
            direct = false
            if fd >= 0 {
                logger.notice("filesystem refuses O_DIRECT; using buffered I/O for this volume",
                              metadata: ["volume": "\(path)"])
            }
        }
        func fail(_ code: Int32, _ what: String) -> IOError {
            if fd >= 0 { close(fd) }
            if created { unlink(path) }
            return IOError(errno: code, what)
        }
        guard fd >= 0 else { throw fail(errno, "open \(path)") }
        self.fd = fd
        self.direct = direct
        if direct { Self.dropCachedPages(fd: fd) }
        createdFile = created
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail(errno, "fstat \(path)") }
        isBlockDevice = (st.st_mode & S_IFMT) == S_IFBLK
        let filesystem = tandem_fs_type(fd)
        honoursDSyncWrites = isBlockDevice || Self.dsyncFilesystems.contains(Int(filesystem))
        if !honoursDSyncWrites {
            logger.notice("this filesystem's synchronous writes are not trusted; FUA writes are followed by a flush",
                          metadata: ["volume": "\(path)", "f_type": "0x\(String(filesystem, radix: 16))"])
        }
        do {
            (sizeBytes, alignment) = try Self.geometry(fd: fd, stat: st, blockDevice: isBlockDevice, direct: direct)
        } catch {
            throw fail(error.errno, error.operation)
        }
    }

    /// What the volume measures now (a logical volume or a file may have grown since open).
    public func measureBytes() throws(IOError) -> UInt64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw IOError(errno: errno, "fstat \(path)") }
        return try Self.geometry(fd: fd, stat: st, blockDevice: isBlockDevice, direct: direct).0
    }

    /// Uses `bytes` of the volume from now on (a resize, or a metadata that describes less
    /// than the volume measures). Loop thread only; never more than the volume measures.
    public func use(bytes: UInt64) {
        precondition(bytes > 0 && bytes % 4096 == 0, "a volume size of \(bytes) bytes")
        sizeBytes = bytes
    }

    /// Extends a regular file to `bytes` (ftruncate, then fsync: the new size is durable
    /// before the metadata names it). Never shrinks; refused for block devices.
    public func extendFile(toBytes bytes: UInt64) throws(IOError) {
        guard !isBlockDevice else { throw IOError(errno: EINVAL, "extend \(path): a block device is grown by its owner") }
        guard try measureBytes() < bytes else { return }
        guard ftruncate(fd, off_t(bytes)) == 0 else { throw IOError(errno: errno, "ftruncate \(path)") }
        while fsync(fd) != 0 {
            guard errno == EINTR else { throw IOError(errno: errno, "fsync \(path)") }
        }
    }

    /// Removes the file this open created, for a resource refused after its volume was
    /// opened; the descriptor stays valid until the volume is released.
    public func discardCreatedFile() {
        if createdFile { unlink(path) }
    }

    deinit { close(fd) }

    public func attach(to loop: EventLoop) throws(IOError) {
        fixedSlot = try loop.registerFile(fd)
    }

    public func detach(from loop: EventLoop) {
        if let slot = fixedSlot { loop.unregisterFile(slot) }
        fixedSlot = nil
    }

    /// Evicts the volume's clean pages from the page cache (a file written through the cache
    /// before, e.g. copied with `cp`, or a device probed by udev). An `O_DIRECT` write over a
    /// cached page cannot be issued without blocking: io_uring's non-blocking attempt gets
    /// EAGAIN and hands the write to an io-wq worker thread, which invalidates the page and
    /// writes, one more thread hop per write (docs/benchmarks.md, *the local write*). Each
    /// such write evicts its page, so without this a copied volume punts writes for as long as
    /// random writes take to touch every cached page. Dirty pages stay (their writeback is
    /// started). A refusal costs only that speed, so it is not an error.
    static func dropCachedPages(fd: Int32) {
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    }

    private static func createFile(path: String, sizeBytes: UInt64) throws(IOError) -> Int32 {
        let fd = open(path, O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw IOError(errno: errno, "create \(path)") }
        guard ftruncate(fd, off_t(sizeBytes)) == 0 else {
            let code = errno
            close(fd)
            unlink(path)
            throw IOError(errno: code, "ftruncate \(path)")
        }
        close(fd)
        return open(path, O_RDWR | O_CLOEXEC | tandem_O_DIRECT)
    }

    private static func geometry(fd: Int32, stat st: stat, blockDevice: Bool, direct: Bool) throws(IOError)
        -> (UInt64, Int)
    {
        guard blockDevice else {
            guard (st.st_mode & S_IFMT) == S_IFREG else { throw IOError(errno: EINVAL, "volume is neither a block device nor a regular file") }
            // 4 KiB satisfies tandem_O_DIRECT on every filesystem's block size we support.
            return (UInt64(st.st_size), direct ? 4096 : 1)
        }
        var size: UInt64 = 0
        guard tandem_blk_getsize64(fd, &size) == 0 else { throw IOError(errno: errno, "BLKGETSIZE64") }
        var sector: Int32 = 512
        guard tandem_blk_sszget(fd, &sector) == 0 else { throw IOError(errno: errno, "BLKSSZGET") }
        return (size, direct ? Int(sector) : 1)
    }
}

extension EventLoop {
    /// An SQE for an operation on `volume`, with the descriptor to name in it: the
    /// fixed-file slot (and IOSQE_FIXED_FILE) when the volume has one.
    @inline(__always)
    private func volumeSQE(_ volume: Volume, handler: UInt32, tag: UInt32, operation: VolumeOperation)
        -> (sqe: UnsafeMutablePointer<io_uring_sqe>, fd: Int32, fixed: Bool)
    {
        let sqe = volume.ioTimeoutNs == 0
            ? self.sqe(handler: handler, tag: tag) : watchedSQE(volume, handler: handler, tag: tag, operation: operation)
        if let slot = volume.fixedSlot { return (sqe, Int32(slot), true) }
        return (sqe, volume.fd, false)
    }

    /// A read or write of `length` bytes at `offset` on `volume`, from or into `buffer`.
    /// Uses the registered-buffer opcodes when the buffer lies in the registered pool.
    @inline(__always)
    public func prepareVolumeIO(
        write: Bool, volume: Volume, buffer: UnsafeMutableRawPointer, length: Int, offset: UInt64,
        dsync: Bool, handler: UInt32, tag: UInt32
    ) {
        let (sqe, fd, fixed) = volumeSQE(volume, handler: handler, tag: tag, operation: write ? .write : .read)
        if pool.registered && pool.contains(buffer, length: length) {
            if write {
                io_uring_prep_write_fixed(sqe, fd, buffer, UInt32(length), offset, 0)
            } else {
                io_uring_prep_read_fixed(sqe, fd, buffer, UInt32(length), offset, 0)
            }
        } else if write {
            io_uring_prep_write(sqe, fd, buffer, UInt32(length), offset)
        } else {
            io_uring_prep_read(sqe, fd, buffer, UInt32(length), offset)
        }
        if fixed { sqe.pointee.flags |= fixedFileFlag }
        if dsync { sqe.pointee.rw_flags = Int32(tandem_RWF_DSYNC) }
    }

    public func prepareFlush(volume: Volume, handler: UInt32, tag: UInt32) {
        let (sqe, fd, fixed) = volumeSQE(volume, handler: handler, tag: tag, operation: .flush)
        io_uring_prep_fsync(sqe, fd, UInt32(IORING_FSYNC_DATASYNC))
        if fixed { sqe.pointee.flags |= fixedFileFlag }
    }

    public func prepareFallocate(volume: Volume, mode: Int32, offset: UInt64, length: UInt64,
                                 handler: UInt32, tag: UInt32) {
        let (sqe, fd, fixed) = volumeSQE(volume, handler: handler, tag: tag, operation: .fallocate)
        io_uring_prep_fallocate(sqe, fd, mode, off_t(offset), off_t(length))
        if fixed { sqe.pointee.flags |= fixedFileFlag }
    }

    public func prepareFadvise(volume: Volume, offset: UInt64, length: UInt32, handler: UInt32, tag: UInt32) {
        let (sqe, fd, fixed) = volumeSQE(volume, handler: handler, tag: tag, operation: .fadvise)
        io_uring_prep_fadvise(sqe, fd, offset, off_t(length), POSIX_FADV_WILLNEED)
        if fixed { sqe.pointee.flags |= fixedFileFlag }
    }
}

/// IOSQE_FIXED_FILE is a macro over an enum value Swift imports as a constant.
let fixedFileFlag = UInt8(1 << IOSQE_FIXED_FILE_BIT)
