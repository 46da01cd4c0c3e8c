// StagingJournal: the bytes of a secondary's staging journal (docs/metadata.md, *Staging
// journal*; the decisions are SecondaryNode's, TandemCore). The journal is a file opened like
// a volume (O_DIRECT where the filesystem allows), written through the loop's ring by
// SecondaryReplicator: one checksummed StagingJournalRecord header and the payload per write.
// Here: proving a journal's durable prefix (every record complete and checksummed, or a
// precise error: a bad record inside the prefix is corruption, never "the end"), applying it
// to the volume (at start, at a promotion, or on a thread of its own after a commit, so the
// loop keeps serving the link), and the synchronous flushes a commit needs. Never decides.
import Glibc
import Logging
import TandemCore
import TandemIO

/// Why a journal cannot be proven or applied.
struct StagingJournalError: Error, CustomStringConvertible {
    var errno: Int32
    var message: String
    var description: String { message }
}

final class StagingJournal {
    /// Default journal size (`staging_bytes`).
    static let bytesDefault: UInt64 = 256 << 20
    /// Test-only: the threaded apply exits the process (as kill -9 would) once it has written
    /// this many payload bytes to the volume (integration tests of the replay at restart).
    static let crashAfterApplyBytesVariable = "TANDEM_TEST_STAGING_CRASH_AFTER_APPLY_BYTES"

    let path: String
    let file: Volume

    static func defaultPath(stateDir: String, name: String) -> String { "\(stateDir)/\(name).staging" }

    /// Opens the journal, creating a sparse file of `sizeBytes` if there is none.
    init(path: String, sizeBytes: UInt64, logger: Logger) throws(IOError) {
        self.path = path
        file = try Volume(path: path, createSizeBytes: sizeBytes, logger: logger)
    }

    /// fdatasync of the journal (a commit's first step), or the errno.
    func sync() -> Int32 { Self.sync(file.fd) }

    static func sync(_ fd: Int32) -> Int32 {
        while fdatasync(fd) != 0 {
            if errno == EINTR { continue }
            return errno
        }
        return 0
    }

    /// Proves the first `journalBytes` of the journal of `session` record by record and, with
    /// `volumeFD`, writes each payload to the volume, then flushes it. Synchronous: callers
    /// are the start, a promotion, and the apply thread. `crashAfterBytes`: the test hook.
    static func replay(journalFD: Int32, session: UInt64, journalBytes: UInt64, volumeFD: Int32?,
                       crashAfterBytes: UInt64? = nil) -> Result<UInt64, StagingJournalError> {
        var offset: UInt64 = 0
        var applied: UInt64 = 0
        var buffer = AlignedBuffer(bytes: StagingJournalRecord.headerBytes)
        defer { buffer.free() }
        while offset < journalBytes {
            let header: StagingJournalRecord
            switch readHeader(journalFD, at: offset, session: session, buffer: &buffer) {
            case .failure(let error): return .failure(error)
            case .success(let record): header = record
            }
            guard offset + header.recordBytes <= journalBytes else {
                return .failure(corrupt(offset, "record of \(header.recordBytes) bytes runs past the durable \(journalBytes)"))
            }
            let padded = Int(header.recordBytes) - StagingJournalRecord.headerBytes
            buffer.reserve(padded)
            if let code = readFully(journalFD, buffer.pointer, padded, at: offset + UInt64(StagingJournalRecord.headerBytes)) {
                return .failure(StagingJournalError(errno: code, message: "reading the staging journal at \(offset): \(describe(code))"))
            }
            let length = Int(header.lengthBytes)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: buffer.pointer, count: length))
            guard crc == header.payloadCRC else { return .failure(corrupt(offset, "payload checksum mismatch")) }
            if let volumeFD {
                if let code = writeFully(volumeFD, buffer.pointer, length, at: header.volumeOffsetBytes) {
                    return .failure(StagingJournalError(
                        errno: code, message: "applying the staging journal: write at \(header.volumeOffsetBytes): \(describe(code))"))
                }
                applied += UInt64(length)
                if let limit = crashAfterBytes, applied >= limit { _exit(137) }
            }
            offset += header.recordBytes
        }
        if let volumeFD {
            let code = sync(volumeFD)
            if code != 0 {
                return .failure(StagingJournalError(errno: code, message: "flushing the volume after the staging journal: \(describe(code))"))
            }
        }
        return .success(applied)
    }

    /// Applies on a thread of its own; `done` runs on `loop` with the errno (0: done) and
    /// the error's text.
    static func applyInBackground(journalFD: Int32, session: UInt64, journalBytes: UInt64, volumeFD: Int32,
                                  loop: EventLoop, done: @escaping (Int32, String?) -> Void) {
        let crashAfter = getenv(crashAfterApplyBytesVariable).flatMap { UInt64(String(cString: $0)) }
        let job = ApplyJob(run: {
            let result = replay(journalFD: journalFD, session: session, journalBytes: journalBytes,
                                volumeFD: volumeFD, crashAfterBytes: crashAfter)
            let outcome: (Int32, String?)
            switch result {
            case .success: outcome = (0, nil)
            case .failure(let error): outcome = (error.errno, error.message)
            }
            let box = UncheckedBox(done)
            loop.execute { box.value(outcome.0, outcome.1) }
        })
        var thread = pthread_t()
        let context = Unmanaged.passRetained(job).toOpaque()
        let created = pthread_create(&thread, nil, { raw in
            Unmanaged<ApplyJob>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, context)
        if created != 0 {
            Unmanaged<ApplyJob>.fromOpaque(context).release()
            done(created, "cannot start the staging apply thread: \(describe(created))")
        } else {
            pthread_detach(thread)
        }
    }

    // MARK: helpers

    private static func readHeader(_ fd: Int32, at offset: UInt64, session: UInt64, buffer: inout AlignedBuffer)
        -> Result<StagingJournalRecord, StagingJournalError>
    {
        if let code = readFully(fd, buffer.pointer, StagingJournalRecord.headerBytes, at: offset) {
            return .failure(StagingJournalError(errno: code, message: "reading the staging journal at \(offset): \(describe(code))"))
        }
        let bytes = Array(UnsafeRawBufferPointer(start: buffer.pointer, count: StagingJournalRecord.headerBytes))
        switch StagingJournalRecord.decode(bytes, stagingSession: session, journalOffsetBytes: offset) {
        case .success(let record): return .success(record)
        case .failure(let reason): return .failure(corrupt(offset, reason.description))
        }
    }

    private static func corrupt(_ offset: UInt64, _ reason: String) -> StagingJournalError {
        StagingJournalError(errno: EILSEQ, message: "the staging journal is corrupt at byte \(offset) of its durable part: \(reason)")
    }

    static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }

    private static func readFully(_ fd: Int32, _ pointer: UnsafeMutableRawPointer, _ count: Int, at offset: UInt64) -> Int32? {
        var done = 0
        while done < count {
            let result = pread(fd, pointer + done, count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if result == 0 { return EIO }  // the file ends inside the durable part
            done += result
        }
        return nil
    }

    private static func writeFully(_ fd: Int32, _ pointer: UnsafeMutableRawPointer, _ count: Int, at offset: UInt64) -> Int32? {
        var done = 0
        while done < count {
            let result = pwrite(fd, pointer + done, count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if result == 0 { return ENOSPC }
            done += result
        }
        return nil
    }
}

/// A 4096-aligned buffer (O_DIRECT) that grows on demand.
struct AlignedBuffer {
    private(set) var pointer: UnsafeMutableRawPointer
    private(set) var bytes: Int

    init(bytes: Int) {
        self.bytes = max(bytes, 4096)
        pointer = Self.allocate(self.bytes)
    }

    mutating func reserve(_ wanted: Int) {
        guard wanted > bytes else { return }
        Glibc.free(pointer)
        bytes = wanted
        pointer = Self.allocate(wanted)
    }

    func free() { Glibc.free(pointer) }

    private static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, bytes) == 0 && memory != nil, "out of memory")
        return memory!
    }
}

private final class ApplyJob: @unchecked Sendable {
    let run: () -> Void
    init(run: @escaping () -> Void) { self.run = run }
}

/// Carries a loop-confined closure through `EventLoop.execute`, which runs it on the loop.
private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
