// SecondaryReplicator's I/O mechanics: payload buffers (restored before the node sees a new
// write, none for a duplicate; a payload the link placed in a pool buffer is adopted as it
// is, once its CRC32C matches), the volume writes and flushes the node asks for (a short or
// interrupted transfer is continued here; the final result goes to the node), and the
// group-commit timer. Loop thread only.
import CURing
import Glibc
import Logging
import TandemCore
import TandemIO

extension SecondaryReplicator {
    /// A Data frame: the node says whether it is a new write (restore its payload), a
    /// duplicate (no payload needed), one with no room yet (the link holds it and stops
    /// reading until a write completes: `resumeIfRoom`) or neither.
    func receiveData(_ data: WireData, link: PeerLink) {
        let header = data.header
        let message = Self.message(header)
        switch peekNode({ $0.classify(message) }) {
        case .ignore:
            return
        case .wait:
            return link.pauseDelivery(holding: .data(data))
        case .duplicate, .violation:
            return feed(.data(message))  // the node re-acknowledges, or closes the link
        case .new:
            break
        }
        if counters.trace.enabled { _ = counters.trace.begin(header.sequence, at: context.loop.traceStamp()) }
        let slot = Int(header.sequence % UInt64(received.count))
        // The node queues fewer writes than there are slots, so a slot of a new write is free.
        guard received[slot] == nil else { return link.closeForViolation("protocol violation: too many writes queued") }
        if data.placedPayloadBytes != nil { return receivePlaced(header, link: link, slot: slot) }
        // Sized by what arrived, never by the claimed length alone: a compressed frame may
        // claim 32 MiB in a few bytes.
        let length: Int
        do throws(WirePayloadError) { length = try WirePayload.restoredBytes(header, payloadBytes: data.payload.count) } catch {
            return link.closeForViolation("refusing a Data frame: \(error)")
        }
        let entry = allocate(sequence: header.sequence, length: length)
        let destination = UnsafeMutableRawBufferPointer(start: entry.pointer, count: length)
        let failure: WirePayloadError? = data.payload.withUnsafeBytes { payload in
            do throws(WirePayloadError) { try WirePayload.restore(header, payload: payload, into: destination) } catch { return error }
            return nil
        }
        if let failure {
            release(entry)
            return link.closeForViolation("refusing a Data frame: \(failure)")
        }
        counters.receivedBytes += UInt64(length)
        received[slot] = entry
        feed(.data(message))
    }

    /// A new write whose payload the link decrypted straight into a pool buffer: adopted as
    /// its entry once its checksum (computed as it was decrypted) matches, with no copy.
    private func receivePlaced(_ header: WireDataHeader, link: PeerLink, slot: Int) {
        guard let payload = link.takePlacedPayload() else {
            preconditionFailure("a placed Data frame arrived without its payload")
        }
        let length = Int(header.lengthBytes)
        guard payload.crc32c == header.crc32c, payload.bytes == length else {
            context.loop.pool.release(payload.buffer)
            let error = WirePayloadError.checksumMismatch(
                expected: header.crc32c, computed: payload.crc32c, offsetBytes: header.offsetBytes)
            return link.closeForViolation("refusing a Data frame: \(error)")
        }
        counters.receivedBytes += UInt64(length)
        received[slot] = Received(sequence: header.sequence, pointer: payload.pointer, pooled: payload.buffer,
                                  length: length)
        feed(.data(Self.message(header)))
    }

    static func message(_ header: WireDataHeader) -> DataMessage {
        var flags: DataFlags = header.flags.contains(.fua) ? [.fua] : []
        if header.flags.contains(.acknowledgedAfterApply) { flags.insert(.acknowledgedAfterApply) }
        return DataMessage(epoch: header.epoch, sequence: header.sequence, offsetBytes: header.offsetBytes,
                           lengthBytes: header.lengthBytes, flags: flags)
    }

    private func allocate(sequence: WriteSequence, length: Int) -> Received {
        if let pooled = context.loop.pool.allocate(bytes: length) {
            return Received(sequence: sequence, pointer: pooled.pointer, pooled: pooled, length: length)
        }
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, max(length, 4096)) == 0 && memory != nil, "out of memory")
        return Received(sequence: sequence, pointer: memory!, pooled: nil, length: length)
    }

    func releaseEntry(_ entry: Received) { release(entry) }

    private func release(_ entry: Received) {
        if let pooled = entry.pooled { context.loop.pool.release(pooled) } else { free(entry.pointer) }
    }

    func releasePayloads() {
        for index in received.indices {
            if let entry = received[index] {
                free(entry.header)
                release(entry)
            }
            received[index] = nil
        }
    }

    // MARK: volume I/O

    func submit(_ write: SecondaryWrite) {
        let slot = Int(write.sequence % UInt64(received.count))
        guard let entry = received[slot], entry.sequence == write.sequence else {
            preconditionFailure("no payload for write \(write.sequence)")
        }
        received[slot]!.offsetBytes = write.offsetBytes
        if counters.trace.enabled, let stamps = counters.trace.existingStamps(write.sequence) {
            let now = context.loop.traceStamp()
            counters.trace.record(.write, .secondaryReceive, from: stamps.pointee.start, to: now)
            stamps.pointee.local = now
        }
        submitWrite(slot)
    }

    /// Writes what is left of a received write (all of it, or the rest after a short write).
    /// A staged write's payload goes to the journal after its header.
    func submitWrite(_ slot: Int) {
        let entry = received[slot]!
        ioInFlight += 1
        if entry.doneBytes == 0 { received[slot]!.submittedNs = MonotonicClock.nowNs() }
        var target = volume
        var offset = entry.offsetBytes
        if let journalOffset = entry.journalOffset, let journal {
            target = journal.file
            offset = journalOffset + UInt64(StagingJournalRecord.headerBytes)
        }
        context.loop.prepareVolumeIO(write: true, volume: target, buffer: entry.pointer + entry.doneBytes,
                                     length: entry.length - entry.doneBytes,
                                     offset: offset + UInt64(entry.doneBytes), dsync: false,
                                     handler: handlerID, tag: UInt32(slot))
    }

    func submitFlush() {
        ioInFlight += 1
        if counters.trace.enabled { traceFlushStamp = context.loop.traceStamp() }
        if let hold = Self.flushHoldFile, access(hold, F_OK) == 0 { return holdFlush(hold) }
        context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.flushTag)
    }

    /// Test only: with `TANDEM_TEST_HOLD_FLUSH_FILE` set, the volume flushes (group commit,
    /// FlushRequest) wait while that file exists, looked at every 10 ms; writes go on. A
    /// diskless primary's stop must wait for them (DisklessStopTests).
    static let flushHoldFile: String? = getenv("TANDEM_TEST_HOLD_FLUSH_FILE").map { String(cString: $0) }

    private func holdFlush(_ hold: String) {
        context.loop.runAt(deadlineNs: ReplicationContext.nowNs() + 10_000_000) { [weak self] in
            guard let self else { return }
            guard access(hold, F_OK) != 0 else { return self.holdFlush(hold) }
            self.logger.notice("test hook: a held volume flush is submitted", metadata: ["hold": "\(hold)"])
            self.context.loop.prepareFlush(volume: self.volume, handler: self.handlerID, tag: Self.flushTag)
        }
    }

    /// The group-commit deadline, as an io_uring timeout.
    func armTimer() {
        guard !timerArmed, !stopping, let deadline = peekNode({ $0.flushDeadlineNs }) else { return }
        let now = ReplicationContext.nowNs()
        let delay = deadline > now ? deadline - now : 0
        timeout.pointee.tv_sec = Int64(delay / 1_000_000_000)
        timeout.pointee.tv_nsec = Int64(delay % 1_000_000_000)
        let sqe = context.loop.sqe(handler: handlerID, tag: Self.timerTag)
        io_uring_prep_timeout(sqe, timeout, 0, 0)
        timerArmed = true
    }

    func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        switch tag {
        case Self.timerTag:
            timerArmed = false
            feed(.tick)
        case Self.flushTag, Self.digestFlushTag:
            ioInFlight -= 1
            let forDigests = tag == Self.digestFlushTag  // SecondaryReplicator+Verify
            if result == -EINTR || result == -EAGAIN {
                if forDigests { flushForDigests() } else { submitFlush() }
            } else {
                let errno = result < 0 ? -result : 0
                if !forDigests, counters.trace.enabled, traceFlushStamp.ns >= counters.trace.sinceNs {
                    counters.trace.record(.write, .secondaryFlush, from: traceFlushStamp, to: context.loop.traceStamp())
                }
                traceFlushStamp = .none
                feed(forDigests ? .digestFlushCompleted(errno: errno) : .flushCompleted(errno: errno))
            }
        case Self.stagingFlushTag:
            ioInFlight -= 1
            if result == -EINTR || result == -EAGAIN {
                flushStaging()
            } else {
                feed(.flushCompleted(errno: result < 0 ? -result : 0))
            }
        case let tag where tag & 0xFFFF_0000 == Self.stagingHeaderTagBase:
            ioInFlight -= 1
            headerCompleted(slot: Int(tag & 0xFFFF), result: result)
        case let tag where tag & 0xFFFF_0000 == Self.digestReadTagBase:
            ioInFlight -= 1
            digestRead(slot: Int(tag & 0xFFFF), result: result)
        case let tag where tag & 0xFFFF_0000 == Self.peerReadTagBase:
            ioInFlight -= 1
            peerReadCompleted(slot: Int(tag & 0xFFFF), result: result)
        default:
            ioInFlight -= 1
            writeCompleted(slot: Int(tag), result: result)
        }
        perform()
        resumeIfRoom()
        checkStopped()
    }

    /// A completion may have freed room in the node's queue: a link paused for want of it
    /// offers its held frame again (and pauses again if it still does not fit).
    private func resumeIfRoom() {
        guard let link, link.isPaused else { return }
        link.resumeDelivery()
    }

    private func writeCompleted(slot: Int, result: Int32) {
        guard let entry = received[slot] else { preconditionFailure("completion without a write") }
        let left = entry.length - entry.doneBytes
        if result == -EINTR || result == -EAGAIN || (result > 0 && Int(result) < left) {
            // Interrupted or short (e.g. out of space part way): the rest is tried again and
            // fails with the disk's own errno if it must.
            if result > 0 { received[slot]!.doneBytes += Int(result) }
            return submitWrite(slot)
        }
        if entry.journalOffset != nil {
            if result <= 0, entry.stagingErrno == 0 { received[slot]!.stagingErrno = result == 0 ? EIO : -result }
            return stagedPartDone(slot: slot)
        }
        received[slot] = nil
        release(entry)
        if result > 0 { counters.localWriteLatency.record(since: entry.submittedNs) }
        if result > 0, counters.trace.enabled, let stamps = counters.trace.existingStamps(entry.sequence) {
            let now = context.loop.traceStamp()
            counters.trace.record(.write, .secondaryApply, from: stamps.pointee.local, to: now)
            stamps.pointee.local = now
            stamps.pointee.link = now  // completed: the ack may follow
            if !traceUndurableStamp.isSet { traceUndurableStamp = now }
        }
        feed(.writeCompleted(sequence: entry.sequence, errno: result > 0 ? 0 : (result == 0 ? EIO : -result)))
    }
}
