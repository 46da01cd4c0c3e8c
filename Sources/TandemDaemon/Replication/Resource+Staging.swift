// Resource's part of the staged catch-up (docs/replication.md, *Staged catch-up*): a secondary
// promoted while a catch-up is staged serves the image its volume held before the catch-up
// (the uncommitted journal is dropped and the record restored to that image), or, with the
// journal committed, finishes applying it first. The decision is TandemCore's
// (StagingSettlement); this does it, synchronously, before the node takes the primary role.
import Glibc
import TandemCore

extension Resource {
    /// After the secondary replicator stopped, before the role changes. False: the journal
    /// could not be settled (the resource's disk failed; the promotion must not go on).
    func settleStagingForPromotion() -> Bool {
        let record = metadata.latest.record
        let groupCommitted = GroupCommitFile.committedBytes(spec: spec, record: record, stateDir: context.config.stateDir)
        let settlement = StagingSettlement.decide(record: record, promoting: true, groupCommittedBytes: groupCommitted)
        guard settlement != .none else { return true }
        let path = stagingJournalPath
        switch StagingJournal.settle(settlement, record: record, metadataFile: metadata, journalPath: path,
                                     volume: volume, logger: logger) {
        case .success(let replayed):
            let word = replayed == nil ? "discarded" : "applied"
            logger.notice("staged catch-up settled for the promotion", metadata: ["journal": "\(word)"])
            context.events.publish(resource: spec.name, "catch-up-\(word)", [
                "journal_bytes": .int(Int64(record.staging?.journalBytes ?? 0)), "promotion": .bool(true),
            ])
            return true
        case .failure(let error):
            logger.error("staging journal", metadata: ["journal": "\(path)", "error": "\(error.message)"])
            health.record("staging journal", errno: error.errno)
            return false
        }
    }

    var stagingJournalPath: String {
        spec.stagingPath ?? StagingJournal.defaultPath(stateDir: context.config.stateDir, name: spec.name)
    }
}
