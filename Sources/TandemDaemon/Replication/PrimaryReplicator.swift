// PrimaryReplicator: the driver of one resource's PrimaryNode (TandemCore), which makes every
// replication decision. It is the export's NBDWriteSink: a request enters the node under its
// slot index; the node's actions become ring submissions (PrimaryReplicator+LocalIO), link
// commands and messages (PrimaryReplicator+Link), answers to NBD clients, events and record
// updates (here); results come back as node events. Status is in PrimaryReplicator+Status.
// A write's payload (the NBD buffer taken over, a spill copy, the shared zeros or a copy
// chunk) is kept in RetainedWrites under the write's sequence number until the node releases
// it. Loop thread only.
import DequeModule
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO
import TandemNBD

final class PrimaryReplicator: IOHandler, NBDWriteSink {
    /// An application request until the node answers it.
    struct RequestSlot {
        var mutation: NBDPendingMutation?
        /// MonotonicClock time it was handed to us (the replicated-write latency histogram).
        var submittedNs: UInt64 = 0
        /// The hand-over's trace stamp (writes, while the trace is enabled).
        var traceStamp = TraceStamp.none
        /// `mode: adaptive`: the write was admitted to be acknowledged after the peer applied
        /// it (it counts in the replicated-write latency histogram, as sync mode's writes do).
        var admittedSync = false
    }

    static let chunkBytes = 1 << 20
    static let flushTag: UInt32 = 0xFFFF_0001
    /// Copy reads: this base | the chunk buffer's slot.
    static let copyReadTagBase: UInt32 = 0xFFFE_0000
    /// The volume flush before an evicting activity-log transaction: this base | the index of
    /// the transaction's entry in `activityLogWrites`.
    static let activityLogFlushTagBase: UInt32 = 0xFFFF_0010
    /// Region reads for a digest (verify, a crash's checksum resync): this base | the slot.
    static let verifyReadTagBase: UInt32 = 0xFFFD_0000
    /// On a write's tag (its retained slot): the flush that makes its FUA write durable on a
    /// volume whose RWF_DSYNC writes are not trusted (Volume.honoursDSyncWrites).
    static let fuaFlushBit: UInt32 = 0x4000_0000

    let resource: String
    let spec: ResourceSpec
    let volume: Volume
    let context: ReplicationContext
    let counters: ResourceCounters
    let health: DiskHealth
    let logger: Logger
    var node: PrimaryNode
    var actions: [PrimaryNodeAction] = []
    var batch: [PrimaryNodeAction] = []
    /// Events that arrive while a batch is being carried out (a freed buffer or an answer
    /// can make an NBD connection submit at once): handled after it, in order.
    var deferred = Deque<PrimaryNodeEvent>(minimumCapacity: 256)
    var performing = false
    var requests: [RequestSlot] = []
    var freeRequests: [Int] = []
    let retained: RetainedWrites
    /// Zero chunks of WRITE_ZEROES are written and sent from here (the daemon's one
    /// read-only chunk, ReplicationContext.zeroChunk).
    let zeros: UnsafeMutableRawPointer
    let scratch: UnsafeMutableRawBufferPointer
    var handlerID: UInt32 = 0
    /// The copy reads in flight, by chunk buffer slot.
    var copyReads: [(offset: UInt64, length: UInt32)?] = []
    /// The verify's one region buffer (allocated at its first read, freed when idle) and the
    /// region being read; whether the copy running repairs what a verify found.
    let verifyBuffer = CopyBuffers(slotBytes: Int(WireFormat.digestRegionBytesMax), slotsMax: ChecksumResync.regionsInFlightMax)
    var verifyReads = [(offset: UInt64, length: UInt64)?](repeating: nil, count: ChecksumResync.regionsInFlightMax)
    var copyRepairsVerify = false
    /// When the resync pacer's loop timer fires (0: none armed): `resync_rate` refused a copy
    /// read, and only a `.tick` at the node's retry time lets it go on (PrimaryReplicator+Pacing).
    var pacerArmedNs: UInt64 = 0
    /// When the periodic cycle timer fires (0: none armed; PrimaryReplicator+Periodic).
    var cycleTimerArmedNs: UInt64 = 0
    /// `bandwidth`: the frames for the link pass here (PrimaryReplicator+Bandwidth).
    var bandwidthGate: BandwidthGate<OutgoingFrame>
    var bandwidthTimerArmedNs: UInt64 = 0
    /// This resource's `resync_concurrency_max` slot (PrimaryReplicator+ResyncSlot).
    var resyncSlot = ResyncSlot.none
    /// Diskless (PrimaryReplicator+Diskless): the resync's pulls and their buffers (allocated at
    /// the first, freed when idle); the record's flag, written by the resource (nil: written;
    /// else why it cannot be).
    var pulls = PullSlots()
    let pullBuffers = CopyBuffers(slotBytes: WireFormat.readBytesMax, slotsMax: LocalDiskResync.pullsInFlightMax)
    var onRecordLocalLacks: ((Bool) -> String?)?
    /// Diskless regions: the record's pages of the regions this disk lacks, written by the
    /// resource (runs, their block bytes, fresh; nil: durable, else why not).
    var onPersistLackingRegions: (([BlockRun], UInt64, Bool) -> String?)?

    var link: PeerLink?
    /// Closed by this node as periodic mode went Ahead between cycles: its end is no error.
    var linkClosedBetweenCycles: ObjectIdentifier?
    lazy var resolver = PeerAddressResolver(loop: context.loop)
    var barrierEpoch: Epoch = 0
    var barrierCount: UInt32 = 0
    /// Whether this node's Hello carries the generation tail (version 4). Cleared when a peer
    /// closed a link without answering that Hello (an older build cannot read it), set again
    /// when a peer's Hello names version 4 or later (docs/protocol.md, *Versions*).
    var helloWithTail = true
    /// The highest protocol version the dialled peer's Hello named (told to the node at link up).
    var peerHelloVersion: UInt16 = WireFormat.helloVersion
    private(set) var lastError: String?
    func setLastError(_ error: String?) { lastError = error }
    var onStopped: (() -> Void)?
    /// The activity-log transactions being made durable (PrimaryReplicator+LocalIO), as many as
    /// the node has in flight (nil: a free entry).
    var activityLogWrites: [ActivityLogWrite?] = Array(repeating: nil, count: ActivityLogRing.transactionsInFlightMax)
    /// `.stopped` came while an activity-log flush of the volume was in flight: unregister
    /// the handler when the last completes (a completion must find its handler).
    var unregisterAfterActivityLogFlush = false
    var isStopped = false
    var onRecordDemotion: (() -> Void)?
    var onDrained: (() -> Void)?
    var onPeerDrained: ((String?) -> Void)?  // a disable's drain of a diskless node's peer
    var peerStateAnnouncer = DiskStateAnnouncer(event: "peer-disk-state", field: "peer_disk_state")

    /// Runs once, before the first write of the session is submitted: the record must no
    /// longer say that the peer holds this volume's content.
    var onFirstWrite: (() -> Void)?
    /// Runs once when replication stops: the record's `cleanStop` (0: not clean).
    var onStopRecorded: ((UInt64) -> Void)?
    /// A stop that is flushed but not clean: persist the bitmap and the bases it covers (the
    /// metadata's bitmap area, sealed) before the stop is recorded.
    var onPersistBitmap: ((DirtyBitmap, [CatchUpBase]) -> Void)?
    /// Writes an activity-log transaction durably through the metadata's ring; the closure
    /// runs on the loop with 0 once it is durable, or the errno.
    var onWriteActivityLog: ((UInt64, [UInt32], [CatchUpBase], Bool, @escaping (Int32) -> Void) -> Void)?
    /// Writes bitmap pages durably for the activity log (pages nil: every page): 0 or the errno.
    var onPersistBitmapPages: ((DirtyBitmap, [Int]?, [BlockRun]) -> Int32)?
    /// Why this session started as it did (status `session_start_reason`).
    var sessionStartReason = ""
    /// The peer asked for a planned failover (FailoverRequest).
    var onFailoverRequested: (() -> Void)?
    /// The peer refused the link because its disk failed (refusal disk-failed).
    var onPeerDiskFailed: ((String) -> Void)?
    var onLinkConnected: (() -> Void)?  // the peer accepted: its disk is not failed
    /// The peer lost its record: replication restarts with a new session that copies.
    var onPeerNeedsFullCopy: ((String) -> Void)?
    /// The full copy completed: the peer holds everything.
    var onPeerSynced: (() -> Void)?
    /// A write arrived while the link is not connected, or the link went down with writes the
    /// peer had not confirmed: the peer will not get them (the generations start tracking).
    var onWriteWithoutPeer: (() -> Void)?
    /// `onWriteWithoutPeer` ran and the peer has not caught up since: once is enough.
    var wroteWithoutPeer = false
    /// A link of this replicator reached Connected. Until then the lag is the session's
    /// starting set (a crash's activity-log extents, a stop's sealed bitmap), written before
    /// this start: no link went down under it, and it is no write the peer will not get
    /// (docs/replication.md, *The old primary returns*).
    var linkWasConnected = false
    /// The connection state is Connected now (its loss is counted once).
    var linkConnected = false
    /// The writes not yet acknowledged when the link was lost with no lag: counted at the
    /// first of them acknowledged alone (PrimaryReplicator+WithoutPeer).
    var unacknowledgedAtLossBytes: UInt64 = 0
    /// The peer became UpToDate (it holds every acknowledged write).
    var onPeerUpToDate: (() -> Void)?
    var peerWasUpToDate = false
    /// Bytes of writes (and zeroed or trimmed ranges) taken while the link was not connected.
    var onBytesWithoutPeer: ((UInt64) -> Void)?
    /// The generation tail and promotion number of this node's Hello.
    var helloGenerations: (() -> (node: WireNodeGenerations, promotion: UInt64))?
    /// Judges the Hello of a peer that is primary too (Resource+Generations).
    var judgePrimaryHello: ((WireHello) -> PeerHelloOutcome)?
    /// A judgement about a peer primary to carry out (split brain, demoted by promotion).
    var onPrimaryOutcome: ((PeerHelloOutcome, String) -> Void)?

    // Split-brain resync by the union of both bitmaps (PrimaryReplicator+SplitBrain).
    /// The copy covers the survivor's changes only until the peer's bitmap comes.
    var awaitsPeerBitmap = false
    var survivorChanges: DirtyBitmap?
    var survivorPartingGeneration: UInt64 = 0
    /// The peer is a returned primary, not a split brain's loser: its set is compared by
    /// digest before it is copied (PrimaryNode.unitePeerBitmap).
    var comparesPeerSet = false
    /// This link's Hello asked for the peer's bitmap, and neither its BitmapDone nor its
    /// ReplicaHello has come: only then may BitmapChunk and BitmapDone arrive.
    var peerBitmapAsked = false
    /// The peer's BitmapChunks on this link so far.
    var peerBitmap: PeerBitmapReceiver?
    var peerBitmapBytes: UInt64 = 0
    /// Decided: the union (with its set and the exchange's bytes), or a full copy and why.
    var onSplitBrainResync: ((SplitBrainResyncPlan, SplitBrainResyncSet?, UInt64) -> Void)?
    /// Once a tick: a union resync's crash checkpoint (Resource+SplitBrainUnion).
    var onSplitBrainTick: (() -> Void)?
    /// A region written while the link was not connected (the parted set).
    var onRegionWithoutPeer: ((UInt64, UInt64) -> Void)?
    /// The reads in flight to the peer (PrimaryReplicator+Reads).
    var remoteReads: RemoteReads

    /// The Resize sent to the peer and who waits for its answer (PrimaryReplicator+Resize).
    var pendingResize: (request: WireResize, answer: (Result<Void, ResizeRefusal>) -> Void)?

    /// The resource's request trace (RequestTrace; off unless enabled).
    var trace: RequestTrace { counters.trace }

    init(spec: ResourceSpec, volume: Volume, buffers: DataBuffers, context: ReplicationContext,
         basis: SessionBasis, trackedBitmap: DirtyBitmap? = nil, checksumRegions: [ChecksumRegion] = [],
         activityLog: ActivityLogSettings? = nil,
         counters: ResourceCounters, health: DiskHealth,
         logger: Logger, localLacksWrites: Bool = false, localLacking: DirtyBitmap? = nil,
         localLackingRecord: LackingRecord = .flagOnly, keepsLackingRegions: Bool = false) {
        self.resource = spec.name
        self.counters = counters
        self.spec = spec
        self.volume = volume
        self.context = context
        self.health = health
        self.logger = logger
        // The node refuses a write larger than its buffer: leave room for two of the largest
        // NBD requests whatever async_buffer_bytes says.
        let writeBytesMax = max(Int(context.config.maxRequestBytes), Self.chunkBytes)
        let bufferBytes = max(spec.asyncBufferBytes, 2 * UInt64(writeBytesMax), UInt64(4 * Self.chunkBytes))
        var config = PrimaryNodeConfig(
            primary: ReplicationPrimaryConfig(mode: spec.mode == .sync ? .sync : .async, bufferBytesMax: bufferBytes),
            volumeSizeBytes: volume.sizeBytes, hasPeer: spec.peer != nil, chunkBytes: UInt32(Self.chunkBytes),
            syncTracksWithoutPeer: spec.fencing == .dontCare, resyncRateBytesPerSecond: spec.resyncRateBytesPerSecond,
            resyncRateMinBytesPerSecond: spec.resyncRateMinBytesPerSecond, activityLog: activityLog,
            periodNs: Self.periodNs(spec))
        Self.applyProfile(spec, to: &config)
        config.readBalancing = spec.readBalancing
        config.primary.groupID = spec.groupID  // consistency group (docs/groups.md)
        Self.applyDiskless(to: &config, keepsLackingRegions: keepsLackingRegions, context: context)
        node = PrimaryNode(config: config, session: UInt64.random(in: 1...UInt64.max), basis: basis,
                           trackedBitmap: trackedBitmap, checksumRegions: checksumRegions, localLacksWrites: localLacksWrites,
                           localLacking: localLacking, localLackingRecord: localLackingRecord)
        // The store holds what the node holds: never more writes, never more bytes.
        retained = RetainedWrites(buffers: buffers, bytesMax: Int(bufferBytes), writeBytesMax: writeBytesMax,
                                  entriesMax: config.primary.writesInFlightMax, copyChunkBytes: Self.chunkBytes,
                                  copyChunksMax: config.copyBuffersMax)
        copyReads = Array(repeating: nil, count: config.copyBuffersMax)
        remoteReads = RemoteReads(count: config.remoteReadsMax)
        // Every frame of the stream is a held write or one of a few control frames per epoch.
        bandwidthGate = Self.makeBandwidthGate(spec, writeBytesMax: writeBytesMax,
                                               framesMax: 4 * config.primary.writesInFlightMax + 1024)
        zeros = context.zeroChunk
        scratch = .allocate(byteCount: Int(context.config.maxRequestBytes) + Int(context.config.maxRequestBytes) / 255 + 64,
                            alignment: 16)
        actions.reserveCapacity(256)
        batch.reserveCapacity(256)
        requests.reserveCapacity(256)
        freeRequests.reserveCapacity(256)
        handlerID = context.loop.register(self)
        // The copy waits for a slot of the daemon's resync_concurrency_max (updateResyncSlot).
        var none: [PrimaryNodeAction] = []
        node.handle(.resyncPermitted(false), nowNs: ReplicationContext.nowNs(), into: &none)
        precondition(none.isEmpty, "a node before enable acted on its resync permit")
    }

    deinit {
        // A replicator dropped without stopping must not keep a slot.
        if resyncSlot != .none { context.resyncArbiter.withdraw(ObjectIdentifier(self)) }
        scratch.deallocate()
    }

    func tick() {
        link?.checkLiveness(nowNs: ReplicationContext.nowNs())
        feed(.tick)
        publishPeerDiskState()
        retained.releaseMemoryWhenIdle()
        verifyBuffer.releaseMemoryWhenIdle()
        pullBuffers.releaseMemoryWhenIdle()
        onSplitBrainTick?()
    }

    // MARK: NBD sink

    func submit(_ mutation: NBDPendingMutation) {
        let request: ApplicationRequest
        switch mutation.kind {
        case .write:
            request = .write(offsetBytes: mutation.diskOffset, lengthBytes: UInt32(mutation.diskLength), fua: mutation.fua)
        case .writeZeroes:
            request = .writeZeroes(offsetBytes: mutation.diskOffset, lengthBytes: UInt64(mutation.diskLength), fua: mutation.fua)
        case .flush: request = .flush
        case .trim: request = .trim
        }
        let index = allocateRequest()
        requests[index].mutation = mutation
        requests[index].submittedNs = MonotonicClock.nowNs()
        if trace.enabled && mutation.kind == .write { requests[index].traceStamp = context.loop.traceStamp() }
        // A failed disk takes no more writes (docs/replication.md "Disk failures").
        if health.isFailed && !node.diskFailed { feed(.diskFailedElsewhere) }
        if node.connectionState != .connected && mutation.kind != .flush {
            if !wroteWithoutPeer { noteWriteWithoutPeer() }
            onBytesWithoutPeer?(UInt64(mutation.diskLength))
            onRegionWithoutPeer?(mutation.diskOffset, UInt64(mutation.diskLength))
        }
        feed(.request(id: RequestID(index), request))
    }

    private func allocateRequest() -> Int {
        if let index = freeRequests.popLast() { return index }
        requests.append(RequestSlot())
        return requests.count - 1
    }

    private func answer(_ id: RequestID, errno: Int32) {
        let index = Int(id)
        guard let mutation = requests[index].mutation else { preconditionFailure("request \(id) answered twice") }
        if mutation.kind == .write && errno == 0 && (spec.mode == .sync || requests[index].admittedSync) {
            counters.replicatedWriteLatency.record(since: requests[index].submittedNs)
        }
        if trace.enabled && requests[index].traceStamp.isSet {
            trace.record(.write, .replicate, from: requests[index].traceStamp, to: context.loop.traceStamp())
        }
        requests[index] = RequestSlot()
        freeRequests.append(index)
        mutation.finish(errno: errno)
    }

    // MARK: the node

    /// Hands an event to the node and carries out what follows (or queues it behind the
    /// batch being carried out).
    func feed(_ event: PrimaryNodeEvent) {
        if performing { return deferred.append(event) }
        node.handle(event, nowNs: ReplicationContext.nowNs(), into: &actions)
        perform()
        updateResyncSlot()
        armResyncPacer()
        armCycleTimer()
        // The first peer-disk-state event follows the resource's `enabled` (on the next event).
        if event != .enable { publishPeerDiskState() }
    }

    /// Carries out actions until none are left; events that arrive meanwhile follow in order.
    private func perform() {
        performing = true
        while true {
            while !actions.isEmpty {
                swap(&actions, &batch)
                for action in batch { execute(action) }
                batch.removeAll(keepingCapacity: true)
            }
            // Released entries left the store at once (the node may reuse their room in the
            // same batch); their lent buffers go back now, after the batch: that may wake NBD
            // connections waiting for one, whose requests are deferred and handled next.
            retained.returnReleasedBuffers()
            guard let event = deferred.popFirst() else { break }
            node.handle(event, nowNs: ReplicationContext.nowNs(), into: &actions)
        }
        performing = false
    }

    /// Adaptive mode: how the node admitted a request's write (its admission happens in the
    /// event that emits the write, after the mode controller's switch for that event).
    private func noteAdmissionMode(_ write: LocalWrite) {
        guard spec.mode == .adaptive, case .request(let id) = write.source, node.effectiveMode == .sync else { return }
        requests[Int(id)].admittedSync = true
    }

    private func execute(_ action: PrimaryNodeAction) {
        switch action {
        case let .answer(id, errno): answer(id, errno: errno)
        case let .writeLocal(write):
            noteAdmissionMode(write)
            writeLocal(write)
        case let .holdLocalWrite(write):
            noteAdmissionMode(write)
            writeLocal(write, issue: false)
        case let .issueLocalWrite(sequence): issueHeld(sequence)
        case let .writeActivityLog(number, extents, bases, flushVolumeFirst, bitmapPagesCount):
            writeActivityLog(number, extents: extents, bases: bases, flushVolumeFirst: flushVolumeFirst,
                             bitmapPagesCount: bitmapPagesCount)
        case let .persistBitmapPages(ticket, pages, alsoSet): persistBitmapPages(ticket, pages: pages, alsoSet: alsoSet)
        case .flushLocal: context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.flushTag)
        case let .readCopyChunk(offset, length): readCopyChunk(offset: offset, length: length)
        case let .discardCopyChunk(offset):
            if trace.enabled { trace.copyReleased(slot: retained.copies.buffer(offset: offset).slot, at: context.loop.traceStamp()) }
            retained.copies.release(offset: offset)
        case let .readVerifyRegion(offset, length): readVerifyRegion(offset: offset, length: length)
        case let .sendDigestRequest(offset, length): transmit(.control(.digestRequest(offsetBytes: offset, lengthBytes: length)))
        case .sendVerifyEnd: transmit(.control(.verifyEnd))  // behind the DigestRequests
        case let .release(through):
            if trace.enabled {
                let now = context.loop.traceStamp()
                retained.forEachCopySlot(through: through) { trace.copyReleased(slot: $0, at: now) }
            }
            retained.release(through: through)
        case let .send(message): transmit(.stream(message))
        // SyncComplete and Demoted name writes the peer confirmed (so sent already): they may
        // pass frames the bandwidth cap holds, and go around it (a few bytes each).
        case let .sendSyncComplete(through): _ = link?.send(.syncComplete(throughSequence: through))
        case .dial: dial()
        case let .closeLink(reason):
            // Frames the bandwidth cap still holds were for this link (going Ahead releases
            // their payloads next): the stream re-sends what is unconfirmed.
            dropWaitingFrames()
            if let link, node.isBetweenCycles { linkClosedBetweenCycles = ObjectIdentifier(link) }
            link?.close(reason)
        case let .protocolViolation(reason): link?.closeForViolation("protocol violation: \(reason)")
        case let .recordStop(cleanStop): recordStop(cleanStop)
        case let .persistBitmap(bases): onPersistBitmap?(node.bitmap, bases)
        case .invalidateCleanStop:
            if let invalidate = onFirstWrite {
                onFirstWrite = nil
                invalidate()
            }
        case .drained:
            if let done = onDrained {
                onDrained = nil
                done()
            }
        case .recordDemotion:
            if let record = onRecordDemotion {
                onRecordDemotion = nil
                record()
            }
            feed(.demotionRecorded)
        case .sendDemoted: _ = link?.send(.demoted(throughSequence: 0))
        case .streamRestarted:
            precondition(retained.count == 0, "a stream restarted with writes held")
            barrierEpoch = 0
            barrierCount = 0
        case .stopped:
            retained.releaseAll()
            isStopped = true
            if activityLogVolumeFlushing { unregisterAfterActivityLogFlush = true } else { context.loop.unregister(handlerID) }
            if let done = onStopped {
                onStopped = nil
                done()
            }
        case let .notice(notice): noticed(notice)
        case let .groupEpochClosed(epoch): context.groups.primaryClosed(epoch, by: self)
        case let .recordLocalLacksWrites(set): recordLocalLacksWrites(set)
        case let .peerDrainedBeforeStop(failure): peerDrainedBeforeStop(failure)
        case let .pullRegion(offset, length): pullRegion(offset: offset, length: length)
        case let .persistLackingRegions(ticket, runs, blockBytes, fresh):
            persistLackingRegions(ticket: ticket, runs: runs, blockBytes: blockBytes, fresh: fresh)
        }
    }

    private func recordStop(_ value: UInt64) {
        if value != 0 {
            logger.info("clean stop: the peer holds every write; the next start skips the full copy",
                        metadata: ["session": "\(session)"])
        } else {
            logger.notice(
                "stop with writes not confirmed by the peer (or a copy due): the next start catches up from the sealed bitmap, or copies the volume if none was sealed")
        }
        onStopRecorded?(value)
    }

    private func noticed(_ notice: PrimaryNotice) {
        switch notice {
        case let .diskFailed(operation, errno):
            lastError = "local \(operation) failed: \(String(cString: strerror(errno)))"
            health.record(operation, errno: errno)
        case let .peerDiskFailed(reason):
            onPeerDiskFailed?(reason)
        case let .peerNeedsFullCopy(reason):
            lastError = reason
            onPeerNeedsFullCopy?(reason)
        case let .fullCopyStarted(reason):
            logger.warning("the peer needs a full copy", metadata: ["reason": "\(reason)"])
            // The reason says why (a refusal by the peer names it; so does a version-2 peer).
            sessionStartReason = "a full copy: \(reason)"
            context.events.publish(resource: resource, "session-start", [
                "session_start": .string("full-copy"), "reason": .string(reason),
            ])
        case let .ahead(reason, outOfSync):
            // Between periodic cycles tracking is the mode's normal state, not a warning.
            logger.log(level: node.isBetweenCycles ? .info : .warning,
                       "Ahead: writes are acknowledged on this copy alone and tracked",
                       metadata: ["reason": "\(reason)", "out_of_sync_bytes": "\(outOfSync)"])
            context.events.publish(resource: resource, "ahead", [
                "reason": .string(reason), "out_of_sync_bytes": .int(Int64(clamping: outOfSync)),
            ])
            publishPeerDiskState()
            context.groups.primaryWentAhead(self, reason: reason)  // the group tracks together
        case let .catchUpStarted(bytes):
            logger.notice("catch-up starts", metadata: ["bytes": "\(bytes)", "session": "\(session)"])
            sessionStartReason = "catch-up after Ahead: only the regions written without the peer are copied"
            context.events.publish(resource: resource, "catch-up-started", ["bytes": .int(Int64(clamping: bytes))])
        case let .copySent(bytes):
            let name = copyRepairsVerify ? "verify-repair-sent" : node.basis.isCatchUp ? "catch-up-sent" : "initial-sync-sent"
            context.events.publish(resource: resource, name, ["bytes": .int(Int64(bytes))])
        case let .copyDone(bytes):
            let name = copyRepairsVerify ? "verify-repair-done" : node.basis.isCatchUp ? "catch-up-done" : "initial-sync-done"
            copyRepairsVerify = false
            context.events.publish(resource: resource, name, ["bytes": .int(Int64(bytes))])
            publishPeerDiskState()
            onPeerSynced?()
        case let .connectionState(state):
            if state == .connected { onLinkConnected?() }
            accountConnectionState(state)
            context.events.publish(resource: resource, "connection-state", ["connection_state": .string(state.rawValue)])
        case .acknowledgedWithoutPeer:
            acknowledgedWithoutPeer()  // before the answer that follows
        case .verifyStarted, .verifyMismatch, .verifyEnded, .verifyRepairStarted:
            noticedVerify(notice)
        case let .checksumResyncEnded(progress):
            noticedChecksumResync(progress)
        case .modeSwitched, .rpoTargetMissed:
            noticedProfile(notice)
        case .cycleStarted, .cycleCompleted:
            noticedCycle(notice)
        case let .localDisk(notice):
            noticedLocalDisk(notice)
        }
    }
}
