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
    /// An activity-log transaction the node asked for and the disk has not yet finished.
    struct ActivityLogWrite {
        var transaction: UInt64
        var extents: [UInt32]
        var bases: [CatchUpBase]
        var bitmapPagesCount: Bool
        /// When the node asked for it (its latency's start).
        var startedNs: UInt64
        /// The volume flush before it is in flight.
        var flushing: Bool
    }

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
            let slot = retained.retainCopyChunk(offset: write.offsetBytes, length: length, sequence: write.sequence)
            trace.copyAdmitted(slot: slot, sequence: write.sequence)
            return
        }
        let slot = retained.slot(write.sequence)
        retained[slot: slot].offset = write.offsetBytes
        retained[slot: slot].fua = write.fua
        retained[slot: slot].doneBytes = 0
        // A held write's wait starts now (`issueHeld` records it; `submitLocalIO` restamps).
        if issue { submitLocalIO(slot) } else { retained[slot: slot].localSubmittedNs = MonotonicClock.nowNs() }
    }

    /// A held write's transaction is durable: its wait is counted and its local write issued.
    func issueHeld(_ sequence: WriteSequence) {
        let slot = retained.slot(sequence)
        counters.activityLogHoldLatency.record(since: retained[slot: slot].localSubmittedNs)
        submitLocalIO(slot)
    }

    /// Writes activity-log transaction `number` through the resource's metadata file, durable
    /// before it is answered, all through the ring: the loop goes on serving reads, acks and
    /// the writes of extents already logged meanwhile, and the misses that arrive join a later
    /// transaction (group commit; the node has up to `transactionsInFlightMax` in flight and
    /// says which may go together). A transaction the node says drops an extent whose writes
    /// are not known stable flushes the volume first: they are then on stable storage before
    /// it is written. Each is answered when the disk finishes it, in any order.
    func writeActivityLog(_ number: UInt64, extents: [UInt32], bases: [CatchUpBase], flushVolumeFirst: Bool,
                          bitmapPagesCount: Bool) {
        guard let index = activityLogWrites.firstIndex(where: { $0 == nil }) else {
            preconditionFailure("more activity-log transactions in flight than \(activityLogWrites.count)")
        }
        counters.activityLogWrites += 1
        if activityLogWrites.contains(where: { $0 != nil }) { counters.activityLogOverlappingWrites += 1 }
        activityLogWrites[index] = ActivityLogWrite(
            transaction: number, extents: extents, bases: bases, bitmapPagesCount: bitmapPagesCount,
            startedNs: MonotonicClock.nowNs(), flushing: flushVolumeFirst)
        guard flushVolumeFirst else { return submitActivityLog(index) }
        counters.activityLogVolumeFlushes += 1
        context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.activityLogFlushTagBase | UInt32(index))
    }

    /// A volume flush before an activity-log transaction is in flight.
    var activityLogVolumeFlushing: Bool { activityLogWrites.contains { $0?.flushing == true } }

    /// The volume flush before the transaction of entry `index` completed.
    func activityLogVolumeFlushed(_ index: Int, result: Int32) {
        if result == -EINTR || result == -EAGAIN {
            return context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.activityLogFlushTagBase | UInt32(index))
        }
        activityLogWrites[index]?.flushing = false
        if unregisterAfterActivityLogFlush && !activityLogVolumeFlushing {
            unregisterAfterActivityLogFlush = false
            context.loop.unregister(handlerID)
        }
        guard result >= 0 else {
            health.record("flush", errno: -result)
            return activityLogAnswered(index, errno: -result)
        }
        submitActivityLog(index)
    }

    private func submitActivityLog(_ index: Int) {
        guard let entry = activityLogWrites[index], let write = onWriteActivityLog else {
            return activityLogAnswered(index, errno: EIO)
        }
        write(entry.transaction, entry.extents, entry.bases, entry.bitmapPagesCount) { [weak self] code in
            self?.activityLogAnswered(index, errno: code)
        }
    }

    private func activityLogAnswered(_ index: Int, errno code: Int32) {
        guard let entry = activityLogWrites[index] else { return }
        activityLogWrites[index] = nil
        counters.activityLogLatency.record(since: entry.startedNs)
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
        if trace.enabled { trace.copyReadSubmitted(slot: slot, at: context.loop.traceStamp()) }
        context.loop.prepareVolumeIO(write: false, volume: volume, buffer: pointer, length: Int(length),
                                     offset: offset, dsync: false, handler: handlerID, tag: Self.copyReadTagBase | UInt32(slot))
    }

    func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        switch tag {
        case Self.flushTag:
            feed(.localFlushDone(errno: result < 0 ? -result : 0))
        case let tag where tag & ~UInt32(0xF) == Self.activityLogFlushTagBase:
            activityLogVolumeFlushed(Int(tag & 0xF), result: result)
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
            if trace.enabled { trace.copyReadCompleted(slot: slot, at: context.loop.traceStamp()) }
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
