// PrimaryReplicator's local I/O: the node's writes, flushes and full-copy reads on the ring,
// and their results fed back as node events. I/O mechanics stay here: a write interrupted
// (EINTR/EAGAIN) or short (e.g. the file system ran out of space part way) is continued from
// where it stopped, and fails with the disk's own errno if it must; a FUA write on a volume
// whose RWF_DSYNC is not trusted is followed by a flush before it counts as done. The node
// sees only the final result of each operation.
import Glibc
import TandemCore
import TandemIO

extension PrimaryReplicator {
    /// Keeps the payload of an admitted write under its sequence and writes it locally
    /// (`issue`; else `.issueLocalWrite` does, once the activity log names its extents).
    func writeLocal(_ write: LocalWrite, issue: Bool = true) {
        let length = Int(write.lengthBytes)
        switch write.source {
        case .request(let id):
            guard let mutation = requests[Int(id)].mutation else { preconditionFailure("write for a free request") }
            if trace.enabled && requests[Int(id)].traceStamp.isSet {
                trace.begin(write.sequence, at: requests[Int(id)].traceStamp).pointee.local = context.loop.traceStamp()
            }
            if let buffer = mutation.takeBufferIfSpare() {
                retained.retainLent(buffer, length: length, sequence: write.sequence)
            } else {
                retained.retainCopy(of: mutation.buffer!, length: length, sequence: write.sequence)
            }
        case .zeroes:
            retained.retainShared(zeros, length: length, sequence: write.sequence)
        case .copyChunk:
            // Just read from this volume: nothing to write locally.
            retained.retainCopyChunk(offset: write.offsetBytes, length: length, sequence: write.sequence)
            return
        }
        let slot = retained.slot(write.sequence)
        retained[slot: slot].offset = write.offsetBytes
        retained[slot: slot].fua = write.fua
        retained[slot: slot].doneBytes = 0
        if issue { submitLocalIO(slot) }
    }

    /// Writes activity-log transaction `number` through the resource's metadata file, durable
    /// before it is answered, all through the ring: the loop goes on serving reads, acks and
    /// the writes of extents already logged meanwhile, and the misses that arrive join the
    /// next transaction (group commit; the node forms one at a time). An evicting transaction
    /// flushes the volume first: the leaving extent's writes are then on stable storage
    /// before no transaction names them.
    func writeActivityLog(_ number: UInt64, extents: [UInt32], bases: [CatchUpBase], flushVolumeFirst: Bool,
                          bitmapPagesCount: Bool) {
        precondition(activityLogWriting == nil, "two activity-log transactions in flight")
        counters.activityLogWrites += 1
        activityLogStartedNs = MonotonicClock.nowNs()
        activityLogWriting = (number, extents, bases, bitmapPagesCount)
        guard flushVolumeFirst else { return submitActivityLog() }
        counters.activityLogVolumeFlushes += 1
        activityLogVolumeFlushing = true
        context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.activityLogFlushTag)
    }

    /// The volume flush before an evicting transaction completed.
    func activityLogVolumeFlushed(result: Int32) {
        if result == -EINTR || result == -EAGAIN {
            return context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.activityLogFlushTag)
        }
        activityLogVolumeFlushing = false
        if unregisterAfterActivityLogFlush {
            unregisterAfterActivityLogFlush = false
            context.loop.unregister(handlerID)
        }
        guard result >= 0 else {
            health.record("flush", errno: -result)
            return activityLogAnswered(errno: -result)
        }
        submitActivityLog()
    }

    private func submitActivityLog() {
        guard let entry = activityLogWriting, let write = onWriteActivityLog else { return activityLogAnswered(errno: EIO) }
        write(entry.transaction, entry.extents, entry.bases, entry.bitmapPagesCount) { [weak self] code in
            self?.activityLogAnswered(errno: code)
        }
    }

    private func activityLogAnswered(errno code: Int32) {
        guard let entry = activityLogWriting else { return }
        activityLogWriting = nil
        counters.activityLogLatency.record(since: activityLogStartedNs)
        // A stopped node waits for nothing any more (its held writes were answered by the stop).
        guard !isStopped else { return }
        feed(.activityLogWritten(transaction: entry.transaction, errno: code))
    }

    /// Writes the bitmap pages the activity log asks for (encoded now, from the node's bitmap)
    /// durably, synchronously on the loop (rare: evictions of extents with bits set).
    func persistBitmapPages(_ ticket: UInt64, pages: [Int]?, alsoSet: [BlockRun]) {
        let code = onPersistBitmapPages?(node.bitmap, pages, alsoSet) ?? EIO
        feed(.bitmapPagesPersisted(ticket: ticket, errno: code))
    }

    /// Writes what is left of a retained write (all of it, or the rest after a short write).
    func submitLocalIO(_ slot: Int) {
        retained[slot: slot].localSubmittedNs = MonotonicClock.nowNs()
        let entry = retained[slot: slot]
        context.loop.prepareVolumeIO(write: true, volume: volume, buffer: entry.pointer + entry.doneBytes,
                                     length: entry.length - entry.doneBytes, offset: entry.offset + UInt64(entry.doneBytes),
                                     dsync: entry.fua && volume.honoursDSyncWrites, handler: handlerID, tag: UInt32(slot))
    }

    func readCopyChunk(offset: UInt64, length: UInt32) {
        let (slot, pointer) = retained.copies.reserve(offset: offset)
        copyReads[slot] = (offset, length)
        context.loop.prepareVolumeIO(write: false, volume: volume, buffer: pointer, length: Int(length),
                                     offset: offset, dsync: false, handler: handlerID, tag: Self.copyReadTagBase | UInt32(slot))
    }

    func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        switch tag {
        case Self.flushTag:
            feed(.localFlushDone(errno: result < 0 ? -result : 0))
        case Self.activityLogFlushTag:
            activityLogVolumeFlushed(result: result)
        case Self.pullFlushTag:
            pullFlushCompleted(result: result)  // diskless (PrimaryReplicator+Diskless)
        case let tag where tag & 0xFFFF_0000 == Self.pullWriteTagBase:
            pullWritten(slot: Int(tag & 0xFFFF), result: result)
        case let tag where tag & 0xFFFF_0000 == Self.verifyReadTagBase:
            verifyReadCompleted(slot: Int(tag & 0xFFFF), result: result)
        case let tag where tag & 0xFFFF_0000 == Self.copyReadTagBase:
            let slot = Int(tag & 0xFFFF)
            guard let (offset, length) = copyReads[slot] else { preconditionFailure("a copy read nobody asked for") }
            copyReads[slot] = nil
            let errno = result == Int32(length) ? 0 : (result < 0 ? -result : EIO)
            feed(.copyChunkRead(offsetBytes: offset, lengthBytes: length, errno: errno))
        case let tag where tag & Self.fuaFlushBit != 0:
            let slot = Int(tag & ~Self.fuaFlushBit)
            feed(.localWriteDone(sequence: retained[slot: slot].sequence, errno: result < 0 ? -result : 0))
        default:
            let slot = Int(tag)
            let entry = retained[slot: slot]
            let left = entry.length - entry.doneBytes
            if result == -EINTR || result == -EAGAIN || (result > 0 && Int(result) < left) {
                if result > 0 { retained[slot: slot].doneBytes += Int(result) }
                return submitLocalIO(slot)
            }
            if result <= 0 {
                return feed(.localWriteDone(sequence: entry.sequence, errno: result == 0 ? EIO : -result))
            }
            counters.localWriteLatency.record(since: entry.localSubmittedNs)
            if trace.enabled, let stamps = trace.existingStamps(entry.sequence) {
                trace.record(.write, .local, from: stamps.pointee.local, to: context.loop.traceStamp())
            }
            if entry.fua && !volume.honoursDSyncWrites {
                // The write is done but not known durable: flush before it counts as complete.
                return context.loop.prepareFlush(volume: volume, handler: handlerID, tag: UInt32(slot) | Self.fuaFlushBit)
            }
            feed(.localWriteDone(sequence: entry.sequence, errno: 0))
        }
    }
}
