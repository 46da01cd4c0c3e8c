import Glibc
import TandemCore

/// One node: its disk, its persisted record, and the role it has now.
final class SimNode {
    enum IO {
        case primaryWrite(WriteSequence, session: UInt64)
        case primaryFlush(session: UInt64)
        case standaloneWrite(RequestID)
        case standaloneFlush(RequestID)
        case secondaryWrite(WriteSequence)
        case secondaryFlush
        /// The secondary's volume flush before a link's first digest read (`.flushForDigests`).
        case secondaryDigestFlush
        /// The volume flush before an activity-log transaction that evicts an extent.
        case activityLogFlush(ActivityLogTransaction)
        /// Diskless (Simulation+Diskless): a region pulled from the peer written here, and the
        /// volume flush before the record's `local-lacks-writes` is cleared.
        case pullWrite(PulledRegion, session: UInt64)
        case pullFlush(session: UInt64)
    }

    let index: Int
    var name: String { index == 0 ? "A" : "B" }
    let disk: FakeDisk
    /// The record as on stable storage (ReplicationMetadata): survives every crash.
    var record = ReplicationRecord()
    var alive = true
    var incarnation = 0
    /// Dials started (a dial's failure answers only the latest).
    var dialsStarted = 0
    /// The bitmap the last primary stop sealed in the metadata, with the bases it covers
    /// (cleared by the next session's first write and by any role change).
    var sealedBitmap: (bitmap: DirtyBitmap, bases: [CatchUpBase])?
    /// The activity-log ring's newest durable transaction by number (survives every crash: what
    /// a restart reads), and those being written, in any order (a crash lands each or not: one
    /// 4 KiB write is atomic here; the disk may finish a newer one first).
    var activityLogDurable: ActivityLogTransaction?
    var activityLogInFlight: [ActivityLogTransaction] = []

    /// A transaction landed on the ring: the newest by number is what a restart reads.
    func activityLogLanded(_ transaction: ActivityLogTransaction) {
        if transaction.transaction > activityLogDurable?.transaction ?? 0 { activityLogDurable = transaction }
    }
    /// The metadata bitmap area's pages as on stable storage (nil: as created, every page
    /// clear), and the activity log's page writes in flight: each page lands or not at a crash.
    var durablePages: DirtyBitmap?
    var pageWritesInFlight: [(ticket: UInt64, primary: PrimarySide, pages: [(page: Int, setBlocks: [UInt64])])] = []
    /// `crashed-primary`: set with a primary session's start record, cleared with its stop
    /// record and at a role change (Resource+ActivityLog).
    var crashedPrimary = false
    /// The daemon's `trackedSinceStop`: the bitmap of the last stop (or a clean stop's empty
    /// one) with the writes made without a replicator since; lost with the process.
    var trackedInMemory: (bitmap: DirtyBitmap, bases: [CatchUpBase])?
    var isPrimary: Bool
    /// Its generation identifiers, as the daemon keeps them (Simulation+Generations).
    var generations = Generations.none
    /// The daemon's parted bitmap and `changed bytes` (Resource+Generations): every region
    /// written since B was set (nil: B = 0, not tracking); `partedLost`: a crash lost it (the
    /// daemon removes its file before the first write it would not cover).
    var parted: DirtyBitmap?
    var changedBytes: UInt64 = 0
    var partedLost = false
    /// The daemon's `needsTracked`: B moved for a write the peer will not get, so the writes
    /// unconfirmed at the link's loss belong to the set, known only from a bitmap a stop sealed.
    var partedNeedsTracked = false
    var primary: PrimarySide?
    var secondary: SecondaryNode?
    /// The primary's own disk failed (a secondary's failure is its node's).
    var diskFailed = false
    /// The metadata flag `local-lacks-writes` (Simulation+Diskless): this disk lacks writes the
    /// peer holds. The metadata lives on another device than the volume (the default), so its
    /// write succeeds whatever the volume's disk does; survives every crash.
    var localLacksWrites = false
    /// ReadRequests this node serves as secondary (SecondaryNode.judgePeerRead's count).
    var peerReadsInFlight = 0
    /// The lineage (see GuaranteeChecker) this node's content belongs to.
    var lineage = 0
    /// The session whose history this node's content is a state of (nil: none; a crashed
    /// primary's volume is whatever its disk kept).
    var historySession: UInt64? = 0
    /// The last session this node ran as primary.
    var lastPrimarySession: UInt64 = 0
    /// `<name>.peer-failed`: the peer's disk failed while this node was its primary.
    /// Record writes in flight, in order (a crash keeps a prefix of them: each is atomic).
    var recordsInFlight: [ReplicationRecord] = []
    var lastRecordDoneNs: UInt64 = 0
    var io: [FakeDisk.Tag: IO] = [:]
    /// Writes the driver reported completed after a timeout while the disk still had them
    /// (the seeded fault `completesStuckWritesAfterTimeout`): they land when the disk is done.
    var timedOutWrites: Set<FakeDisk.Tag> = []
    /// When each write and flush in `io` was submitted, for the disk timeout (DiskStalls);
    /// an entry goes once its I/O has completed or was reported overdue.
    var ioSubmittedNs: [FakeDisk.Tag: UInt64] = [:]
    /// The staging journal's device (Simulation+Staging): survives a crash as it says.
    var journal = SimJournal()
    /// The daemon's record of a crash restart's compare (CrashCompareRecordFile): the ring's
    /// transaction its plan came from and its regions; survives every crash.
    var compareRecord: (transaction: UInt64, regions: DirtyBitmap)?
    /// `<name>.union-resync` (Simulation+UnionCheckpoint): the parting generation and what is
    /// left of a split brain's union resync (and whether the victim's set had come); survives
    /// every crash.
    var unionLeft: PartedBitmap?
    /// A split brain's loser: its set since parting, kept for the survivor (the daemon's
    /// parted-bitmap file: survives every crash) until the union ends or it is primary again.
    var keptVictimSet: DirtyBitmap?
    /// `<name>.parted-bitmap` of a primary in a split brain (Simulation+SplitBrainStandAlone):
    /// written at the detection's stop and extended before each write while StandAlone;
    /// survives every crash.
    var partedFile: PartedBitmap?
    /// Its last exit was a clean stop (the daemon's shutdown), not a kill: a diskless primary's
    /// stop drained its peer first (PrimaryNode+PeerDrain; Simulation+Diskless).
    var stoppedCleanly = false
    /// A diskless primary's stop could not drain its peer and said so: writes it acknowledged
    /// may be in the peer's cache only, until this disk is resynced (Simulation+Diskless).
    var acknowledgedOnlyInPeerCache = false

    init(index: Int, content: [UInt64], isPrimary: Bool, seed: UInt64) {
        self.index = index
        disk = FakeDisk(content: content, seed: seed)
        self.isPrimary = isPrimary
    }

    func writeRecord(_ change: (inout ReplicationRecord) -> Void) {
        change(&record)
        record.generation += 1
    }
}
