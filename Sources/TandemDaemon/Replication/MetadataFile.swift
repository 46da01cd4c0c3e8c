// MetadataFile: a resource's open format-3 metadata file (docs/metadata.md) and the newest
// superblock in it. All durable per-resource state is written here: synchronously for the
// rare transitions (enable, disable, role changes, session starts: pwrite continued after
// short writes, then fdatasync), and through the ring for the secondary's record writes
// (an O_DIRECT write continued after short completions, then IORING_FSYNC_DATASYNC; one
// RWF_DSYNC write instead where Volume.honoursDSyncWrites: some filesystems (FUSE) complete
// such writes unsynced), as activity-log transactions are. Writes
// alternate between the two slots; one in flight at a time, the newest request queued.
// The dirty bitmap's area is written and read here too (blocking, see *Dirty bitmap*
// below), sealed by the superblock's `bitmap sealed` field, and the activity-log ring
// (blocking, see *Activity log*). Loop thread only.
import Glibc
import Logging
import TandemCore
import TandemIO

final class MetadataFile: IOHandler {
    private enum Tag: UInt32 { case write = 1, flush = 2 }
    /// Activity-log ring writes: `logTagBase` + 2 × their buffer, + 1 for the flush after.
    static let logTagBase: UInt32 = 16

    let path: String
    /// Where the file's byte 0 lies in `path`: 0 for an external file, the data area's end
    /// for internal metadata (MetadataInternalLayout; a multiple of 4096, for O_DIRECT).
    let baseOffsetBytes: UInt64
    var isInternal: Bool { baseOffsetBytes > 0 }
    let volume: Volume
    let loop: EventLoop
    private let buffer: UnsafeMutableRawPointer
    /// The activity-log slot being written or read by the blocking calls (its own: a
    /// superblock ring write may be in flight).
    let activityLogBuffer: UnsafeMutableRawPointer
    /// The newest transaction known to be in the ring (read at `readActivityLog`, then written).
    var activityLogNewest: UInt64 = 0
    /// The transactions being written through the ring (`writeActivityLogAsync`), each in a
    /// buffer of its own (`ActivityLogRing.transactionsInFlightMax` of them, one after the
    /// other), with how many of its bytes are written; nil: the buffer is free.
    let activityLogRingBuffers: UnsafeMutableRawPointer
    var logInFlight: [LogWrite?] = Array(repeating: nil, count: ActivityLogRing.transactionsInFlightMax)
    /// Transactions asked for while every buffer was in flight (a new session's, while the
    /// stopped session's last ones are still being written), in order.
    var logQueued: [(ActivityLogTransaction, (Int32) -> Void)] = []
    private(set) var handlerID: UInt32 = 0
    /// The newest superblock on stable storage.
    private(set) var superblock: MetadataSuperblock
    private(set) var inFlight: MetadataSuperblock?
    private var writtenBytes = 0
    private var queued: MetadataSuperblock?
    /// Set here and by `resize` (MetadataFile+Resize) when a write fails.
    var failed = false
    private(set) var closed = false
    /// The bitmap area equals the persisted state of the bitmap last loaded from or
    /// written to it in this process: only then may a write skip the unchanged pages.
    var bitmapAreaMatches = false
    /// Runs on the loop when a ring write is stable.
    var onWritten: ((MetadataSuperblock) -> Void)?
    /// Runs once when a ring write fails (errno); nothing is written after that.
    var onFailed: ((Int32) -> Void)?
    /// Waiting for a superblock state to be durable (`whenDurable`): each is asked at every
    /// ring write that becomes stable (true: done, removed) and told nil if the file fails.
    private var durableWaiters: [(MetadataSuperblock?) -> Bool] = []

    /// Opens a file whose superblock was already proven (`MetadataStore.open`).
    init(path: String, baseOffsetBytes: UInt64 = 0, superblock: MetadataSuperblock, loop: EventLoop,
         logger: Logger) throws(IOError) {
        self.path = path
        self.baseOffsetBytes = baseOffsetBytes
        self.superblock = superblock
        self.loop = loop
        volume = try Volume(path: path, createSizeBytes: nil, logger: logger)
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, MetadataGeometry.slotBytes) == 0)
        buffer = memory!
        precondition(posix_memalign(&memory, 4096, MetadataGeometry.slotBytes) == 0)
        activityLogBuffer = memory!
        precondition(posix_memalign(&memory, 4096, MetadataGeometry.slotBytes * ActivityLogRing.transactionsInFlightMax) == 0)
        activityLogRingBuffers = memory!
        handlerID = loop.register(self)
    }

    deinit {
        free(buffer)
        free(activityLogBuffer)
        free(activityLogRingBuffers)
    }

    /// disk_timeout_ms for this file's ring writes and flushes (Volume.ioTimeoutNs); the
    /// blocking writes of the rare transitions are not watched (they hold the loop anyway).
    func watchIO(timeoutNs: UInt64, onOverdue: @escaping (VolumeOperation, UInt64, UInt64) -> Void) {
        volume.ioTimeoutNs = timeoutNs
        volume.onIOOverdue = onOverdue
    }

    /// Stops taking writes; one in flight finishes first.
    func close() {
        guard !closed else { return }
        closed = true
        queued = nil
        let waiters = durableWaiters
        durableWaiters = []
        for waiter in waiters { _ = waiter(nil) }
        onWritten = nil
        if inFlight == nil && !logWriting { loop.unregister(handlerID) }
    }

    /// A ring write is in flight or queued.
    var isWriting: Bool { inFlight != nil || queued != nil }

    /// The superblock as it will be once every requested write is done.
    var latest: MetadataSuperblock { queued ?? inFlight ?? superblock }

    /// Changes the latest superblock and writes it: synchronously when no ring write is
    /// under way (the change is durable on return), else queued behind it.
    func update(_ change: (inout MetadataSuperblock) -> Void) throws(IOError) {
        var next = latest
        change(&next)
        if isWriting { return writeAsync(next) }
        try writeNow(next)
    }

    /// Writes `next` synchronously (sequence bumped). Precondition: no ring write under way.
    func writeNow(_ next: MetadataSuperblock) throws(IOError) {
        precondition(!isWriting, "a synchronous metadata write beside a ring write")
        guard !closed, !failed else { throw IOError(errno: EIO, "write \(path): the metadata file failed earlier") }
        let sealed = prepare(next)
        do {
            try MetadataFileIO.writeAll(fd: volume.fd, UnsafeRawBufferPointer(start: buffer, count: MetadataGeometry.slotBytes),
                                        offset: slotOffset(sealed), path: path)
            try MetadataFileIO.dataSync(fd: volume.fd, path: path)
        } catch {
            failed = true
            throw error
        }
        superblock = sealed
    }

    /// Writes `next` through the ring after the one in flight; `onWritten` follows.
    func writeAsync(_ next: MetadataSuperblock) {
        guard !closed, !failed else { return }
        guard inFlight == nil else { queued = next; return }
        inFlight = prepare(next)
        queued = nil
        writtenBytes = 0
        submitWrite()
    }

    private func prepare(_ next: MetadataSuperblock) -> MetadataSuperblock {
        var sealed = next
        sealed.sequence = superblock.sequence + 1
        let bytes = MetadataSuperblockCodec.encode(sealed)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: MetadataGeometry.slotBytes) }
        return sealed
    }

    private func slotOffset(_ sealed: MetadataSuperblock) -> UInt64 {
        baseOffsetBytes + UInt64(sealed.slot * MetadataGeometry.slotBytes)
    }

    /// A record write is one RWF_DSYNC write where the filesystem honours it, as a log
    /// transaction is: the secondary's DurableAck waits for it, and the loop turn between a
    /// plain write and its flush is part of an async pair's RPO (docs/replication.md, *Group
    /// commit*).
    private var recordWritesDSync: Bool { volume.honoursDSyncWrites }

    private func submitWrite() {
        let offset = slotOffset(inFlight!) + UInt64(writtenBytes)
        loop.prepareVolumeIO(write: true, volume: volume, buffer: buffer + writtenBytes,
                             length: MetadataGeometry.slotBytes - writtenBytes, offset: offset, dsync: recordWritesDSync,
                             handler: handlerID, tag: Tag.write.rawValue)
    }

    func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        if tag >= Self.logTagBase { return activityLogIOCompleted(tag: tag, result: result) }
        if result == -EINTR || result == -EAGAIN {
            // Interrupted: submit the same operation again.
            return tag == Tag.write.rawValue ? submitWrite() : loop.prepareFlush(volume: volume, handler: handlerID, tag: tag)
        }
        guard result >= 0, !(tag == Tag.write.rawValue && result == 0) else { return fail(result < 0 ? -result : EIO) }
        if tag == Tag.write.rawValue {
            writtenBytes += Int(result)
            if writtenBytes < MetadataGeometry.slotBytes { return submitWrite() }  // a short write: the rest
            if !recordWritesDSync { return loop.prepareFlush(volume: volume, handler: handlerID, tag: Tag.flush.rawValue) }
        }
        superblock = inFlight!
        inFlight = nil
        durableWaiters.removeAll { $0(superblock) }
        if closed { return !logWriting ? loop.unregister(handlerID) : () }
        onWritten?(superblock)
        if let queued { writeAsync(queued) }
    }

    // MARK: Dirty bitmap (docs/metadata.md, *Bitmap validity*)
    //
    // Ordering: the pages of a bitmap are durable (pwrite, fdatasync) before the superblock
    // that seals them is written; the seal is cleared durably before any page changes and
    // before the first volume write the sealed bitmap would not cover (`invalidateBitmap`).
    // Blocking and synchronous, like `writeNow`: not beside a ring write.

    /// The bitmap area is sealed: it covers every write of this copy (`loadBitmap` gives it).
    var bitmapSealed: Bool { superblock.bitmapSealed }

    /// The sealed bitmap, every page proven (CRC, index, resource tag, sequence, bits inside
    /// the volume); nil when the superblock does not seal one (no bitmap: the caller cannot
    /// know which blocks differ). Throws, naming the file and the page, when a page cannot be
    /// proven; never returns a clear page it could not read. Reading changes nothing.
    func loadBitmap() throws(MetadataBitmapError) -> DirtyBitmap? {
        guard superblock.bitmapSealed else { return nil }
        let bitmap = try MetadataBitmapIO.readPages(fd: volume.fd, path: path, baseOffsetBytes: baseOffsetBytes,
                                                    superblock: superblock)
        bitmapAreaMatches = true
        return bitmap
    }

    /// Writes the pages of `bitmap` changed since they were last persisted (every page when
    /// the area is not known to hold this bitmap's persisted state: the first write after
    /// open, or after a failure), then fdatasync, then records them persisted in `bitmap`.
    /// A sealed area is unsealed durably before a page is written: pages never change under
    /// a seal. Does not seal (`sealBitmap` does). Returns the pages written (0: the area
    /// already holds the bitmap; a seal then stays). `bitmap` must be the one last loaded
    /// from or written to this file, or one the file has not seen (every page is written).
    @discardableResult
    func writeBitmap(_ bitmap: inout DirtyBitmap) throws(IOError) -> Int {
        precondition(BitmapAreaCodec.fits(bitmap, superblock), "a bitmap of another geometry than \(path)'s")
        precondition(!isWriting, "a bitmap write beside a ring write")
        guard !closed, !failed else { throw IOError(errno: EIO, "write \(path): the metadata file failed earlier") }
        try dropLackingRegionsMark()
        let all = !bitmapAreaMatches
        guard all || bitmap.dirtyPageCount > 0 else { return 0 }  // the area already holds it
        try invalidateBitmap()
        bitmapAreaMatches = false
        let written: Int
        do {
            written = try MetadataBitmapIO.writePages(bitmap, all: all, fd: volume.fd, path: path, baseOffsetBytes: baseOffsetBytes,
                                                      superblock: superblock, sequence: superblock.sequence)
            try MetadataFileIO.dataSync(fd: volume.fd, path: path)
        } catch {
            failed = true
            throw error
        }
        // Synchronous on the loop: no bit changed since the pages were encoded.
        var page = all ? 0 : bitmap.nextDirtyPage(from: 0)
        while let current = page {
            bitmap.pagePersisted(current, version: bitmap.pageVersion(current))
            page = all ? (current + 1 < bitmap.pageCount ? current + 1 : nil) : bitmap.nextDirtyPage(from: current + 1)
        }
        bitmapAreaMatches = true
        return written
    }

    /// The activity log's page writes during a primary session: `pages` of `bitmap` (nil:
    /// every page) with the blocks of `alsoSet` set too, then fdatasync, before returning. The
    /// area is unsealed first if sealed (the start record normally cleared the seal). The area
    /// no longer holds any bitmap's persisted state: the next `writeBitmap` writes every page.
    func writeBitmapPages(_ bitmap: DirtyBitmap, pages: [Int]?, alsoSet: [BlockRun]) throws(IOError) {
        precondition(BitmapAreaCodec.fits(bitmap, superblock), "a bitmap of another geometry than \(path)'s")
        guard !closed, !failed else { throw IOError(errno: EIO, "write \(path): the metadata file failed earlier") }
        try dropLackingRegionsMark()
        try writeAreaPages(bitmap, pages: pages, alsoSet: alsoSet)
    }

    // MARK: Diskless regions (issue 13 §4; Resource+DisklessRegions)
    //
    // With `local-lacks-writes`, the mark `local-lacking-regions` says the area's pages hold
    // the regions this disk lacks. The peer's bitmap (a seal, the activity log's pages) is
    // written over the same pages: the mark goes first, durably (a restart then pulls the whole
    // volume, never fewer regions than were written through the peer).

    /// Writes `pages` of the lacking set `bitmap` (nil: every page) and makes them durable.
    /// The mark is the caller's (a superblock write after the pages, for a fresh record).
    func writeLackingPages(_ bitmap: DirtyBitmap, pages: [Int]?) throws(IOError) {
        precondition(BitmapAreaCodec.fits(bitmap, superblock), "a bitmap of another geometry than \(path)'s")
        guard !closed, !failed else { throw IOError(errno: EIO, "write \(path): the metadata file failed earlier") }
        try writeAreaPages(bitmap, pages: pages, alsoSet: [])
    }

    /// The area stops holding the lacking regions (before the peer's pages are written there).
    private func dropLackingRegionsMark() throws(IOError) {
        guard superblock.flags.contains(.localLackingRegions) else { return }
        var next = latest
        next.flags.remove(.localLackingRegions)
        try writeNow(next)
    }

    private func writeAreaPages(_ bitmap: DirtyBitmap, pages: [Int]?, alsoSet: [BlockRun]) throws(IOError) {
        if superblock.bitmapSealed { try invalidateBitmap() }
        bitmapAreaMatches = false
        do {
            _ = try MetadataBitmapIO.writeSelectedPages(bitmap, pages: pages, alsoSet: alsoSet, fd: volume.fd, path: path,
                                                        baseOffsetBytes: baseOffsetBytes, superblock: superblock,
                                                        sequence: superblock.sequence)
            try MetadataFileIO.dataSync(fd: volume.fd, path: path)
        } catch {
            failed = true
            throw error
        }
    }

    /// The pages the activity log persisted (a crash restart whose newest transaction says
    /// they count): every page proven as `loadBitmap` proves them, except against a seal.
    func loadUnsealedBitmap() throws(MetadataBitmapError) -> DirtyBitmap {
        try MetadataBitmapIO.readPages(fd: volume.fd, path: path, baseOffsetBytes: baseOffsetBytes, superblock: superblock,
                                       sealed: false)
    }

    /// The clean stop: writes `bitmap` (`writeBitmap`) and then the superblock that seals
    /// it, each durable before the next step. Already sealed with no page changed: nothing.
    func sealBitmap(_ bitmap: inout DirtyBitmap, bases: [CatchUpBase] = []) throws(IOError) {
        if try writeBitmap(&bitmap) == 0 && superblock.bitmapSealed && superblock.catchUpBases == bases { return }
        var sealed = superblock
        sealed.bitmapSealedSequence = superblock.sequence
        sealed.catchUpBases = bases
        try writeNow(sealed)
    }

    /// Clears the seal durably (a superblock write); nothing if not sealed. Call before the
    /// first volume write that the sealed bitmap would not cover.
    func invalidateBitmap() throws(IOError) {
        guard superblock.bitmapSealed else { return }
        var next = latest
        next.bitmapSealedSequence = 0
        next.catchUpBases = []
        try writeNow(next)
    }

    /// Runs `action(true)` once a superblock for which `reached` holds is stable (at once if
    /// the stable one does), `action(false)` if the file fails first.
    func whenDurable(_ reached: @escaping (MetadataSuperblock) -> Bool, _ action: @escaping (Bool) -> Void) {
        if reached(superblock) { return action(true) }
        guard !failed, !closed else { return action(false) }
        durableWaiters.append { stable in
            guard let stable else { action(false); return true }
            guard reached(stable) else { return false }
            action(true)
            return true
        }
    }

    private func fail(_ code: Int32) {
        failed = true
        inFlight = nil
        queued = nil
        let waiters = durableWaiters
        durableWaiters = []
        for waiter in waiters { _ = waiter(nil) }
        if closed { return loop.unregister(handlerID) }
        onFailed?(code)
    }
}
