// SecondaryReplicator's staging journal I/O (docs/replication.md, *Staged catch-up*): what
// the node's staging actions mean in bytes. A staged write is two ring writes to the journal
// (its checksummed header, its payload) reported to the node as one completion; a commit
// flushes the journal, then stores the node's record; the apply runs on a thread
// (StagingJournal) and reports back on the loop. At start, a committed journal is replayed
// and an uncommitted one proven before the node exists (`settleStaging`). Loop thread only.
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO

extension SecondaryReplicator {
    /// What status says of the journal.
    var stagingWord: String {
        if !node.isStaging { return "off" }
        return node.diskState == .inconsistent ? "applying-inconsistent" : "staging"
    }

    /// Before the node starts: a committed journal is applied (idempotent: a crash during an
    /// earlier apply is finished) and forgotten; an uncommitted one must prove its durable
    /// part, or the resource fails with the reason (never guessed to be "the end"). True when a
    /// committed journal was replayed: the volume then holds the image the commit named, and
    /// nothing was written in place after it (writes wait until the journal is forgotten), so
    /// it is consistent however the last run ended (a kill -9 or a power cut during the apply).
    /// `groupCommittedBytes`: what the group's durable decision commits of an uncommitted
    /// journal (GroupCommitFile): it is rolled forward with its group.
    static func settleStaging(metadataFile: MetadataFile, journalPath: String, volume: Volume, health: DiskHealth,
                              events: EventHub, resource: String, logger: Logger,
                              groupCommittedBytes: UInt64? = nil) throws(ControlError) -> Bool {
        let record = metadataFile.superblock.record
        let settlement = StagingSettlement.decide(record: record, promoting: false, groupCommittedBytes: groupCommittedBytes)
        let result = StagingJournal.settle(settlement, record: record, metadataFile: metadataFile,
                                           journalPath: journalPath, volume: volume, logger: logger)
        switch result {
        case .success(let replayedBytes):
            if let replayedBytes {
                logger.notice("replayed a committed staging journal", metadata: ["bytes": "\(replayedBytes)"])
                events.publish(resource: resource, "catch-up-applied", ["journal_bytes": .int(Int64(replayedBytes)),
                                                                       "replayed": .bool(true)])
            }
            return replayedBytes != nil
        case .failure(let error):
            health.record("staging journal", errno: error.errno)
            logger.error("staging journal", metadata: ["journal": "\(journalPath)", "error": "\(error.message)"])
            throw ControlError(.ioError, "\(journalPath): \(error.message)")
        }
    }

    func beginStaging(session: UInt64, journalBytes: UInt64) {
        if journal == nil {
            do throws(IOError) { journal = try StagingJournal(path: journalPath, sizeBytes: stagingBytesMax, logger: logger) } catch {
                return feed(.stagingFailed(SecondaryDiskFault(operation: "staging journal open", errno: error.errno,
                                                              message: "\(journalPath): \(error)")))
            }
        }
        journalSession = session
        // The record about to say "the volume holds the image before the catch-up" must be
        // true after a crash: what the previous session wrote is flushed first.
        let code = StagingJournal.sync(volume.fd)
        if code != 0 {
            feed(.stagingFailed(SecondaryDiskFault(operation: "flush", errno: code, message: StagingJournal.describe(code))))
        }
    }

    /// A write staged as a record at `journalOffset`: header and payload go out together.
    func stage(_ write: SecondaryWrite, journalOffset: UInt64) {
        guard let journal else { preconditionFailure("staging without a journal") }
        let slot = Int(write.sequence % UInt64(received.count))
        guard let entry = received[slot], entry.sequence == write.sequence else {
            preconditionFailure("no payload for staged write \(write.sequence)")
        }
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, StagingJournalRecord.headerBytes) == 0 && memory != nil, "out of memory")
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: entry.pointer, count: entry.length))
        let header = StagingJournalRecord(stagingSession: journalSession, journalOffsetBytes: journalOffset,
                                          sequence: write.sequence, epoch: write.epoch, volumeOffsetBytes: write.offsetBytes,
                                          lengthBytes: write.lengthBytes, payloadCRC: crc).encode()
        header.withUnsafeBytes { memory!.copyMemory(from: $0.baseAddress!, byteCount: header.count) }
        received[slot]!.offsetBytes = write.offsetBytes
        received[slot]!.journalOffset = journalOffset
        received[slot]!.header = memory
        received[slot]!.partsLeft = 2
        submitHeader(slot)
        submitWrite(slot)
    }

    func submitHeader(_ slot: Int) {
        guard let journal, let header = received[slot]?.header, let offset = received[slot]?.journalOffset else { return }
        ioInFlight += 1
        context.loop.prepareVolumeIO(write: true, volume: journal.file, buffer: header,
                                     length: StagingJournalRecord.headerBytes, offset: offset, dsync: false,
                                     handler: handlerID, tag: Self.stagingHeaderTagBase | UInt32(slot))
    }

    func headerCompleted(slot: Int, result: Int32) {
        guard received[slot] != nil else { preconditionFailure("header completion without a write") }
        if result == -EINTR || result == -EAGAIN || (result > 0 && Int(result) < StagingJournalRecord.headerBytes) {
            return submitHeader(slot)  // one aligned unit: written again whole
        }
        if result <= 0, received[slot]!.stagingErrno == 0 { received[slot]!.stagingErrno = result == 0 ? EIO : -result }
        stagedPartDone(slot: slot)
    }

    /// One of a staged write's two parts ended: the node hears of it once both have.
    func stagedPartDone(slot: Int) {
        received[slot]!.partsLeft -= 1
        guard received[slot]!.partsLeft == 0, let entry = received[slot] else { return }
        received[slot] = nil
        free(entry.header)
        releaseEntry(entry)
        feed(.writeCompleted(sequence: entry.sequence, errno: entry.stagingErrno))
    }

    func flushStaging() {
        guard let journal else { preconditionFailure("staging flush without a journal") }
        ioInFlight += 1
        context.loop.prepareFlush(volume: journal.file, handler: handlerID, tag: Self.stagingFlushTag)
    }

    /// The journal durable, then the committing record (whose `.recorded` moves the node on).
    func commitStaging(_ record: ReplicationRecord) {
        guard let journal else { preconditionFailure("commit without a journal") }
        let code = journal.sync()
        guard code == 0 else {
            return feed(.stagingFailed(SecondaryDiskFault(operation: "staging journal flush", errno: code,
                                                          message: StagingJournal.describe(code))))
        }
        metadata.write(record)
    }

    func applyStaging(journalBytes: UInt64) {
        guard let journal else { preconditionFailure("apply without a journal") }
        ioInFlight += 1
        StagingJournal.applyInBackground(journalFD: journal.file.fd, session: journalSession, journalBytes: journalBytes,
                                         volumeFD: volume.fd, loop: context.loop) { [self] code, message in
            ioInFlight -= 1
            if let message { lastError = "staging journal: \(message)" }
            if code == 0 { self.journal = nil }  // forgotten once the record says so; reopened by the next
            feed(.stagingApplied(errno: code))
            perform()
            checkStopped()
        }
    }
}

extension StagingJournal {
    /// Carries out a settlement (StagingSettlement) synchronously: the number of bytes
    /// replayed (nil: none) or why the journal cannot be used.
    static func settle(_ settlement: StagingSettlement, record: ReplicationRecord, metadataFile: MetadataFile,
                       journalPath: String, volume: Volume, logger: Logger) -> Result<UInt64?, StagingJournalError> {
        let session = record.staging?.session ?? 0
        switch settlement {
        case .none:
            return .success(nil)
        case .discard(let restored):
            return store(restored, metadataFile).map { nil }
        case .resume(let bytes), .replay(let bytes, _):
            let fd = open(journalPath, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let code = errno
                return .failure(StagingJournalError(errno: code, message: "cannot open the staging journal: \(describe(code))"))
            }
            defer { close(fd) }
            let volumeFD: Int32? = if case .replay = settlement { volume.fd } else { nil }
            switch replay(journalFD: fd, session: session, journalBytes: bytes, volumeFD: volumeFD) {
            case .failure(let error): return .failure(error)
            case .success(let applied):
                guard case .replay(_, let cleared) = settlement else { return .success(nil) }
                return store(cleared, metadataFile).map { applied }
            }
        }
    }

    private static func store(_ record: ReplicationRecord, _ file: MetadataFile) -> Result<Void, StagingJournalError> {
        do throws(IOError) {
            try file.update { $0.record = record }
            return .success(())
        } catch {
            return .failure(StagingJournalError(errno: error.errno, message: "writing the metadata: \(error)"))
        }
    }
}

extension SecondaryReplicator {
    /// The catch-up outgrew the journal: a primary that reads CatchUpInPlace is told, so that
    /// its view of this copy says Inconsistent too (docs/replication.md, *Staged catch-up*).
    func tellPrimaryCatchUpWentInPlace() {
        guard primaryHelloVersion >= WireFormat.catchUpInPlaceVersion else { return }
        _ = link?.send(.catchUpInPlace(session: node.session))
    }
}
