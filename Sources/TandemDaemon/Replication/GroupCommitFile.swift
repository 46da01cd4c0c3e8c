// GroupCommitFile: where a consistency group's durable state lives on the secondary node
// (docs/groups.md, *Catch-up: one commit for the group*): `<state_dir>/<group>.group-commit`
// holds the group's last commit decision (GroupCommitDecision), stored atomically (a new file
// fsynced, renamed over the old one, the directory fsynced) after every named member's journal
// is durable and before any member commits. Read when a member's staging journal is settled
// (at start, at a promotion): a journal the decision names is rolled forward. Blocking file
// I/O of a few hundred bytes, on the loop thread, once per group catch-up.
import Glibc
import TandemCore

enum GroupCommitFile {
    static func path(stateDir: String, group: String) -> String { "\(stateDir)/\(group).group-commit" }

    /// Stores `decision` durably; nil, or what failed.
    static func store(_ decision: GroupCommitDecision, stateDir: String) -> ResourceStoreError? {
        let target = path(stateDir: stateDir, group: decision.group)
        let temporary = target + ".new"
        do throws(ResourceStoreError) {
            try FileIO.writeDurably(decision.encode(), to: temporary)
            guard rename(temporary, target) == 0 else { throw FileIO.failure("rename \(temporary)") }
            try FileIO.syncDirectory(stateDir)
            return nil
        } catch {
            return error
        }
    }

    /// The group's stored decision (nil: none, or a file that is not a whole decision).
    static func load(stateDir: String, group: String) -> GroupCommitDecision? {
        guard let bytes = try? FileIO.readAll(path(stateDir: stateDir, group: group), bytesMax: 64 << 10) else { return nil }
        return GroupCommitDecision.decode(bytes)
    }

    /// The journal bytes the group's decision commits for this record's uncommitted journal.
    static func committedBytes(spec: ResourceSpec, record: ReplicationRecord, stateDir: String) -> UInt64? {
        guard let group = spec.group, let staged = record.staging, !staged.committed,
            let decision = load(stateDir: stateDir, group: group)
        else { return nil }
        return decision.committedBytes(resource: spec.name, stagingSession: staged.session)
    }
}
