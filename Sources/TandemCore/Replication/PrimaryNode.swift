// PrimaryNode: every decision of a primary's replication, as one state machine around
// ReplicationPrimary (epochs, acknowledgements, re-send). It owns the admission queue (one
// bounded FIFO, WRITE_ZEROES chunking, TRIM, the overlap rule), the full copy, the link's
// lifecycle (dial, backoff, hello), SyncComplete, drain, stop and the clean-stop value, and
// disk failures. A write's identity is its sequence number from admission to release; until
// admission a request is the driver's `RequestID`. No I/O, no clock (`nowNs` comes with each
// event), no randomness (the session is passed in). Confined to one thread.
//
// This file holds the state, the events' dispatch and what follows every event (settle, the
// invariants), the feeding of ReplicationPrimary and the local I/O results. The rest is in
// PrimaryNode+Admission (the queue, the overlap rule, tickets), +Copy (the full copy), +Link
// (enable, dial, the link's life, the peer's messages, SyncComplete) and +Stop (stop,
// hand-over, disk failure), +ActivityLog (the write path's activity log), +Adaptive (adaptive
// mode, RPO-target pacing), +Periodic (the cycles of `mode: periodic`) and +CaughtUp (the
// peer's word that a SyncComplete's effect is durable there). State those files share is
// internal, not private: Swift's `private` does not reach an extension in another file.

public struct PrimaryNode: Sendable {
    /// An admitted request (or copy chunk) until it is answered: `ReplicationPrimary` knows it
    /// by its index in `tickets` (its RequestID there).
    struct Ticket: Sendable {
        enum Kind: Sendable { case free, write, zeroes, flush, copyChunk }
        var kind: Kind = .free
        var request: RequestID = 0
        var start: UInt64 = 0
        var end: UInt64 = 0
        /// Writes admitted for it and not yet acknowledged by ReplicationPrimary.
        var writesOutstanding = 0
        /// Local writes submitted and not yet completed.
        var localPending = 0
        /// Every chunk of a WRITE_ZEROES was admitted.
        var issuedAll = false
        var failed = false
        /// Position in `active` (writes, zeroes, copy chunks), -1 otherwise.
        var activePosition = -1
        // Diskless (+Diskless): admitted while this disk lacks writes, it needs the peer; it
        // skips this disk (the disk failed); it was answered EIO when the peer went away.
        var needsPeer = false
        var skipsLocal = false
        var answered = false
        /// Its local write failed while the peer could take it: answered with the peer's
        /// result once the record says this disk lacks its region (+Diskless).
        var lostLocally = false
    }

    struct Queued: Sendable {
        var request: RequestID
        var kind: ApplicationRequest
    }

    /// The WRITE_ZEROES being admitted chunk by chunk (the FIFO waits behind it).
    struct Zeroing: Sendable {
        var ticket: Int
        var cursor: UInt64
        var end: UInt64
        var fua: Bool
    }

    enum Link: Sendable, Equatable { case idle, dialing, up }

    public let config: PrimaryNodeConfig
    /// The session of the stream: a catch-up after Ahead starts a new one (+Ahead).
    public internal(set) var session: UInt64
    public internal(set) var basis: SessionBasis
    public internal(set) var primary: ReplicationPrimary
    var inner: [PrimaryAction] = []
    /// Consistency group: the newest group epoch closed (by this member or another), where a
    /// new stream of this node starts its numbering (PrimaryNode+Group).
    public internal(set) var groupClosedEpoch: Epoch = 0
    /// Consistency group: why this member goes Ahead with another, while that is decided.
    var groupAheadReason: String?

    /// Allocated on demand up to `ticketsMax` (an idle node holds none; docs/benchmarks.md,
    /// "Per-pair memory"), and handed out in the same order as from a full table: freed
    /// tickets first, last freed first, then the next new one.
    var tickets: [Ticket] = []
    var freeTickets: [Int] = []
    let ticketsMax: Int
    /// Tickets of writes, zeroes and copy chunks admitted and not answered (acknowledged, for
    /// a chunk): the overlap rule scans them.
    var active: [Int]
    /// The ticket of each held sequence (`sequence % count`): the store holds at most
    /// `writesInFlightMax` contiguous sequences.
    /// Allocated at the first local write (an idle node never needs it).
    var ticketOfSequence: [Int] = []
    var queue: BoundedQueue<Queued>
    var zeroing: Zeroing?
    /// The head of the queue waits for room in the buffer (not for an overlap).
    public internal(set) var isBlocked = false
    var releasedThrough: WriteSequence = 0

    public internal(set) var localWritesInFlight = 0
    var localFlushInFlight = false

    // The link.
    public internal(set) var enabled = false
    var link: Link = .idle
    var nextDialNs: UInt64 = 0
    var backoffNs: UInt64
    public internal(set) var connectionState: ConnectionState = .standAlone
    /// The peer's first ReplicaHello in this run: before it the peer's state is unknown.
    public internal(set) var peerHeard = false
    /// The peer reported itself inconsistent (it restarted after a crash): it stays
    /// Inconsistent until the writes re-sent to it are durable there (through this epoch).
    public internal(set) var peerInconsistentThroughEpoch: Epoch?
    /// The sequence SyncComplete last named on this link.
    var confirmedOnLink: WriteSequence?
    /// `.acknowledgedWithoutPeer` was said since the link was last up.
    var acknowledgedWithoutPeerNoted = false

    // Tracking and catch-up (+Ahead).
    /// The regions the peer may lack: every block for a full copy; what was written while
    /// Ahead (and what was held when it began) for a catch-up. The copy walks it.
    public internal(set) var bitmap: DirtyBitmap
    /// Writes are acknowledged on this copy alone and tracked in the bitmap.
    public internal(set) var isAhead = false
    /// The control plane confirmed the peer outdated (`.peerOutdated`) and no link has been up
    /// since: nothing waits for the peer any more.
    public internal(set) var peerOutdatedConfirmed = false
    /// The highest protocol version the peer's last Hello named (0: none yet).
    public internal(set) var peerVersion: UInt16 = 0
    /// The online verify running (PrimaryNode+Verify), its local read, and the last result.
    var verify: VerifyRun?
    var verifyReadInFlight = false
    public internal(set) var lastVerify: VerifyProgress?
    public internal(set) var aheadSinceNs: UInt64 = 0
    /// A copy's SyncComplete went to a peer that answers it with CaughtUp (protocol 7), and
    /// that answer has not come: the peer is not UpToDate yet, on this link or the next
    /// (PrimaryNode+CaughtUp).
    public internal(set) var awaitingCaughtUp = false
    /// `peerInconsistentThroughEpoch` was set for a peer that restarted with nothing to
    /// re-send: its CaughtUp clears it too (PrimaryNode+CaughtUp).
    var peerInconsistentUntilCaughtUp = false
    /// The peer was mid-copy (or re-applying after its crash) when the node went Ahead.
    var peerInconsistentWhenAhead = false
    /// What the peer may hold that the bitmap covers (the next catch-up's bases).
    public internal(set) var catchUpBases: [CatchUpBase]
    /// The dial in progress (or the link) carries this new catch-up session: once it is up,
    /// admission pauses until nothing is in flight, then the new stream starts.
    var pendingSession: (session: UInt64, basis: SessionBasis)?
    var restartOnLinkUp: Bool { pendingSession != nil }
    /// What the Hello of the next link names: the pending catch-up session, or this one.
    public var helloSession: UInt64 { pendingSession?.session ?? session }
    public var helloBasis: SessionBasis { pendingSession?.basis ?? basis }
    /// The link of a catch-up session is up and waits for the old stream to go quiet.
    public internal(set) var restartPending = false
    /// The peer's ReplicaHello, received while the stream restart waited.
    var deferredPeerHello: SecondaryMessage?
    var sessionsStarted: UInt64 = 0

    // The peer stages the running catch-up (PrimaryNode+StagedPeer).
    /// Its ReplicaHello said `consistent` for this catch-up's copy (or, after Ahead, has not
    /// come yet: its volume keeps the image it had), and it has not said the catch-up went in
    /// place since.
    public internal(set) var peerStagesCatchUp = false

    // The copy (full or catch-up).
    /// A copy is due or running: the peer does not hold this volume's content yet.
    public internal(set) var copyWanted: Bool
    /// The peer holds this volume's content (no copy is due, and the last one's SyncComplete
    /// is durable there as far as the peer says: PrimaryNode+CaughtUp).
    public var peerSynced: Bool { !copyWanted && !awaitingCaughtUp }
    /// Byte offset from which the copy looks for the next dirty run.
    public internal(set) var copyCursor: UInt64 = 0
    /// The next dirty run to read (found once per cursor move).
    var copyRun: BlockRun?
    /// The copy reads in flight (their runs: application writes that overlap one wait) and
    /// their bytes, reserved in the stream's room until each chunk is admitted.
    var copyReads: [CopyRead] = []
    var copyReadBytes: UInt64 = 0
    /// Sequences of the copy chunks admitted and not yet released, oldest first: with the
    /// reads, what holds the driver's chunk buffers (`copyBuffersMax`).
    var copyChunksHeld: BoundedQueue<CopyChunkHeld>
    /// Bumped when the copy starts over: a read of an earlier copy is discarded.
    var copyGeneration: UInt64 = 0
    var copySentNoticed = false
    /// Bytes the copy has read and admitted in this session, and what it had to copy when it
    /// began.
    public internal(set) var copiedBytes: UInt64 = 0
    public internal(set) var copyTotalBytes: UInt64 = 0
    var copyReadInFlight: Bool { !copyReads.isEmpty }
    /// The next run overlaps a local write in flight: writes that overlap the run wait until
    /// it is read, so that a hot region cannot starve the copy.
    var copyWaitsForRegion = false
    var copyChunksOutstanding = 0
    /// The stream's open epoch as the copy last admitted a chunk into it, and how many it
    /// admitted there (PrimaryNode+Copy closes it at `copyEpochChunksMax`).
    var copyEpoch: Epoch = 0
    var copyChunksInEpoch = 0
    var copyLastSequence: WriteSequence = 0
    var copySampleNs: UInt64 = 0
    var copySampleCursor: UInt64 = 0
    var copyRateSmoothedBytesPerSecond: UInt64 = 0
    /// `resync_rate`'s token bucket or dynamic controller, and retry time (PrimaryNode+Throttle).
    var resyncThrottle = ResyncThrottle()
    /// The daemon's concurrency slot (`.resyncPermitted`): without it the copy waits.
    public internal(set) var resyncPermitted = true

    // Periodic mode (+Periodic): the cycles' schedule and what the last one did.
    public internal(set) var periodic = PeriodicCycles()

    // The checksum-based resync of a crash's activity-log extents (+Checksum): nil when none
    // runs; the last one's figures.
    var checksumResync: ChecksumResync?
    public internal(set) var lastChecksumResync: ChecksumResyncProgress?
    var checksumFirstRegion: ChecksumRegion?
    var checksumReadsDraining: [UInt64] = []  // local reads of an ended compare still out
    var checksumCheckpoint = ChecksumCheckpoint()  // found the same, not yet on the pages

    // The activity log (+ActivityLog): nil without one (`al_extents: 0`).
    public internal(set) var activityLog: ActivityLog?
    var gate = ActivityLogGate()

    // The replication profile (+Adaptive): `mode: adaptive` and `rpo_target_ms` pacing; nil
    // when not configured.
    public internal(set) var adaptiveMode: AdaptiveModeController?
    public internal(set) var rpoPacer: RPOPacingController?
    /// The slowest peer acknowledgement (or oldest wait) seen at the adaptive controller's last look.
    public internal(set) var lastPeerLatencyNs: UInt64 = 0
    /// Pacing: the next async write is admitted no earlier than this; the last write's delay.
    var pacedUntilNs: UInt64 = 0
    public internal(set) var pacingDelayNs: UInt64 = 0
    var pacingHoldsHead = false
    /// The queue's head that pacing let through and something after it (the activity log, a
    /// diskless region record) held: it is not charged a second delay when it goes.
    var pacingPassedHead: PacedHead?
    var pacingUpdatedNs: UInt64 = 0
    public internal(set) var lastRPOMissReason: String?

    // Read routing (+Reads): `read_balancing` and the reads of a failed disk.
    public internal(set) var reads: ReadRouter

    // Diskless (+Diskless): what this disk lacks that the peer holds, and its resync.
    public internal(set) var localDisk = LocalDiskResync()
    /// Diskless (+PeerDrain): the peer's drain before this node hangs up, and admission held
    /// after a disable's drain until its stop.
    var peerDrain: PeerDrain?
    var admissionHeldForStop = false
    public var isDrainingPeer: Bool { peerDrain != nil }

    // Failure, drain, stop.
    public internal(set) var diskFailed = false
    public private(set) var draining = false
    private var drainedSent = false
    public internal(set) var stopping = false
    public internal(set) var stopped = false
    var stopRecorded = false
    var stopFlushInFlight = false
    var stopFlushErrno: Int32?
    var cleanStopInvalidated = false
    var stopServesAlone = false  // `.stopToServeAlone` (answerUnacknowledgedAtStop)
    /// Planned failover: stopping without hanging up until the demotion is recorded.
    public internal(set) var handingOver = false
    var demotionRequested = false
    var demotionRecorded = false

    /// `trackedBitmap`: with a `catchUp` basis, the regions the peer may lack (persisted at the
    /// last stop, or tracked since); without one a catch-up copies every block.
    /// `checksumRegions`: with that bitmap after a crash, the activity log's regions to compare
    /// by digest before copying (ChecksumResync.plan; each set in `trackedBitmap`).
    /// `localLacksWrites`: the record says this disk lacks writes the peer holds (+Diskless):
    /// it serves none of them until `localLacking` (nil: what `localLackingRecord` says) is
    /// pulled from the peer.
    public init(config: PrimaryNodeConfig, session: UInt64, basis: SessionBasis, trackedBitmap: DirtyBitmap? = nil,
                checksumRegions: [ChecksumRegion] = [], localLacksWrites: Bool = false, localLacking: DirtyBitmap? = nil,
                localLackingRecord: LackingRecord = .flagOnly) {
        precondition(session != 0, "session 0 means none")
        self.config = config
        self.session = session
        self.basis = basis
        primary = ReplicationPrimary(config: config.primary)
        ticketsMax = config.primary.writesInFlightMax + config.primary.flushesPendingMax + 1
        active = []
        queue = BoundedQueue(capacity: config.requestsQueuedMax)
        copyChunksHeld = BoundedQueue(capacity: config.copyBuffersMax)
        copyReads.reserveCapacity(config.copyBuffersMax)
        inner.reserveCapacity(256)
        backoffNs = config.backoffInitialNs
        bitmap = DirtyBitmap(volumeSizeBytes: config.volumeSizeBytes, blockBytes: config.bitmapBlockBytes)
        catchUpBases = basis.startingBases
        activityLog = Self.makeActivityLog(config)
        copyWanted = false
        reads = ReadRouter(policy: config.readBalancing, remoteReadsMax: config.remoteReadsMax)
        startReplicationProfile()
        switch basis {
        case .fullCopy:
            markWholeVolume()
        case .catchUp:
            if let trackedBitmap, trackedBitmap.blockBytes == bitmap.blockBytes,
                trackedBitmap.volumeSizeBytes == bitmap.volumeSizeBytes {
                bitmap = trackedBitmap
                markOneBlockIfNothingTracked()
                activityLogTrackedBitmapTaken()
                startCopy()
                startChecksumResync(checksumRegions)
            } else {
                markWholeVolume()
            }
        case .assumeInSync, .continues:
            break
        }
        if localLacksWrites { startLacking(kept: localLacking, record: localLackingRecord) }
    }

    // MARK: Read-only state

    public var streamState: ReplicationStreamState {
        if isAhead { return .ahead }
        guard link == .up else { return .off }
        if copyWanted { return resyncPermitted || !isPeerReady ? .syncSource : .pausedSync }
        if verify != nil { return .verifyS }
        return isBlocked ? .blocked : .established
    }

    /// The link is up and the peer's hello was accepted.
    public var isPeerReady: Bool { link == .up && primary.isPeerReady }

    /// The link is being dialled (the driver resolves and connects).
    public var isDialing: Bool { link == .dialing }

    public var peerDiskState: DiskState {
        // The peer lacks what this node wrote without it, and knows nothing of it yet.
        // Ahead in the middle of a copy, the peer's content is in no order (Inconsistent, as it
        // says itself), not an older consistent image.
        if isAhead || restartPending { return peerHeard ? (peerInconsistentWhenAhead ? .inconsistent : .outdated) : .unknown }
        if peerOutdatedConfirmed { return .outdated }  // the control plane's word
        if let staged = stagedPeerDiskState { return staged }
        return DiskState.ofPeer(
            heard: peerHeard, peerReady: isPeerReady,
            copying: copyWanted || awaitingCaughtUp || peerInconsistentThroughEpoch != nil,
            sync: config.primary.mode == .sync, lagBytes: primary.lagBytes,
            acknowledgedWithoutPeer: acknowledgedWithoutPeerNoted)
    }

    /// Every admitted write is answered and durable on the peer; nothing waits.
    public var isDrained: Bool {
        queue.isEmpty && zeroing == nil && primary.writesInFlight == 0 && localWritesInFlight == 0
    }

    /// Everything admitted was confirmed durable by the peer and no copy is due: the peer
    /// holds this volume's content, so the next session may skip the full copy.
    public var isCleanForStop: Bool {
        isDrained && primary.unconfirmedBytes == 0 && !copyWanted
    }

    /// What the record's clean stop says if replication stopped now.
    public var cleanStopValue: UInt64 {
        guard isCleanForStop else { return 0 }
        return peerHeard ? session : basis.cleanStopValue
    }

    public var queuedRequests: Int { queue.count + (zeroing == nil ? 0 : 1) }

    // MARK: Events

    public mutating func handle(
        _ event: PrimaryNodeEvent, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        guard !stopped else {
            // Everything was answered: a late request fails, anything else is ignored.
            if case let .request(id, _) = event { actions.append(.answer(id, errno: PrimaryErrno.eio)) }
            if case .linkUp = event { actions.append(.closeLink("resource stopped")) }
            return
        }
        switch event {
        case .enable:
            enable(nowNs: nowNs, into: &actions)
        case .disable:
            disable(into: &actions)
        case .drain:
            draining = true
        case .stop, .stopToServeAlone:
            beginStop(servingAlone: event == .stopToServeAlone, nowNs: nowNs, into: &actions)
        case .drainPeerBeforeStop:
            drainPeerBeforeStop(nowNs: nowNs, into: &actions)
        case .handOver:
            beginHandOver()
        case .demotionRecorded:
            demotionWasRecorded()
        case let .request(id, request):
            receive(id, request, into: &actions)
        case let .localWriteDone(sequence, errno):
            localWriteDone(sequence, errno: errno, nowNs: nowNs, into: &actions)
        case let .localFlushDone(errno):
            localFlushDone(errno: errno, nowNs: nowNs, into: &actions)
        case let .copyChunkRead(offset, length, errno):
            copyChunkRead(offset, length, errno: errno, nowNs: nowNs, into: &actions)
        case .diskFailedElsewhere:
            diskFailed = true
        case .dialFailed:
            if link == .dialing { link = .idle }
        case let .peerVersion(version):
            peerVersion = version
            peerSpeaks(version, into: &actions)
        case let .peerCaughtUp(caughtUpSession):
            peerCaughtUp(session: caughtUpSession)
        case .linkUp:
            linkUp(nowNs: nowNs, into: &actions)
        case let .linkDown(reason, refusal):
            linkDown(reason, refusal: refusal, nowNs: nowNs, into: &actions)
        case let .peer(message):
            peerMessage(message, nowNs: nowNs, into: &actions)
        case .tick:
            dialIfDue(nowNs: nowNs, into: &actions)
            drive(.tick, nowNs: nowNs, into: &actions)
            sampleCopyRate(nowNs: nowNs)
        case let .setResyncRate(rate):
            setResyncRate(rate, nowNs: nowNs)
        case let .setResyncRateMin(rate):
            setResyncRateMin(rate)
        case let .resyncPermitted(permitted):
            resyncPermitted = permitted
        case .peerOutdated:
            if outdatePeerRefusal == nil { peerOutdatedConfirmed = true }
        case .startVerify:
            startVerify(into: &actions)
        case let .verifyRegionRead(offset, digest, errno):
            // A crash's checksum resync and a verify never run together (a verify waits for
            // the copy), but both read regions: the checksum's are its own.
            if !checksumRegionRead(offset, digest, errno: errno, into: &actions) {
                verifyRegionRead(offset, digest, errno: errno, into: &actions)
            }
        case let .peerDigest(offset, length, digest):
            if !checksumPeerDigest(offset, length, digest, into: &actions) {
                peerDigest(offset, length, digest, into: &actions)
            }
        case let .activityLogWritten(transaction, errno):
            activityLogWritten(transaction, errno: errno, nowNs: nowNs, into: &actions)
        case let .setPeriod(ns):
            setPeriod(ns)
        case let .bitmapPagesPersisted(ticket, errno):
            bitmapPagesPersisted(ticket, errno: errno, nowNs: nowNs, into: &actions)
        case let .groupEpochClosed(through):
            groupEpochClosed(through: through, nowNs: nowNs, into: &actions)
        case let .groupMemberAhead(reason):
            groupMemberAhead(reason, nowNs: nowNs, into: &actions)
        case let .localLacksWritesRecorded(set, errno, reason):
            localLacksRecorded(set: set, errno: errno, reason: reason, into: &actions)
        case let .regionPulled(offset, length, errno, local):
            regionPulled(offsetBytes: offset, lengthBytes: length, errno: errno, local: local, into: &actions)
        case let .lackingRegionsPersisted(ticket, errno, reason):
            lackingRegionsPersisted(ticket: ticket, errno: errno, reason: reason)
        }
        settle(nowNs: nowNs, into: &actions)
        checkInvariants()
    }

    /// What follows any event: admit what can be, continue the copy, release, confirm,
    /// finish a drain or a stop.
    private mutating func settle(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        updateReplicationProfile(nowNs: nowNs, into: &actions)
        continuePeerDrain(nowNs: nowNs, into: &actions)  // diskless: before admission, which it may hold
        failThroughPeerIfPeerGone(into: &actions)  // diskless: before admission refuses the rest
        admitQueued(nowNs: nowNs, into: &actions)
        if enterAheadIfDue(nowNs: nowNs, into: &actions) { admitQueued(nowNs: nowNs, into: &actions) }
        if restartStreamIfQuiet(nowNs: nowNs, into: &actions) { admitQueued(nowNs: nowNs, into: &actions) }
        continueVerify(nowNs: nowNs, into: &actions)  // first: its end may start a copy
        continueChecksumResync(nowNs: nowNs, into: &actions)  // before the copy: it decides what the copy skips
        continueCopy(nowNs: nowNs, into: &actions)
        continueLocalResync(into: &actions)  // diskless: this disk pulls what it lacks
        answerLostWritesIfRecorded(into: &actions)  // diskless: after the page write it may ask
        if let through = peerInconsistentThroughEpoch, primary.peerDurableEpoch >= through {
            peerInconsistentThroughEpoch = nil
        }
        if peerInconsistentThroughEpoch == nil { peerInconsistentUntilCaughtUp = false }
        checkCopyDone(into: &actions)
        confirmPeerIfInSync(into: &actions)
        if completeCycleIfDone(nowNs: nowNs, into: &actions), enterAheadIfDue(nowNs: nowNs, into: &actions) {
            admitQueued(nowNs: nowNs, into: &actions)
        }
        emitRelease(into: &actions)
        if draining && !drainedSent && isDrained {
            drainedSent = true
            actions.append(.drained)
        }
        checkStopped(into: &actions)
        activityLogEndTurn(into: &actions)
    }

    private func checkInvariants() {
        precondition(!primary.isBlocked, "the node fed ReplicationPrimary a request it could not admit")
        precondition(localWritesInFlight >= 0 && copyChunksOutstanding >= 0)
        precondition(copyReads.count + copyChunksHeld.count <= config.copyBuffersMax, "more copy chunks than buffers")
        precondition(primary.retainedBytes <= config.primary.bufferBytesMax)
        precondition(link == .up || !primary.isConnected, "the stream is up without a link")
        precondition(isAhead == primary.isTracking || restartPending, "Ahead and the stream disagree")
        precondition(!isAhead || copyWanted, "Ahead without a copy due")
        precondition(!periodic.running || periodNs != nil, "a cycle outside periodic mode")
        precondition(checksumResync == nil || copyWanted, "a checksum resync outside a catch-up")
    }
}
