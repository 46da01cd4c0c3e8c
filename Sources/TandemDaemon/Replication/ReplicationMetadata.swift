// ReplicationMetadata: the secondary replicator's view of its resource's MetadataFile: the
// `ReplicationRecord` TandemCore decides (session, durable epoch, copy state), written
// through the ring into the superblock beside the fields the record does not hold (flags,
// identity). Each write bumps `ReplicationRecord.generation` (the superblock's record
// writes). Loop thread only.
import Glibc
import TandemCore

final class ReplicationMetadata {
    let file: MetadataFile
    /// Runs on the loop once a written record is stable.
    var onRecorded: ((ReplicationRecord) -> Void)?
    /// Runs once if a record write fails (errno); `onRecorded` never follows.
    var onFailed: ((Int32) -> Void)?
    private var closed = false

    init(file: MetadataFile) {
        self.file = file
        // Weak: what `onRecorded` runs may close and release this view (its replicator stops).
        file.onWritten = { [weak self] superblock in
            guard let self, !closed else { return }
            onRecorded?(superblock.record)
        }
        file.onFailed = { [weak self] code in
            guard let self, !closed else { return }
            onFailed?(code)
        }
    }

    /// The record as stable on disk.
    var record: ReplicationRecord { file.superblock.record }

    /// The record as it will be once every requested write is done.
    var latest: ReplicationRecord { file.latest.record }

    /// A write is in flight or queued: the file changes until it is done.
    var isWriting: Bool { file.isWriting }

    var failed: Bool { file.failed }

    /// Stops reporting; the file stays open for its resource.
    func close() {
        closed = true
        onRecorded = nil
        onFailed = nil
        file.onWritten = nil
        file.onFailed = nil
    }

    /// Writes `newRecord` (after the one in flight, if any); `onRecorded` follows.
    func write(_ newRecord: ReplicationRecord) {
        guard !closed else { return }
        var next = file.latest
        var record = newRecord
        record.generation = next.recordWrites + 1
        next.record = record
        next.roleLastTaken = .secondary
        file.writeAsync(next)
    }
}
