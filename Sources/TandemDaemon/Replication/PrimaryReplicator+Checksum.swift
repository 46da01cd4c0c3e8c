// PrimaryReplicator's part of the checksum-based resync of a crash's activity-log extents
// (PrimaryNode+Checksum decides; the region reads are the verify's, PrimaryReplicator+Verify):
// its end as an event and a log line (and, every region compared, its record removed:
// Resource+CrashCompare), and its figures in status (`checksum_resync`).
import TandemControl
import TandemCore

extension PrimaryReplicator {
    func noticedChecksumResync(_ progress: ChecksumResyncProgress) {
        var fields = Self.checksumResyncFigures(progress)
        if let reason = progress.abandonedBecause {
            fields["abandoned"] = .string(reason)
            logger.warning("checksum resync of the activity log given up: its regions are copied whole",
                           metadata: ["reason": "\(reason)", "checked_bytes": "\(progress.checkedBytes)"])
        } else {
            // Every region compared: a crash from here copies what differed (its bits are set),
            // so the record of the compare (Resource+CrashCompare) has nothing left to resume.
            removeCrashCompareRecord()
            logger.notice("checksum resync of the activity log done: only differing regions are copied", metadata: [
                "total_bytes": "\(progress.totalBytes)", "differing_bytes": "\(progress.differingBytes)",
                "given_up_bytes": "\(progress.givenUpBytes)",
            ])
        }
        context.events.publish(resource: resource, "checksum-resync-done", fields)
    }

    private func removeCrashCompareRecord() {
        CrashCompareRecordFile.remove(CrashCompareRecordFile.path(stateDir: context.config.stateDir, name: resource), logger: logger)
    }

    /// The byte counts the event and the status share.
    private static func checksumResyncFigures(_ progress: ChecksumResyncProgress) -> [String: JSONValue] {
        [
            "total_bytes": .int(Int64(clamping: progress.totalBytes)),
            "checked_bytes": .int(Int64(clamping: progress.checkedBytes)),
            "differing_bytes": .int(Int64(clamping: progress.differingBytes)),
            "given_up_bytes": .int(Int64(clamping: progress.givenUpBytes)),
        ]
    }

    static func checksumResyncFields(_ progress: ChecksumResyncProgress) -> JSONValue {
        var fields = checksumResyncFigures(progress)
        fields["running"] = .bool(progress.running)
        fields["progress"] = .double(progress.totalBytes == 0
            ? 1 : Double(progress.checkedBytes + progress.givenUpBytes) / Double(progress.totalBytes))
        if let reason = progress.abandonedBecause { fields["abandoned"] = .string(reason) }
        return .object(fields)
    }
}
