// MetadataFile's activity-log ring (docs/metadata.md, *Activity-log transaction*). Transaction
// t goes to ring slot t % `AL slots` with one 4 KiB write and a data sync: blocking for a
// session's start transaction (and the slots settled before it), through the io_uring ring for
// the node's own (`writeActivityLogAsync`), up to `ActivityLogRing.transactionsInFlightMax` at
// once, each in a buffer of its own. Which transactions may be in flight together is the
// node's decision (ActivityLog); here they are only written. Beside a superblock ring write is
// fine (another buffer, another offset). Loop thread only.
import Glibc
import TandemCore
import TandemIO

extension MetadataFile {
    /// An activity-log transaction being written through the ring.
    struct LogWrite {
        var transaction: UInt64
        var offset: UInt64
        var writtenBytes: Int
        var done: (Int32) -> Void
    }

    /// A ring write of the activity log is in flight.
    var logWriting: Bool { logInFlight.contains { $0 != nil } }

    private func readActivityLogSlots() throws(IOError) -> [[UInt8]] {
        let geometry = superblock.geometry
        var slots: [[UInt8]] = []
        for slot in 0..<geometry.alSlots {
            // Into the aligned buffer: the file may be open with O_DIRECT.
            let offset = off_t(baseOffsetBytes + geometry.activityLogSlotOffset(slot))
            var done = 0
            while done < MetadataGeometry.slotBytes {
                let got = pread(volume.fd, activityLogBuffer + done, MetadataGeometry.slotBytes - done, offset + off_t(done))
                if got < 0 && errno == EINTR { continue }
                guard got >= 0 else { throw IOError(errno: errno, "read \(path)") }
                if got == 0 { break }
                done += got
            }
            slots.append(Array(UnsafeRawBufferPointer(start: activityLogBuffer, count: done)))
        }
        return slots
    }

    /// Reads every ring slot and proves the newest transaction (ActivityLogRing); remembers its
    /// number so that new transactions follow it. Changes nothing on disk.
    func readActivityLog() throws(IOError) -> Result<ActivityLogTransaction?, ActivityLogRing.ProofError> {
        let proven = ActivityLogRing.newest(try readActivityLogSlots(), resourceUUID: superblock.resourceUUID,
                                            extentsMax: ActivityLogTransaction.extentsMax)
        if case .success(let newest) = proven { activityLogNewest = newest?.transaction ?? 0 }
        return proven
    }

    /// Before a session's first transaction: the slots of the transactions a crash left
    /// unfinished before the ring's newest (`ActivityLogRing.unsettled`) are written with the
    /// newest's copy under their own numbers, durably, so that the proof still holds once newer
    /// transactions move its window past them. Returns their numbers (none: nothing written).
    func settleActivityLog() throws(IOError) -> [UInt64] {
        guard !logWriting else { return [] }
        let slots = try readActivityLogSlots()
        let uuid = superblock.resourceUUID
        guard case .success(let newest?) = ActivityLogRing.newest(slots, resourceUUID: uuid,
                                                                    extentsMax: ActivityLogTransaction.extentsMax)
        else { return [] }
        let unsettled = ActivityLogRing.unsettled(slots, newest: newest.transaction, resourceUUID: uuid,
                                                  extentsMax: ActivityLogTransaction.extentsMax)
        for number in unsettled { try writeActivityLog(ActivityLogRing.sealed(newest, as: number)) }
        return unsettled
    }

    /// Zeroes every ring slot durably (a ring that proves nothing is not written over: new
    /// transactions then start again from 1 in an empty ring).
    func resetActivityLog() throws(IOError) {
        guard !closed, !failed else { throw IOError(errno: EIO, "write \(path): the metadata file failed earlier") }
        memset(activityLogBuffer, 0, MetadataGeometry.slotBytes)
        try writeBufferDurably(toSlots: 0..<superblock.geometry.alSlots)
        activityLogNewest = 0
    }

    /// The number the next transaction takes: past the newest in the ring and past those still
    /// being written through it (whose slots must not be written twice at once).
    var activityLogNext: UInt64 {
        var newest = activityLogNewest
        for entry in logInFlight { if let entry { newest = max(newest, entry.transaction) } }
        for (transaction, _) in logQueued { newest = max(newest, transaction.transaction) }
        return newest + 1
    }

    /// Writes `transaction` to its slot and makes it durable before returning.
    func writeActivityLog(_ transaction: ActivityLogTransaction) throws(IOError) {
        guard !closed, !failed else { throw IOError(errno: EIO, "write \(path): the metadata file failed earlier") }
        let bytes = transaction.encode()
        bytes.withUnsafeBytes { activityLogBuffer.copyMemory(from: $0.baseAddress!, byteCount: MetadataGeometry.slotBytes) }
        let slot = UInt32(transaction.transaction % UInt64(superblock.geometry.alSlots))
        try writeBufferDurably(toSlots: slot..<(slot + 1))
        activityLogNewest = max(activityLogNewest, transaction.transaction)
    }

    /// The blocking buffer's 4 KiB to each of `slots`, then a data sync; a failure fails the file.
    private func writeBufferDurably(toSlots slots: Range<UInt32>) throws(IOError) {
        do {
            for slot in slots {
                try MetadataFileIO.writeAll(fd: volume.fd, UnsafeRawBufferPointer(start: activityLogBuffer, count: MetadataGeometry.slotBytes),
                                            offset: baseOffsetBytes + superblock.geometry.activityLogSlotOffset(slot), path: path)
            }
            try MetadataFileIO.dataSync(fd: volume.fd, path: path)
        } catch {
            failed = true
            throw error
        }
    }

    /// Writes `transaction` to its slot through the ring (an O_DIRECT write continued after
    /// short completions, then IORING_FSYNC_DATASYNC), so the loop serves other work while the
    /// disk makes it durable; `done` runs on the loop with 0 once it is durable, or the errno.
    /// Up to `ActivityLogRing.transactionsInFlightMax` at once, answered in whatever order the
    /// disk finishes them; more (a new session's, while the stopped session's are still being
    /// written) wait for a buffer.
    func writeActivityLogAsync(_ transaction: ActivityLogTransaction, done: @escaping (Int32) -> Void) {
        guard let buffer = logInFlight.firstIndex(where: { $0 == nil }) else { return logQueued.append((transaction, done)) }
        guard !closed, !failed else { return done(EIO) }
        let offset = baseOffsetBytes
            + superblock.geometry.activityLogSlotOffset(UInt32(transaction.transaction % UInt64(superblock.geometry.alSlots)))
        precondition(!logInFlight.contains { $0?.offset == offset }, "two activity-log writes to one slot at once")
        let bytes = transaction.encode()
        bytes.withUnsafeBytes {
            logBuffer(buffer).copyMemory(from: $0.baseAddress!, byteCount: MetadataGeometry.slotBytes)
        }
        logInFlight[buffer] = LogWrite(transaction: transaction.transaction, offset: offset, writtenBytes: 0, done: done)
        submitLogWrite(buffer)
    }

    private func logBuffer(_ buffer: Int) -> UnsafeMutableRawPointer {
        activityLogRingBuffers + buffer * MetadataGeometry.slotBytes
    }

    /// A transaction is one RWF_DSYNC write where the filesystem honours it (the kernel
    /// flushes on completion: no second trip through the loop between the write and the
    /// flush, which a loaded loop delays), else a write and then IORING_FSYNC_DATASYNC.
    private var logWritesDSync: Bool { volume.honoursDSyncWrites }

    private func submitLogWrite(_ buffer: Int) {
        let entry = logInFlight[buffer]!
        loop.prepareVolumeIO(write: true, volume: volume, buffer: logBuffer(buffer) + entry.writtenBytes,
                             length: MetadataGeometry.slotBytes - entry.writtenBytes,
                             offset: entry.offset + UInt64(entry.writtenBytes), dsync: logWritesDSync,
                             handler: handlerID, tag: Self.logTagBase + 2 * UInt32(buffer))
    }

    private func submitLogFlush(_ buffer: Int) {
        loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.logTagBase + 2 * UInt32(buffer) + 1)
    }

    func activityLogIOCompleted(tag: UInt32, result: Int32) {
        let buffer = Int((tag - Self.logTagBase) / 2)
        let isWrite = (tag - Self.logTagBase) % 2 == 0
        guard buffer < logInFlight.count, var entry = logInFlight[buffer] else {
            preconditionFailure("an activity-log completion with none in flight")
        }
        if result == -EINTR || result == -EAGAIN {
            // Interrupted: the same operation again.
            return isWrite ? submitLogWrite(buffer) : submitLogFlush(buffer)
        }
        var code: Int32 = result < 0 ? -result : 0
        if isWrite && code == 0 {
            if result == 0 { code = EIO } else {
                entry.writtenBytes += Int(result)
                logInFlight[buffer] = entry
                if entry.writtenBytes < MetadataGeometry.slotBytes { return submitLogWrite(buffer) }  // a short write: the rest
                if !logWritesDSync { return submitLogFlush(buffer) }
            }
        }
        logInFlight[buffer] = nil
        if code == 0 {
            activityLogNewest = max(activityLogNewest, entry.transaction)
        } else {
            failed = true
        }
        if !logQueued.isEmpty {
            let (next, nextDone) = logQueued.removeFirst()
            writeActivityLogAsync(next, done: nextDone)
        }
        if closed && inFlight == nil && !logWriting { loop.unregister(handlerID) }
        entry.done(code)
    }
}
