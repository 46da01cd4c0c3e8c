import TandemCore

// SimulationFault: the seeded faults, each a deliberately wrong behaviour of the simulated
// system that a checkerCatches… test shows the checker catching.

/// Deliberately wrong behaviours of the simulated system, only for proving that the checker
/// catches them (the seeded-fault tests).
enum SimulationFault: Hashable, CustomStringConvertible {
    /// The secondary's state machine misbehaves (ReplicationSecondaryConfig.testingFault).
    case secondary(SecondaryTestingFault)
    /// A restarted primary treats an unclean stop as clean (PrimaryStartFault): it says the
    /// volumes are in sync and forgets that the peer may lack its unconfirmed writes.
    case restartForgetsUnconfirmedWrites
    /// The secondary reports UpToDate while connected without the primary's SyncComplete
    /// (SecondaryTestingFault.claimsUpToDateBeforeConfirmed).
    case claimsUpToDateBeforeConfirmed
    /// The disks acknowledge FUA and flushes before a multi-block write is wholly on stable
    /// media: a power loss may tear writes reported durable (FakeDisk.tearsDurableWrites).
    case diskTearsDurableWrites
    /// The drivers give up waiting for a write after `writeTimeoutNs` and report it completed
    /// to the node while it is still in flight; it lands when the disk gets to it (a naive
    /// disk timeout: DRBD's disk-timeout documentation warns of exactly this).
    case completesStuckWritesAfterTimeout
    /// The primary's activity log drops a write's extent reference at its local completion
    /// instead of the peer's confirmation (ActivityLogTestingFault.releasesAtLocalCompletion).
    case activityLogReleasesAtLocalCompletion
    /// The primary's activity log reports the bitmap pages of an eviction persisted without
    /// writing them (ActivityLogTestingFault.evictsBeforePagesPersisted).
    case activityLogEvictsBeforePagesPersisted
    /// The primary's activity log evicts without flushing the volume first
    /// (ActivityLogTestingFault.skipsEvictionFlush).
    case activityLogSkipsEvictionFlush
    /// The primary's activity log counts an eviction's volume flush done when the transaction
    /// asks for it, so a transaction formed while that one is in flight drops the same extent
    /// without a flush (ActivityLogTestingFault.countsFlushWhenAsked).
    case activityLogCountsFlushWhenAsked
    /// The primary's activity log forms a transaction from the last durable set and its own
    /// batch, leaving out the joiners of the transactions still in flight
    /// (ActivityLogTestingFault.formsFromDurableSetOnly).
    case activityLogFormsFromDurableSetOnly
    /// A promotion that does not move the generations (B := C, C := new, P + 1): an old
    /// primary that wrote behind a partition would then not be told split brain.
    case promotionKeepsGeneration
    /// The secondary writes a Data frame's payload without checking its CRC32C (the check of
    /// WirePayload.restore skipped): a payload bit flipped on the wire reaches its volume.
    case payloadChecksumSkipped
    /// The side of an asymmetric cut that did not see it never times out its silent peer
    /// (LinkLiveness not checked): the pair stays apart.
    case livenessNeverChecked
    /// The staging driver writes a staged write's payload through to the volume as well as
    /// to the journal: the volume changes under an uncommitted catch-up.
    case stagedWritesReachTheVolume
    /// The promotion's settlement serves the volume without the committed journal (it treats
    /// a committed journal as one to drop): the catch-up the primary called UpToDate is lost.
    case promotionDropsCommittedJournal
    /// The commit stores its record without syncing the journal first: a power loss can then
    /// lose records the committed record names.
    case commitSkipsJournalSync
    /// Adaptive mode's switch to async acknowledges the sync writes still waiting for the
    /// peer at their local completion (PrimaryStreamTestingFault.switchToAsyncReleasesSyncWrites).
    case switchToAsyncReleasesSyncWrites
    /// The primary's `peer_consistent_as_of` names the epoch it last opened (sent), not the
    /// one its peer confirmed durable (Simulation+PeerPoint).
    case peerPointNamesSentEpoch
    /// Periodic mode's cycle copies each dirty region as the previous cycle left it, not as it
    /// is now (the driver reads a stale snapshot): a cycle completes without the writes
    /// acknowledged since the last one (Simulation+Periodic).
    case cycleCopiesStaleRegions
    /// A split brain's survivor resyncs its own changes since parting, not the union with
    /// the victim's (the victim's bitmap is never united: Simulation+SplitBrain).
    case splitBrainUnionOmitsVictimChanges
    /// The driver carries out a split brain at once with the promoted node as survivor,
    /// whatever the verdicts say (a `disconnect` merged without the operator).
    case splitBrainResolvedWithoutVerdict
    /// The primary's driver counts, at a link's loss, the lag alone as changed bytes, not the
    /// writes in flight or queued then (PrimaryNode.unacknowledgedBytes: the daemon's rule before
    /// it counted them; Simulation+WithoutPeer).
    case changedBytesLeaveOutWritesInFlightAtTheCut
    /// A split brain's survivor resumes its union after a crash from the last checkpoint alone,
    /// without the activity log's extents (the writes since it: Simulation+UnionCheckpoint).
    case unionResumesWithoutActivityLogExtents
    /// A stop answers a sync FLUSH still waiting for the peer from its local flush alone
    /// (PrimaryStreamTestingFault.stopAnswersFlushFromLocalFlush; Simulation+StopFlush).
    case stopAnswersFlushFromLocalFlush
    /// A diskless primary's driver acknowledges a write through the peer when the node holds
    /// it for the stream, before the peer applied it (Simulation+Diskless).
    case disklessAnswersBeforePeerApplied
    /// A diskless primary's driver reads its own disk when the node routes a read to the peer
    /// (this disk lacks the region: Simulation+Reads).
    case disklessReadsLackingDisk
    /// The primary's RPO pacer misbehaves (RPOPacingController.Settings.testingFault;
    /// Simulation+Pacing).
    case pacing(RPOPacingTestingFault)
    /// The primary's stream reports the RPO age of its newest unconfirmed acknowledged write,
    /// not its oldest (PrimaryStreamTestingFault.rpoAgeFromNewestWrite): `rpo_ms` says less
    /// than the peer lacks.
    case rpoAgeFromNewestWrite
    /// A diskless primary's stop hangs up without draining its peer and without saying so
    /// (PrimaryStreamTestingFault.disklessStopSkipsPeerDrain; SimulationTests+Diskless).
    case disklessStopSkipsPeerDrain
    /// A split-brain primary's write while StandAlone neither extends nor removes its parted
    /// file: a crash then restores a set without it (Simulation+SplitBrainStandAlone).
    case standAloneWriteSkipsPartedFile

    static let writeTimeoutNs: UInt64 = 50_000_000

    var description: String {
        switch self {
        case let .secondary(fault): "secondary testing fault \(fault)"
        case .restartForgetsUnconfirmedWrites: "restart forgets unconfirmed writes"
        case .claimsUpToDateBeforeConfirmed: "claims UpToDate before confirmed"
        case .diskTearsDurableWrites: "disk tears writes it reported durable"
        case .promotionKeepsGeneration: "promotion keeps the generations"
        case .completesStuckWritesAfterTimeout: "driver completes stuck writes after \(Self.writeTimeoutNs / 1_000_000) ms"
        case .activityLogReleasesAtLocalCompletion: "activity log releases extents at local completion"
        case .activityLogEvictsBeforePagesPersisted: "activity log evicts before its bitmap pages are persisted"
        case .activityLogSkipsEvictionFlush: "activity log evicts without flushing the volume"
        case .activityLogCountsFlushWhenAsked: "activity log counts an eviction's flush done when asked"
        case .activityLogFormsFromDurableSetOnly: "activity log forms a transaction without the joiners in flight"
        case .payloadChecksumSkipped: "secondary skips the payload CRC32C check"
        case .livenessNeverChecked: "link liveness never checked"
        case .stagedWritesReachTheVolume: "staged writes reach the volume"
        case .promotionDropsCommittedJournal: "a promotion drops a committed staging journal"
        case .commitSkipsJournalSync: "the staging commit skips the journal's sync"
        case .switchToAsyncReleasesSyncWrites: "a switch to async releases the sync writes waiting for the peer"
        case .peerPointNamesSentEpoch: "peer_consistent_as_of names the epoch sent, not the one confirmed durable"
        case .cycleCopiesStaleRegions: "a periodic cycle copies regions as the previous cycle left them"
        case .splitBrainUnionOmitsVictimChanges: "a split brain's resync omits the victim's changes"
        case .splitBrainResolvedWithoutVerdict: "a split brain carried out without a verdict or the operator"
        case .changedBytesLeaveOutWritesInFlightAtTheCut: "changed bytes leave out the writes in flight at the link's loss"
        case .unionResumesWithoutActivityLogExtents: "a union resync resumes after a crash without the activity log's extents"
        case .stopAnswersFlushFromLocalFlush: "a stop answers a FLUSH waiting for the peer from the local flush alone"
        case .disklessAnswersBeforePeerApplied: "a diskless primary acknowledges a write before the peer applied it"
        case .disklessReadsLackingDisk: "a diskless primary serves a read from the disk that lacks it"
        case let .pacing(fault): "the RPO pacer's testing fault \(fault)"
        case .rpoAgeFromNewestWrite: "the RPO age counts from the newest unconfirmed write"
        case .disklessStopSkipsPeerDrain: "a diskless primary's stop hangs up without draining its peer"
        case .standAloneWriteSkipsPartedFile: "a StandAlone write leaves the parted file without it"
        }
    }
}
