// What the primary node (PrimaryNode) consumes and emits: application requests, local I/O
// results, the link's life and the peer's messages in; answers, local I/O, messages, link
// commands and notices out. The driver (PrimaryReplicator) only carries these out.

/// Linux errno values the node answers with (TandemCore does not import Glibc).
public enum PrimaryErrno {
    public static let eio: Int32 = 5
    public static let enomem: Int32 = 12
    public static let erofs: Int32 = 30
}

/// An application (NBD) request, as the node sees it. Its `RequestID` is the driver's handle
/// until the node answers it.
public enum ApplicationRequest: Sendable, Hashable {
    case write(offsetBytes: UInt64, lengthBytes: UInt32, fua: Bool)
    case writeZeroes(offsetBytes: UInt64, lengthBytes: UInt64, fua: Bool)
    case flush
    case trim
}

/// The activity log of a primary (`al_extents`, the metadata's AL extent bytes and ring):
/// which regions a crash restart must catch up (PrimaryNode+ActivityLog).
public struct ActivityLogSettings: Sendable, Hashable {
    /// The active set's size, 1 ... 1000 (`al_extents`).
    public var extents: Int
    public var extentBytes: UInt64
    /// The largest write the node is given (an NBD request or a chunk): one may touch this
    /// many bytes' worth of extents, all in the set at once.
    public var writeBytesMax: UInt64
    /// The newest transaction in the ring when the node starts (numbers go on from it).
    public var lastTransaction: UInt64
    /// Testing only (the simulator's seeded bug); production passes none.
    public var testingFault: ActivityLogTestingFault?
    /// When a batch of misses closes into a transaction. Production runs `.production`; the
    /// simulator can select the other rule (TANDEM_SIM_AL_BATCHING).
    public var batching: ActivityLogBatching
    /// A catch-up's tracked bitmap is on the bitmap pages already, and the session's start
    /// transaction counts them (the driver wrote both before the node starts): the node's
    /// transactions count pages from the start, without writing them again first.
    public var trackedPagesDurable = false
    /// Transactions written at once (1 ... `ActivityLogRing.transactionsInFlightMax`): a batch closes and
    /// is written while fewer are in flight. The driver passes
    /// `transactionsInFlight(ringSlots:)` (docs/tracking.md, *Transactions in flight*).
    public var transactionsInFlightMax = ActivityLogSettings.transactionsInFlightDefault

    /// The transactions a primary writes at once: two, so that the misses arriving while one
    /// is written go to disk without waiting for it (docs/tracking.md, *Transactions in
    /// flight*): as many as the ring's proof allows for.
    public static let transactionsInFlightDefault = ActivityLogRing.transactionsInFlightMax

    /// The default, fewer on a ring of `ringSlots` slots: transactions in flight must leave
    /// the slot of the last durable one alone (a ring of 2 slots: one at a time).
    public static func transactionsInFlight(ringSlots: Int) -> Int {
        max(1, min(transactionsInFlightDefault, ringSlots - 1))
    }

    public init(extents: Int, extentBytes: UInt64, writeBytesMax: UInt64, lastTransaction: UInt64,
                testingFault: ActivityLogTestingFault? = nil, batching: ActivityLogBatching = .production) {
        self.testingFault = testingFault
        self.batching = batching
        self.extents = extents
        self.extentBytes = extentBytes
        self.writeBytesMax = writeBytesMax
        self.lastTransaction = lastTransaction
    }

    /// The most extents one write of up to `writeBytesMax` can touch (at the worst offset).
    public var extentsPerWriteMax: Int { Self.extentsPerWrite(writeBytesMax: writeBytesMax, extentBytes: extentBytes) }

    public static func extentsPerWrite(writeBytesMax: UInt64, extentBytes: UInt64) -> Int {
        Int((writeBytesMax + extentBytes - 2) / extentBytes + 1)
    }
}

/// When the activity log's open batch of misses closes into the next transaction
/// (ActivityLog.endTurn). Both rules keep every ordering guarantee of the log; they differ in
/// how many misses share a transaction (docs/tracking.md, *Batching and transactions*).
public enum ActivityLogBatching: String, Sendable, Hashable, CaseIterable {
    /// At the end of the first loop turn with a miss, even while a transaction is in flight:
    /// the misses of the turns after it, until that transaction is durable, join the batch
    /// after (and wait a whole transaction more).
    case perTurn = "per-turn"
    /// Only when it can be written at once (no transaction in flight): every miss while one is
    /// in flight joins the next transaction (group commit across loop turns).
    case acrossTurns = "across-turns"

    /// The rule the daemon runs: across turns, +13 % IOPS at QD32 on a quiet machine
    /// (docs/tracking.md, *Which rule the daemon runs*).
    public static let production = ActivityLogBatching.acrossTurns
}

/// Deliberately wrong activity-log behaviour, so that the simulator can prove its checker
/// catches what it breaks.
public enum ActivityLogTestingFault: Sendable, Hashable {
    /// A write's extent reference is dropped when it is written locally, not once the peer has
    /// it: the extent can leave the log while the peer still lacks the write, and a crash
    /// restart then never copies it.
    case releasesAtLocalCompletion
    /// The bitmap pages an eviction needs are reported persisted without being written while
    /// transactions still say the pages count: a crash restart then misses the bits set
    /// while Ahead in the extents that left the log.
    case evictsBeforePagesPersisted
    /// An evicting transaction never flushes the volume first: an extent leaves the log while
    /// its last writes may sit in the disk's volatile cache, and a power loss then takes
    /// writes the peer holds from a region no crash restart copies.
    case skipsEvictionFlush
    /// A copy checkpoint writes its pages from the bitmap alone, without the chunks the peer
    /// has not confirmed yet (their bits are cleared when they are read): a crash restart
    /// then skips a chunk the peer never made durable.
    case copyCheckpointClearsUnconfirmedChunks
    /// An evicting transaction's volume flush counts as done when the transaction is formed,
    /// not once it is durable: a transaction formed while it is in flight drops the same
    /// extent without a flush of its own and can be durable before that flush is done, so a
    /// power loss takes writes the peer holds from a region no crash restart copies.
    case countsFlushWhenAsked
    /// A transaction formed while others are in flight holds the last durable set and its own
    /// joiners only, not theirs: once an earlier one is durable its writes are issued, and a
    /// crash that leaves the later one newest on disk catches up a set that lacks them.
    case formsFromDurableSetOnly
}

public struct PrimaryNodeConfig: Sendable, Hashable {
    public var primary: ReplicationPrimaryConfig
    public var volumeSizeBytes: UInt64
    /// Whether a peer is configured (without one the node never dials).
    public var hasPeer: Bool
    /// WRITE_ZEROES chunks and full-copy chunks.
    public var chunkBytes: UInt32
    /// Copy chunks whose buffers the driver holds at once: reads in flight plus chunks
    /// admitted and not yet released (the driver keeps that many chunk buffers).
    public var copyBuffersMax: Int
    /// Online verify compares regions of this size (a multiple of 4 KiB, at most
    /// `WireFormat.digestRegionBytesMax`).
    public var verifyRegionBytes: UInt64
    /// Application requests waiting for admission (the one FIFO). Beyond it a request is
    /// answered ENOMEM at once.
    public var requestsQueuedMax: Int
    public var backoffInitialNs: UInt64
    public var backoffMaxNs: UInt64
    /// `fencing: dont-care`: a sync primary whose peer is away goes Ahead (acknowledges on its
    /// own copy and tracks the regions) instead of waiting for the peer (`suspend-io`). An
    /// async primary goes Ahead when its buffer is full, whatever this says.
    public var syncTracksWithoutPeer: Bool
    /// Bytes per bit of the dirty bitmap (`bitmap_block_bytes`).
    public var bitmapBlockBytes: UInt64
    /// `resync_rate`: the cap on copy (resync) reads, bytes per second; 0: the dynamic
    /// controller. `.setResyncRate` changes it live (PrimaryNode+Throttle).
    public var resyncRateBytesPerSecond: UInt64
    /// `resync_rate_min`: the dynamic controller's floor, bytes per second (at most
    /// ResyncRateController's maximum, 10 GiB/s). `.setResyncRateMin` changes it live.
    public var resyncRateMinBytesPerSecond: UInt64
    /// nil: no activity log (`al_extents: 0`): a crash restart copies the whole volume.
    public var activityLog: ActivityLogSettings?
    /// `mode: adaptive` (the stream's `primary.mode` is then async; the controller decides
    /// how each write is acknowledged). nil: the mode is `primary.mode`.
    public var adaptive: AdaptiveModeController.Settings?
    /// `rpo_target_ms`: async writes are paced toward the target. nil: no pacing.
    public var rpoTarget: RPOPacingController.Settings?
    /// `mode: periodic`: the interval between cycles (`period_s`); nil: not periodic
    /// (PrimaryNode+Periodic).
    public var periodNs: UInt64?
    /// `read_balancing`: where application reads go while the peer may serve them
    /// (PrimaryNode+Reads); `.setReadBalancing` changes it live.
    public var readBalancing: ReadBalancing = .preferLocal
    /// Reads in flight to the peer at most; beyond it reads are served here.
    public var remoteReadsMax = ReadRouter.remoteReadsMaxDefault
    /// Diskless (issue 13 §4, PrimaryNode+DisklessRegions): the driver can keep the regions
    /// written through the peer in the record (`.persistLackingRegions`), so a restart pulls
    /// only those. false: the record holds the flag only (a restart pulls the whole volume).
    public var keepsLackingRegions = false
    /// The crash restart's compare writes the bitmap pages of the regions it found the same
    /// (their bits clear) once this many bytes were cleared since its last such write, and
    /// when it ends: a second crash then compares only what was left (PrimaryNode+Checksum).
    public var checksumCheckpointBytes: UInt64 = ChecksumResync.checkpointBytesDefault
    /// While a copy runs and the activity log counts the bitmap pages, the pages of the chunks
    /// the peer confirmed durable are written (their bits clear) once this many copy bytes were
    /// confirmed since the last such write: a crash restart then copies only what the pages
    /// still mark (PrimaryNode+CopyCheckpoint). Default `copyCheckpointBytes(volumeSizeBytes:)`.
    public var copyCheckpointBytes: UInt64
    /// Diskless (PrimaryNode+PeerDrain): how long a stop (or a disable's drain) waits for the
    /// peer to confirm durable the writes acknowledged through it, from the FlushRequest on.
    /// The daemon passes `ping_timeout_ms`: a peer that does not answer within it is gone.
    public var peerDrainTimeoutNs: UInt64 = PrimaryNodeConfig.peerDrainTimeoutDefaultNs
    /// `ping_timeout_ms`'s default.
    public static let peerDrainTimeoutDefaultNs: UInt64 = 6_000_000_000

    public init(
        primary: ReplicationPrimaryConfig, volumeSizeBytes: UInt64, hasPeer: Bool = true,
        chunkBytes: UInt32 = 1 << 20, copyBuffersMax: Int = 64, verifyRegionBytes: UInt64 = WireFormat.digestRegionBytesMax,
        requestsQueuedMax: Int = 16_384,
        backoffInitialNs: UInt64 = 250_000_000, backoffMaxNs: UInt64 = 5_000_000_000,
        syncTracksWithoutPeer: Bool = false, bitmapBlockBytes: UInt64 = 4096,
        resyncRateBytesPerSecond: UInt64 = 0, resyncRateMinBytesPerSecond: UInt64 = 32 << 20,
        activityLog: ActivityLogSettings? = nil, periodNs: UInt64? = nil
    ) {
        precondition(chunkBytes > 0 && requestsQueuedMax > 0 && copyBuffersMax > 0)
        precondition(DirtyBitmap.isValidBlockBytes(bitmapBlockBytes), "bitmap block bytes \(bitmapBlockBytes)")
        precondition(UInt64(chunkBytes) >= bitmapBlockBytes, "a chunk smaller than a bitmap block")
        precondition(UInt64(chunkBytes) <= primary.bufferBytesMax, "a chunk larger than the buffer")
        precondition(resyncRateMinBytesPerSecond > 0
            && resyncRateMinBytesPerSecond <= ResyncRateController.Settings().rateMaxBytesPerSecond, "resync_rate_min")
        self.primary = primary
        self.volumeSizeBytes = volumeSizeBytes
        self.hasPeer = hasPeer
        self.chunkBytes = chunkBytes
        self.copyBuffersMax = copyBuffersMax
        precondition(verifyRegionBytes > 0 && verifyRegionBytes % 4096 == 0 && verifyRegionBytes <= WireFormat.digestRegionBytesMax)
        self.verifyRegionBytes = verifyRegionBytes
        self.requestsQueuedMax = requestsQueuedMax
        self.backoffInitialNs = backoffInitialNs
        self.backoffMaxNs = backoffMaxNs
        self.syncTracksWithoutPeer = syncTracksWithoutPeer
        self.bitmapBlockBytes = bitmapBlockBytes
        self.resyncRateBytesPerSecond = resyncRateBytesPerSecond
        self.resyncRateMinBytesPerSecond = resyncRateMinBytesPerSecond
        if let activityLog {
            precondition(activityLog.extents >= 1 && activityLog.extents <= Int(ActivityLogTransaction.extentsMax), "al_extents")
            precondition(activityLog.extentsPerWriteMax <= activityLog.extents,
                         "al_extents \(activityLog.extents): a write may touch \(activityLog.extentsPerWriteMax) extents")
            precondition(UInt64(chunkBytes) <= activityLog.writeBytesMax, "a chunk larger than the largest write")
        }
        self.activityLog = activityLog
        copyCheckpointBytes = Self.copyCheckpointBytes(volumeSizeBytes: volumeSizeBytes)
        precondition(periodNs.map { $0 > 0 } ?? true, "period 0")
        self.periodNs = periodNs
    }

    /// A 64th of the volume, at least 16 MiB: a copy writes its progress at most 64 times (a
    /// synchronous page write and data sync each, on the loop), and a crash restart copies
    /// again at most that much beyond the chunks the peer had not confirmed.
    public static func copyCheckpointBytes(volumeSizeBytes: UInt64) -> UInt64 {
        max(16 << 20, volumeSizeBytes / 64)
    }
}

public enum PrimaryNodeEvent: Sendable, Hashable {
    /// The operator enabled replication (dial now) / disabled it (record the stop, hang up).
    case enable
    case disable
    /// Planned failover: new requests are answered EROFS; `.drained` once every admitted
    /// write is answered and durable on the peer.
    case drain
    /// Replication stops: record the stop, hang up, answer what is held, then `.stopped`.
    case stop
    /// The operator disabled replication and this node goes on serving its volume alone: as
    /// `.stop`, but a write still held for the peer is answered from this disk, as one
    /// acknowledged alone (B moves first), whatever `fencing` says.
    case stopToServeAlone
    /// Planned failover, once `.drained`: stop like `.stop` but keep the link, flush the local
    /// disk, ask for the demotion to be recorded (`.recordDemotion`), and only once it is
    /// (`.demotionRecorded`) tell the peer (`.sendDemoted`), hang up and stop. A crash before
    /// the record is durable leaves this node primary and the peer, never told, secondary.
    case handOver
    /// The demotion asked by `.recordDemotion` is durable (role and record).
    case demotionRecorded
    case request(id: RequestID, ApplicationRequest)
    /// A local write (`.writeLocal`) ended: 0, or the errno (a short transfer the driver
    /// could not complete counts as EIO).
    case localWriteDone(sequence: WriteSequence, errno: Int32)
    case localFlushDone(errno: Int32)
    /// A read asked by `.readCopyChunk` (named by its offset) ended: 0 when all `lengthBytes`
    /// were read. Several may be in flight; they end in any order.
    case copyChunkRead(offsetBytes: UInt64, lengthBytes: UInt32, errno: Int32)
    /// The volume failed outside the node's own I/O (the export's reads, the metadata).
    case diskFailedElsewhere
    case dialFailed(String)
    /// The dialled peer's Hello names this highest protocol version (before `.linkUp`).
    case peerVersion(UInt16)
    /// The peer's CaughtUp (protocol 7): this node's SyncComplete of `session` is durable there.
    case peerCaughtUp(session: UInt64)
    /// TLS is up and both Hellos were accepted.
    case linkUp
    /// The link is gone; `refusal` when the peer refused it with a reason code.
    case linkDown(reason: String, refusal: WireRefusal?)
    case peer(SecondaryMessage)
    case tick
    /// `set resync_rate`: the copy's cap from now on (0: the dynamic controller). A refused
    /// copy read is retried at `resyncRetryAtNs`: the driver feeds `.tick` then.
    case setResyncRate(bytesPerSecond: UInt64)
    /// `set resync_rate_min`: the dynamic controller's floor from its next step on (1 byte/s
    /// to 10 GiB/s).
    case setResyncRateMin(bytesPerSecond: UInt64)
    /// The transaction asked by `.writeActivityLog` is durable (0), or its write failed.
    case activityLogWritten(transaction: UInt64, errno: Int32)
    /// The page write asked by `.persistBitmapPages` with this ticket is durable (0), or failed.
    case bitmapPagesPersisted(ticket: UInt64, errno: Int32)
    /// The daemon's `resync_concurrency_max` slot: without it the copy (full or catch-up)
    /// reads nothing and `streamState` is `pausedSync`. A node starts permitted.
    case resyncPermitted(Bool)
    /// `outdate-peer`: the control plane confirms the peer is outdated (fenced, or gone for
    /// good), so the node stops waiting for it: while the link is down, writes that wait for
    /// the peer send it Ahead whatever `fencing` says. Refused (ignored) while a link is up
    /// (`outdatePeerRefusal`); forgotten when a link comes up again.
    case peerOutdated
    /// `verify`: compare the volume with the peer's (PrimaryNode+Verify); ignored unless
    /// `verifyRefusal` is nil.
    case startVerify
    /// The read asked by `.readVerifyRegion` ended: its digest, or the errno.
    case verifyRegionRead(offsetBytes: UInt64, digest: RegionDigest?, errno: Int32)
    /// The peer's Digests answer.
    case peerDigest(offsetBytes: UInt64, lengthBytes: UInt64, digest: RegionDigest)
    /// `set period_s` (periodic mode): the interval between cycles from now on.
    case setPeriod(ns: UInt64)
    /// Consistency group (docs/groups.md): another member closed group epoch `through`.
    case groupEpochClosed(through: Epoch)
    /// Consistency group: another member went Ahead; this one goes Ahead too if it can.
    case groupMemberAhead(reason: String)
    /// Diskless (+Diskless): the record write asked by `.recordLocalLacksWrites(set)` is
    /// durable (0), or failed (the errno, and why, e.g. "the metadata is internal").
    case localLacksWritesRecorded(set: Bool, errno: Int32, reason: String?)
    /// Diskless: the pull asked by `.pullRegion` ended: 0, or the errno of the peer's read
    /// (`local` false) or of this disk's write (`local` true).
    case regionPulled(offsetBytes: UInt64, lengthBytes: UInt32, errno: Int32, local: Bool)
    /// Diskless regions (+DisklessRegions): the page write asked by `.persistLackingRegions`
    /// with this ticket is durable (0), or failed (the errno, and why).
    case lackingRegionsPersisted(ticket: UInt64, errno: Int32, reason: String?)
    /// Diskless, a `disable` (PrimaryNode+PeerDrain): before the stop, the peer is to make
    /// durable every write acknowledged through it. Admission holds meanwhile; answered with
    /// `.peerDrainedBeforeStop` (a stop follows a success; after a failure the node goes on).
    case drainPeerBeforeStop
}

public enum PrimaryNotice: Sendable, Hashable {
    /// The first failure of the node's own disk I/O ("write", "flush", "read").
    case diskFailed(operation: String, errno: Int32)
    /// The peer refused the link because its disk failed.
    case peerDiskFailed(String)
    /// The peer's record claims less than it confirmed (it lost its record): this session
    /// cannot continue; a new one must copy the volume (the owner restarts replication).
    case peerNeedsFullCopy(String)
    /// The peer refused to continue this session's basis: a full copy starts.
    case fullCopyStarted(reason: String)
    /// The node went Ahead: it acknowledges writes on its own copy and tracks their regions.
    case ahead(reason: String, outOfSyncBytes: UInt64)
    /// A catch-up session's stream started: only the bitmap's regions are copied.
    case catchUpStarted(bytes: UInt64)
    /// Every chunk of the copy (full or catch-up) has been read and admitted.
    case copySent(bytes: UInt64)
    /// The peer holds the whole volume (the copy's last epoch is durable there); `bytes`: what
    /// the copy moved.
    case copyDone(bytes: UInt64)
    /// An online verify started over `bytes`.
    case verifyStarted(bytes: UInt64)
    /// The region's digests differ: it is marked out of sync.
    case verifyMismatch(offsetBytes: UInt64, lengthBytes: UInt64)
    /// The verify ended: at the end of the volume, or early (`abortedBecause`).
    case verifyEnded(checkedBytes: UInt64, mismatchedBytes: UInt64, abortedBecause: String?)
    /// The regions the verify marked are being copied to the peer.
    case verifyRepairStarted(bytes: UInt64)
    case connectionState(ConnectionState)
    /// A write is acknowledged while the link is not up, the first since it was last up: the
    /// peer will not get it on that link. The driver moves B (once) before the answer goes out.
    /// It names the writes submitted while connected and answered after a cut — in flight, or
    /// queued for admission — that neither a submission without the peer nor a link lost with
    /// acknowledged writes unconfirmed names (the "B stays 0" hole: the meeting with a promoted
    /// peer was then a returned primary's, whose resync dropped the acknowledged write).
    case acknowledgedWithoutPeer
    /// Adaptive mode: writes admitted from now on are acknowledged as `to` says.
    case modeSwitched(to: ReplicationAckMode, reason: String)
    /// `rpo_target_ms`: pacing at its maximum delay did not hold the target (Ahead follows).
    case rpoTargetMissed(reason: String, rpoMs: UInt64)
    /// The compare of a crash's activity-log extents ended (PrimaryNode+Checksum): done, or
    /// given up (`abandonedBecause`; what it did not compare is copied whole).
    case checksumResyncEnded(ChecksumResyncProgress)
    /// Periodic mode: a cycle starts (its dial); `bytes` are tracked for it so far.
    case cycleStarted(bytes: UInt64)
    /// Periodic mode: the peer holds every write acknowledged before the cycle started.
    case cycleCompleted(bytes: UInt64, durationNs: UInt64)
    /// Diskless (+Diskless): writes go through the peer; this disk is resynced from it.
    case localDisk(LocalDiskNotice)
}

/// Diskless: what happened to this node's own disk's lack of writes.
public enum LocalDiskNotice: Sendable, Hashable {
    /// The record says this disk lacks writes: mutations go through the peer from now on.
    case writesThroughPeer(lackingBytes: UInt64)
    /// The resync from the peer starts (`wholeVolume`: which regions is not known).
    case resyncStarted(bytes: UInt64, wholeVolume: Bool)
    /// This disk holds every write again; the record says so.
    case resynced(pulledBytes: UInt64)
    /// A stop (or a disable's drain) waits for the peer to make durable `bytes` of writes
    /// acknowledged through it, which no durable copy holds yet (PrimaryNode+PeerDrain), and
    /// `inFlightBytes` of writes admitted and not yet acknowledged, answered as it confirms them.
    case peerDrainStarted(bytes: UInt64, inFlightBytes: UInt64)
    /// The peer confirmed them durable: the stop loses nothing.
    case peerDrained(bytes: UInt64)
    /// The peer did not confirm `bytes` of them durable (`reason`: it is not connected, the
    /// link went down, the deadline passed). `stopping`: the stop goes on and they are
    /// dropped from this process's memory — they are then only in the peer's cache, lost if it
    /// loses power before its next flush; otherwise a disable is refused and nothing changed.
    case peerDrainFailed(bytes: UInt64, reason: String, stopping: Bool)
}

public enum PrimaryNodeAction: Sendable, Hashable {
    /// Answer the application request (0 or an errno).
    case answer(RequestID, errno: Int32)
    /// Keep the payload of `write.sequence` (from `write.source`) until it is released, and
    /// write it locally unless it is a copy chunk (then it is already on the disk); answer
    /// with `.localWriteDone`.
    case writeLocal(LocalWrite)
    /// As `.writeLocal`, but keep the payload only: its local write waits for the activity-log
    /// transaction naming its extents (`.issueLocalWrite`).
    case holdLocalWrite(LocalWrite)
    /// Write the payload kept by `.holdLocalWrite` locally; answer with `.localWriteDone`.
    case issueLocalWrite(WriteSequence)
    /// Write activity-log transaction `transaction` (the whole active set `extents`, ascending,
    /// and the catch-up bases it proves) to its ring slot and make it durable; answer
    /// `.activityLogWritten`. Up to `ActivityLogSettings.transactionsInFlightMax` are in flight
    /// at once, answered in any order. `flushVolumeFirst`: the transaction drops an extent whose
    /// completed writes are not known stable, so flush the volume first (they must be durable
    /// before no log names them).
    /// `bitmapPagesCount`: the transaction says the bitmap area's durable pages count too.
    case writeActivityLog(transaction: UInt64, extents: [UInt32], bases: [CatchUpBase], flushVolumeFirst: Bool,
                          bitmapPagesCount: Bool)
    /// Write these pages of the node's `bitmap` (nil: every page) to the metadata file's
    /// bitmap area, each block of `alsoSet` set as well, encoded when the write is done, and
    /// make them durable; answer `.bitmapPagesPersisted(ticket)`. The activity log's order:
    /// an extent leaves the log only once its pages are durable.
    case persistBitmapPages(ticket: UInt64, pages: [Int]?, alsoSet: [BlockRun])
    /// Flush the local volume; answer with `.localFlushDone`. At most one is in flight.
    case flushLocal
    /// Read a copy chunk into a chunk buffer of its own (at most `copyBuffersMax` are held:
    /// reads in flight and admitted chunks not yet released); answer `.copyChunkRead`. The
    /// chunk is admitted as a `.writeLocal` of source `.copyChunk` at its offset.
    case readCopyChunk(offsetBytes: UInt64, lengthBytes: UInt32)
    /// The chunk read at this offset failed or is not wanted any more: free its buffer.
    case discardCopyChunk(offsetBytes: UInt64)
    /// Read this region and digest it (RegionDigest); answer `.verifyRegionRead`. One at a time
    /// for a verify; up to `ChecksumResync.regionsInFlightMax` for a crash's checksum resync.
    case readVerifyRegion(offsetBytes: UInt64, lengthBytes: UInt64)
    /// Ask the peer for its digest of this region (a DigestRequest; it answers Digests).
    case sendDigestRequest(offsetBytes: UInt64, lengthBytes: UInt64)
    /// Tell the peer (protocol `WireFormat.verifyEndVersion` or later) that the verify or
    /// digest compare ended: no DigestRequest of it follows (wire VerifyEnd, in order after them).
    case sendVerifyEnd
    /// Payloads through `throughSequence` are no longer needed: free them (after the batch:
    /// a freed buffer may wake NBD connections).
    case release(throughSequence: WriteSequence)
    case send(PrimaryMessage)
    /// Tell the peer it holds every acknowledged write through `throughSequence`.
    case sendSyncComplete(throughSequence: WriteSequence)
    /// Open a link to the peer; answer `.linkUp` or `.dialFailed` (then `.linkDown` when an
    /// opened link closes).
    case dial
    case closeLink(String)
    /// The peer broke the protocol: drop the link.
    case protocolViolation(String)
    /// Persist the record's clean-stop value (0: not clean) — once, when the node stops,
    /// after its stop flush (a clean stop claims this volume is durable).
    case recordStop(cleanStop: UInt64)
    /// Before a stop that is flushed but not clean: persist the node's `bitmap` (every region
    /// the peer may lack relative to `bases`) so that the next session catches up instead of
    /// copying the volume.
    case persistBitmap(bases: [CatchUpBase])
    /// The record must stop saying the peer holds this volume (before the first mutation).
    case invalidateCleanStop
    /// Draining: every admitted write is answered and durable on the peer.
    case drained
    /// Hand-over: the local disk is flushed; make the demotion durable (role secondary, the
    /// demoted record), then answer `.demotionRecorded`.
    case recordDemotion
    /// Hand-over: tell the peer it may promote (Demoted); the link closes right after.
    case sendDemoted
    /// Stopping: everything is answered; free every payload.
    case stopped
    /// A new session's stream starts (a catch-up after Ahead): nothing is held, and sequence
    /// numbers start again at 1.
    case streamRestarted
    case notice(PrimaryNotice)
    /// Consistency group (docs/groups.md): this member closed epoch `epoch`; the group's
    /// coordinator closes it on every other member (`.groupEpochClosed(through:)`).
    case groupEpochClosed(Epoch)
    /// Diskless (+Diskless): make the record say durably that this disk lacks writes the peer
    /// holds (true), or — this disk flushed first — that it lacks none (false); answer
    /// `.localLacksWritesRecorded`.
    case recordLocalLacksWrites(Bool)
    /// Diskless: read this region from the peer (a ReadRequest) and write it to this disk;
    /// answer `.regionPulled`.
    case pullRegion(offsetBytes: UInt64, lengthBytes: UInt32)
    /// Diskless regions (+DisklessRegions): make the record say durably that this disk lacks
    /// `runs` (blocks of `blockBytes`): the metadata file's bitmap pages, marked as this disk's
    /// (`fresh`: every page is written anew with only these, then the mark; otherwise these are
    /// added to the pages written before). Answer `.lackingRegionsPersisted(ticket)`.
    case persistLackingRegions(ticket: UInt64, runs: [BlockRun], blockBytes: UInt64, fresh: Bool)
    /// `.drainPeerBeforeStop` ended: nil, the peer holds every acknowledged write durably (the
    /// stop may follow; admission holds until it does); else why not (the node goes on).
    case peerDrainedBeforeStop(failure: String?)
}
