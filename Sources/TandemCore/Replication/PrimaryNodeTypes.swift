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

public struct PrimaryNodeConfig: Sendable, Hashable {
    public var primary: ReplicationPrimaryConfig
    public var volumeSizeBytes: UInt64
    /// Whether a peer is configured (without one the node never dials).
    public var hasPeer: Bool
    /// WRITE_ZEROES chunks and full-copy chunks.
    public var chunkBytes: UInt32
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

    public init(
        primary: ReplicationPrimaryConfig, volumeSizeBytes: UInt64, hasPeer: Bool = true,
        chunkBytes: UInt32 = 1 << 20, requestsQueuedMax: Int = 16_384,
        backoffInitialNs: UInt64 = 250_000_000, backoffMaxNs: UInt64 = 5_000_000_000,
        syncTracksWithoutPeer: Bool = false, bitmapBlockBytes: UInt64 = 4096,
        resyncRateBytesPerSecond: UInt64 = 0, resyncRateMinBytesPerSecond: UInt64 = 32 << 20
    ) {
        precondition(chunkBytes > 0 && requestsQueuedMax > 0)
        precondition(DirtyBitmap.isValidBlockBytes(bitmapBlockBytes), "bitmap block bytes \(bitmapBlockBytes)")
        precondition(UInt64(chunkBytes) >= bitmapBlockBytes, "a chunk smaller than a bitmap block")
        precondition(UInt64(chunkBytes) <= primary.bufferBytesMax, "a chunk larger than the buffer")
        precondition(resyncRateMinBytesPerSecond > 0
            && resyncRateMinBytesPerSecond <= ResyncRateController.Settings().rateMaxBytesPerSecond, "resync_rate_min")
        self.primary = primary
        self.volumeSizeBytes = volumeSizeBytes
        self.hasPeer = hasPeer
        self.chunkBytes = chunkBytes
        self.requestsQueuedMax = requestsQueuedMax
        self.backoffInitialNs = backoffInitialNs
        self.backoffMaxNs = backoffMaxNs
        self.syncTracksWithoutPeer = syncTracksWithoutPeer
        self.bitmapBlockBytes = bitmapBlockBytes
        self.resyncRateBytesPerSecond = resyncRateBytesPerSecond
        self.resyncRateMinBytesPerSecond = resyncRateMinBytesPerSecond
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
    /// The read asked by `.readCopyChunk` ended: 0 when all `lengthBytes` were read.
    case copyChunkRead(offsetBytes: UInt64, lengthBytes: UInt32, errno: Int32)
    /// The volume failed outside the node's own I/O (the export's reads, the metadata).
    case diskFailedElsewhere
    case dialFailed(String)
    /// The dialled peer's Hello names this highest protocol version (before `.linkUp`).
    case peerVersion(UInt16)
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
    /// The daemon's `resync_concurrency_max` slot: without it the copy (full or catch-up)
    /// reads nothing and `streamState` is `pausedSync`. A node starts permitted.
    case resyncPermitted(Bool)
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
    case connectionState(ConnectionState)
}

public enum PrimaryNodeAction: Sendable, Hashable {
    /// Answer the application request (0 or an errno).
    case answer(RequestID, errno: Int32)
    /// Keep the payload of `write.sequence` (from `write.source`) until it is released, and
    /// write it locally unless it is a copy chunk (then it is already on the disk); answer
    /// with `.localWriteDone`.
    case writeLocal(LocalWrite)
    /// Flush the local volume; answer with `.localFlushDone`. At most one is in flight.
    case flushLocal
    /// Read a full-copy chunk into the retained store's next space; answer `.copyChunkRead`.
    case readCopyChunk(offsetBytes: UInt64, lengthBytes: UInt32)
    /// The chunk read failed: give its space back.
    case discardCopyChunk
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
}
