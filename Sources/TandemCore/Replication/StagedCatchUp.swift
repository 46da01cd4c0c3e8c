// StagedCatchUp: what a secondary's record says while a catch-up is staged (docs/replication.md,
// *Staged catch-up*). The volume still holds the image the record held before the catch-up
// began (`from…`); the catch-up's writes go to the staging journal, of which the first
// `journalBytes` are durable and proven. `committed`: the journal is complete and must be
// applied before anything else touches the volume (a crash replays it). A value: the
// secondary node decides it, the daemon stores it in the metadata superblock.

public struct StagedCatchUp: Equatable, Sendable {
    /// The session whose catch-up began the journal (never 0; the superblock's `staging
    /// session`). A later catch-up that continues the journal keeps it.
    public var session: UInt64
    /// The journal's durable prefix: every record in it is complete and checksummed.
    public var journalBytes: UInt64
    /// The journal is the whole catch-up (or, at a no-room switch, what was staged of it):
    /// replay it before anything else.
    public var committed: Bool
    /// The record the volume's image belongs to: restored when the journal is discarded.
    public var fromSession: UInt64
    public var fromDurableEpoch: Epoch
    public var fromContinuedFrom: UInt64

    public init(session: UInt64, journalBytes: UInt64 = 0, committed: Bool = false, fromSession: UInt64,
                fromDurableEpoch: Epoch, fromContinuedFrom: UInt64) {
        precondition(session != 0, "a staged catch-up names its session")
        self.session = session
        self.journalBytes = journalBytes
        self.committed = committed
        self.fromSession = fromSession
        self.fromDurableEpoch = fromDurableEpoch
        self.fromContinuedFrom = fromContinuedFrom
    }
}

/// What the daemon does with a staging journal when the node is not running (at start, and
/// when a secondary is promoted), decided from the record alone.
public enum StagingSettlement: Equatable, Sendable {
    /// No journal is in use.
    case none
    /// Committed: apply the first `journalBytes` to the volume (idempotent), flush it, then
    /// store `record` (the journal forgotten).
    case replay(journalBytes: UInt64, record: ReplicationRecord)
    /// Not committed, the node starts as secondary: prove the first `journalBytes` (a corrupt
    /// record there fails the resource) and keep staging after them.
    case resume(journalBytes: UInt64)
    /// Not committed, the node is promoted: the journal is dropped and the volume's image,
    /// the one the record held before the catch-up, is what `record` says.
    case discard(record: ReplicationRecord)

    /// - `promoting`: the secondary stops to become primary (a forced failover).
    /// - `groupCommittedBytes`: the journal bytes a consistency group's durable decision
    ///   commits for this journal (GroupCommitDecision.committedBytes; nil: none): the journal
    ///   is rolled forward as a committed one, with its group (docs/groups.md, *Catch-up*).
    public static func decide(record: ReplicationRecord, promoting: Bool,
                              groupCommittedBytes: UInt64? = nil) -> StagingSettlement {
        guard let staging = record.staging else { return .none }
        if !staging.committed, let bytes = groupCommittedBytes {
            // What the member's own commit would have stored: the catch-up is whole.
            var applied = record
            applied.staging = nil
            applied.synced = true
            applied.promotedInconsistent = false
            applied.generation += 1
            return .replay(journalBytes: bytes, record: applied)
        }
        if staging.committed {
            var applied = record
            applied.staging = nil
            applied.generation += 1
            return .replay(journalBytes: staging.journalBytes, record: applied)
        }
        guard promoting else { return .resume(journalBytes: staging.journalBytes) }
        var restored = record
        restored.staging = nil
        restored.session = staging.fromSession
        restored.durableThroughEpoch = staging.fromDurableEpoch
        restored.continuedFrom = staging.fromContinuedFrom
        restored.synced = true  // staging begins only on a synced, consistent copy
        restored.generation += 1
        return .discard(record: restored)
    }
}
