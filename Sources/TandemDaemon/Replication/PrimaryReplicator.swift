// PrimaryReplicator: runs ReplicationPrimary for one resource against the ring and the peer
// link. It is the export's NBDWriteSink: a write's NBD buffer is taken over (RetainedWrites),
// written locally and sent to the peer from that same buffer in one loop turn, kept for
// re-sends until the peer confirms it durable, and acknowledged when the state machine says
// so. It dials the peer and reconnects with backoff; with initial_sync full it copies the
// whole volume through the same Data stream before the peer counts as UpToDate. Loop thread
// only.
import DequeModule
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO
import TandemNBD

final class PrimaryReplicator: IOHandler, NBDWriteSink, PeerLinkDelegate {
    enum SlotKind { case free, write, flush, zeroes, zeroChunk, syncChunk }

    struct Slot {
        var kind: SlotKind = .free
        var mutation: NBDPendingMutation?
        var retainedIndex = 0
        var sequence: WriteSequence = 0
        var parent = 0  // zero chunks: the zeroes slot
        var remaining = 0  // zeroes: chunks not yet acknowledged
        var cursor: UInt64 = 0  // zeroes: next offset to issue
        var failed = false
        /// MonotonicClock times for the latency histograms: handed to us, submitted locally.
        var submittedNs: UInt64 = 0
        var localSubmittedNs: UInt64 = 0
        var diskOffset: UInt64 = 0  // local writes: the range, and how much of it is written
        var diskLength = 0
        var doneBytes = 0
        var fua = false
    }

    static let chunkBytes = 1 << 20
    static let flushTag: UInt32 = 0xFFFF_0001
    static let syncReadTag: UInt32 = 0xFFFF_0002
    static let stopFlushTag: UInt32 = 0xFFFF_0003
    /// On a slot's tag: the flush that makes its FUA write durable on a volume whose RWF_DSYNC
    /// writes are not trusted (Volume.honoursDSyncWrites).
    static let fuaFlushBit: UInt32 = 0x4000_0000

    let resource: String
    let spec: ResourceSpec
    let volume: Volume
    let context: ReplicationContext
    let counters: ResourceCounters
    let health: DiskHealth
    let logger: Logger
    private var machine: ReplicationPrimary
    private var actions: [PrimaryAction] = []
    private var batch: [PrimaryAction] = []
    private var deferred = Deque<PrimaryEvent>(minimumCapacity: 256)  // FIFO: O(1) at both ends
    private var slots: [Slot] = []
    private var freeSlots: [Int] = []
    private var parked = Deque<Int>(minimumCapacity: 256)  // slots waiting for room among the retained writes, in order
    private let retained: RetainedWrites
    /// Zero chunks of WRITE_ZEROES are written and sent from here.
    private let zeros: UnsafeMutableRawPointer
    private let scratch: UnsafeMutableRawBufferPointer
    private var handlerID: UInt32 = 0
    private var localWritesInFlight = 0

    private(set) var link: PeerLink?
    private(set) var enabled = false
    private var stopping = false
    private var onStopped: (() -> Void)?
    /// When stopping with FLUSH requests held: nil until the local flush completed.
    private var stopFlushSucceeded: Bool?
    private var stopFlushRunning = false
    private var nextDialNs: UInt64 = 0
    private var backoffNs: UInt64 = 250_000_000
    private lazy var resolver = PeerAddressResolver(loop: context.loop)
    private var peerHelloSeen = false
    private var barrierEpoch: Epoch = 0
    private var barrierCount: UInt32 = 0
    let session: UInt64
    private(set) var connectionState = "StandAlone"
    private(set) var lastError: String?
    /// Planned failover: no new writes; the callback runs once everything is confirmed.
    private var draining: (() -> Void)?

    // Initial full copy.
    private var syncCursor: UInt64 = 0
    private var syncWanted = false
    private var syncReadInFlight = false
    private var syncSlot: Int?
    private var syncLastSequence: WriteSequence = 0
    private var syncChunksOutstanding = 0
    private(set) var peerSynced: Bool
    /// Copy rate, measured on ticks at least a second apart (status: rate and ETA).
    private var syncSampleNs: UInt64 = 0
    private var syncSampleCursor: UInt64 = 0
    private var syncRateBytesPerSecond: UInt64 = 0
    /// How this session relates to what the peer holds (the Hello's `bitmap` field).
    private(set) var basis: SessionBasis
    /// The peer's first DurableAck of this session (this run), which it sends once it has
    /// recorded the session: before it the peer's state is unknown.
    private var peerHeard = false
    /// The sequence the peer was last told it holds everything through, on this link.
    private var confirmedOnLink: WriteSequence?
    private var stopRecorded = false
    private var peerStateAnnouncer = DiskStateAnnouncer(event: "peer-disk-state", field: "peer_disk_state")

    /// Runs once, before the first write of the session is submitted: the record must no
    /// longer say that the peer holds this volume's content.
    var onFirstWrite: (() -> Void)?
    /// Runs once when replication stops: the record's `cleanStop` (0: not clean).
    var onStopRecorded: ((UInt64) -> Void)?

    /// Why this session started as it did (status `session_start_reason`).
    var sessionStartReason = ""

    /// The peer asked for a planned failover (FailoverRequest).
    var onFailoverRequested: (() -> Void)?
    /// The peer refused the link because its disk failed (refusal disk-failed).
    var onPeerDiskFailed: ((String) -> Void)?
    /// The initial full copy completed: the peer holds everything.
    var onPeerSynced: (() -> Void)?

    init(spec: ResourceSpec, volume: Volume, buffers: DataBuffers, context: ReplicationContext,
         basis: SessionBasis, counters: ResourceCounters, health: DiskHealth, logger: Logger) {
        self.resource = spec.name
        self.counters = counters
        self.spec = spec
        self.volume = volume
        self.context = context
        self.health = health
        self.logger = logger
        // The state machine refuses a write larger than its buffer: leave room for two of the
        // largest NBD requests whatever async_buffer_bytes says.
        let bufferBytes = max(spec.asyncBufferBytes, 2 * UInt64(context.config.maxRequestBytes), UInt64(4 * Self.chunkBytes))
        machine = ReplicationPrimary(config: ReplicationPrimaryConfig(
            mode: spec.mode == .async ? .async : .sync, bufferBytesMax: bufferBytes))
        retained = RetainedWrites(buffers: buffers, arenaBytes: Int(bufferBytes),
                                  writeBytesMax: Int(context.config.maxRequestBytes),
                                  entriesMax: machine.config.writesInFlightMax + machine.config.requestsWaitingMax)
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, Self.chunkBytes) == 0 && memory != nil, "zero chunk allocation")
        zeros = memory!
        memset(zeros, 0, Self.chunkBytes)
        scratch = .allocate(byteCount: Int(context.config.maxRequestBytes) + Int(context.config.maxRequestBytes) / 255 + 64,
                            alignment: 16)
        session = UInt64.random(in: 1...UInt64.max)
        self.basis = basis
        peerSynced = basis != .fullCopy
        syncWanted = basis == .fullCopy
        actions.reserveCapacity(256)
        batch.reserveCapacity(256)
        handlerID = context.loop.register(self)
    }

    deinit {
        scratch.deallocate()
        free(zeros)
    }

    // MARK: control

    func enable() {
        enabled = true
        nextDialNs = 0
        dialIfDue(nowNs: ReplicationContext.nowNs())
    }

    func disable() {
        recordStop()
        enabled = false
        link?.close("disabled by the operator")
        connectionState = "StandAlone"
    }

    /// Stops taking writes and calls `done` once every admitted write is acknowledged and
    /// confirmed durable by the peer (planned failover).
    func drain(_ done: @escaping () -> Void) {
        draining = done
        checkDrained()
    }

    /// After a drain for a planned failover: tells the peer it may promote, then hangs up.
    func sendDemotedAndClose() {
        link?.send(.demoted(throughSequence: 0))
        link?.close("demoted for a planned failover")
    }

    var isConnectedToPeer: Bool { link?.isEstablished == true }

    var isDrained: Bool { machine.writesInFlight == 0 && parked.isEmpty && localWritesInFlight == 0 }

    func stop(_ done: @escaping () -> Void) {
        recordStop()
        stopping = true
        enabled = false
        onStopped = done
        link?.close("resource stopping")
        checkStopped()
    }

    /// Everything admitted was confirmed durable by the peer and no copy is due: the peer
    /// holds this volume's content, so the next session may skip the full copy.
    var isCleanForStop: Bool {
        localWritesInFlight == 0 && parked.isEmpty && machine.writesInFlight == 0 && machine.unconfirmedBytes == 0
            && peerSynced && !syncWanted
    }

    /// Persists (through the owner) whether this stop was clean, once, before the link goes.
    private func recordStop() {
        guard !stopRecorded else { return }
        stopRecorded = true
        let clean = isCleanForStop
        let value = clean ? (peerHeard ? session : basis.cleanStopValue) : 0
        if clean && value != 0 {
            logger.info("clean stop: the peer holds every write; the next start skips the full copy",
                        metadata: ["session": "\(session)"])
        } else {
            logger.notice("stop with writes not confirmed by the peer (or a copy due): the next start copies the volume")
        }
        onStopRecorded?(value)
    }

    private func checkStopped() {
        guard stopping, link == nil, localWritesInFlight == 0, !syncReadInFlight, onStopped != nil else { return }
        // Replication is being turned off: a write whose local I/O completed is on this
        // node's disk and is answered as such, a FLUSH once the local disk is flushed (on the
        // ring, like every other flush); anything else fails.
        let hasFlushes = slots.contains { $0.kind == .flush && $0.mutation != nil }
        if hasFlushes && stopFlushSucceeded == nil {
            guard !stopFlushRunning else { return }
            stopFlushRunning = true
            localWritesInFlight += 1
            context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.stopFlushTag)
            return
        }
        let flushed = stopFlushSucceeded == true && !health.isFailed
        guard let done = onStopped else { return }
        onStopped = nil
        for index in slots.indices where slots[index].mutation != nil {
            let slot = slots[index]
            let local = slot.kind == .write && !slot.failed && slot.sequence != 0
            slots[index].mutation?.finish(errno: local || (slot.kind == .flush && flushed) ? 0 : EIO)
            slots[index].mutation = nil
        }
        retained.releaseAll()
        context.loop.unregister(handlerID)
        done()
    }

    func tick() {
        let now = ReplicationContext.nowNs()
        dialIfDue(nowNs: now)
        feed(.tick)
        publishPeerDiskState()
        sampleSyncRate(nowNs: now)
    }

    /// Smoothed bytes per second of the initial copy (half the newest second, half before).
    private func sampleSyncRate(nowNs: UInt64) {
        guard syncWanted, !peerSynced, link?.isEstablished == true else {
            syncSampleNs = 0
            syncRateBytesPerSecond = 0
            return
        }
        guard syncSampleNs != 0 else {
            (syncSampleNs, syncSampleCursor) = (nowNs, syncCursor)
            return
        }
        let elapsedNs = nowNs - syncSampleNs
        guard elapsedNs >= 900_000_000 else { return }  // ticks come about once a second
        let recent = (syncCursor - syncSampleCursor) * 1_000_000_000 / elapsedNs
        syncRateBytesPerSecond = syncRateBytesPerSecond == 0 ? recent : (syncRateBytesPerSecond + recent) / 2
        (syncSampleNs, syncSampleCursor) = (nowNs, syncCursor)
    }

    // MARK: status

    var statusFields: [String: JSONValue] {
        let now = ReplicationContext.nowNs()
        var fields: [String: JSONValue] = [:]
        fields["connection_state"] = .string(connectionState)
        fields["peer_disk_state"] = .string(peerDiskState.rawValue)
        fields["replication_state"] = .string(replicationState)
        fields["lag_bytes"] = .int(Int64(machine.lagBytes))
        fields["rpo_ms"] = .int(Int64(machine.rpoAgeNs(nowNs: now) / 1_000_000))
        fields["unconfirmed_bytes"] = .int(Int64(machine.unconfirmedBytes))
        fields["writes_blocked"] = .bool(machine.isBlocked || !parked.isEmpty)
        fields["out_of_sync_bytes"] = .int(peerSynced ? 0 : Int64(volume.sizeBytes - min(syncCursor, volume.sizeBytes)))
        fields["resync_progress"] = .double(volume.sizeBytes == 0 ? 1 : Double(syncCursor) / Double(volume.sizeBytes))
        fields["resync_rate_bytes_per_second"] = .int(Int64(clamping: syncRateBytesPerSecond))
        if syncRateBytesPerSecond > 0, !peerSynced {
            let remaining = volume.sizeBytes - min(syncCursor, volume.sizeBytes)
            fields["resync_eta_seconds"] = .int(Int64(clamping: (remaining + syncRateBytesPerSecond - 1) / syncRateBytesPerSecond))
        }
        fields["retained_writes"] = .int(Int64(retained.count))
        fields["spilled_writes"] = .int(Int64(clamping: retained.spilledWrites))
        fields["enabled"] = .bool(enabled)
        fields["redundant"] = .bool(link?.isEstablished == true && machine.isPeerReady && peerSynced)
        fields["session_start"] = .string(Self.word(basis))
        fields["session_start_reason"] = .string(sessionStartReason)
        if let lastError { fields["last_error"] = .string(lastError) }
        return fields
    }

    /// The status word for a session basis.
    static func word(_ basis: SessionBasis) -> String {
        switch basis {
        case .fullCopy: return "full-copy"
        case .assumeInSync: return "assumed-in-sync"
        case .continues: return "clean-restart"
        }
    }

    /// A connection refused here (the resource is primary on this node).
    func noteRefusal(_ reason: String) { noteFailure(reason) }

    var peerDiskState: DiskState {
        DiskState.ofPeer(heard: peerHeard, peerReady: link?.isEstablished == true && machine.isPeerReady,
                         copying: syncWanted && !peerSynced, sync: machine.config.mode == .sync,
                         lagBytes: machine.lagBytes)
    }

    private var replicationState: String {
        guard link?.isEstablished == true else { return enabled ? "Off" : "Off" }
        if !peerSynced && syncWanted { return "SyncSource" }
        return machine.isBlocked ? "Blocked" : "Established"
    }

    // MARK: NBD sink

    func submit(_ mutation: NBDPendingMutation) {
        if stopping || draining != nil { return mutation.finish(errno: draining != nil ? EROFS : EIO) }
        // A failed disk takes no more writes (docs/replication.md "Disk failures").
        if health.isFailed { return mutation.finish(errno: EIO) }
        if mutation.kind != .flush && mutation.kind != .trim, let invalidate = onFirstWrite {
            onFirstWrite = nil
            invalidate()
        }
        let index = allocateSlot()
        slots[index].mutation = mutation
        slots[index].submittedNs = MonotonicClock.nowNs()
        switch mutation.kind {
        case .write: slots[index].kind = .write
        case .flush: slots[index].kind = .flush
        case .writeZeroes:
            slots[index].kind = .zeroes
            slots[index].cursor = mutation.diskOffset
        case .trim:
            // Trimmed blocks may read back as anything; doing nothing on both nodes keeps
            // the replicas identical, which a local-only discard would not.
            freeSlot(index)
            return mutation.finish(errno: 0)
        }
        parked.append(index)
        admitParked()
        perform()
    }

    /// Hands parked requests to the state machine in order, while the log has room.
    private func admitParked() {
        // While the state machine is blocked its own FIFO holds requests; it is bounded, so the
        // rest wait here (bounded in turn by the NBD connections' request limits).
        while let index = parked.first, !syncReadInFlight, !syncWaitingForQuiet, !machine.isBlocked {
            guard admit(index) else { return }
            parked.removeFirst()
        }
    }

    private var syncWaitingForQuiet: Bool { syncWanted && syncReadPending }
    private var syncReadPending = false

    /// False when there is no room among the retained writes yet.
    private func admit(_ index: Int) -> Bool {
        let slot = slots[index]
        switch slot.kind {
        case .flush:
            feed(.flushSubmitted(request: RequestID(index)))
            return true
        case .write:
            let mutation = slot.mutation!
            guard !retained.isFull else { return false }
            if let buffer = mutation.takeBufferIfSpare() {
                slots[index].retainedIndex = retained.appendLent(buffer, length: mutation.diskLength)
            } else {
                guard let retainedIndex = retained.appendCopy(of: mutation.buffer!, length: mutation.diskLength) else {
                    return false
                }
                slots[index].retainedIndex = retainedIndex
            }
            feed(.writeSubmitted(request: RequestID(index), offsetBytes: mutation.diskOffset,
                                 lengthBytes: UInt32(mutation.diskLength), fua: mutation.fua))
            return true
        case .zeroes:
            return admitZeroChunks(index)
        default:
            preconditionFailure("slot \(index) of kind \(slot.kind) parked")
        }
    }

    /// Issues the zero chunks of a WRITE_ZEROES as ordinary replicated writes.
    private func admitZeroChunks(_ index: Int) -> Bool {
        let mutation = slots[index].mutation!
        let end = mutation.diskOffset + UInt64(mutation.diskLength)
        while slots[index].cursor < end {
            let offset = slots[index].cursor
            let length = Int(min(UInt64(Self.chunkBytes), end - offset))
            guard !retained.isFull else { return false }
            let retainedIndex = retained.appendShared(zeros, length: length)
            let chunk = allocateSlot()
            slots[chunk].kind = .zeroChunk
            slots[chunk].parent = index
            slots[chunk].retainedIndex = retainedIndex
            slots[index].remaining += 1
            slots[index].cursor = offset + UInt64(length)
            let fua = mutation.fua && slots[index].cursor == end
            feed(.writeSubmitted(request: RequestID(chunk), offsetBytes: offset, lengthBytes: UInt32(length), fua: fua))
        }
        return true
    }

    /// Gives back what the state machine no longer holds (acknowledged and durable on the
    /// peer). Returning a lent buffer may wake NBD connections waiting for one, which may
    /// submit new writes: so this runs only after a batch of actions is done.
    private func releaseRetained() {
        let held = retained.count
        retained.releaseFront { [machine] sequence in machine.epoch(ofSequence: sequence) == nil }
        guard retained.count < held, !parked.isEmpty else { return }
        admitParked()
        if !actions.isEmpty { perform() }
    }

    // MARK: slots

    private func allocateSlot() -> Int {
        if let index = freeSlots.popLast() { return index }
        slots.append(Slot())
        return slots.count - 1
    }

    private func freeSlot(_ index: Int) {
        slots[index] = Slot()
        freeSlots.append(index)
    }

    // MARK: the state machine

    private func feed(_ event: PrimaryEvent) {
        machine.handle(event, nowNs: ReplicationContext.nowNs(), into: &actions)
    }

    /// Carries out actions until none are left (actions may produce events that produce more).
    private func perform() {
        while !actions.isEmpty || !deferred.isEmpty {
            if actions.isEmpty {
                let event = deferred.removeFirst()
                feed(event)
                continue
            }
            swap(&actions, &batch)
            for action in batch { execute(action) }
            batch.removeAll(keepingCapacity: true)
        }
        admitParked()
        if !actions.isEmpty { return perform() }
        continueSync()
        checkDrained()
        releaseRetained()
        confirmPeerIfInSync()
    }

    private func execute(_ action: PrimaryAction) {
        switch action {
        case .submitLocalWrite(let write): submitLocalWrite(write)
        case .submitLocalFlush:
            context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.flushTag)
            localWritesInFlight += 1
        case .send(let message): send(message)
        case .acknowledgeWrite(let request): acknowledged(Int(request))
        case .acknowledgeFlush(let request):
            // After a disk failure no flush can promise durability.
            let index = Int(request)
            slots[index].mutation?.finish(errno: health.isFailed ? EIO : 0)
            freeSlot(index)
        case .writesBlocked, .writesUnblocked: break
        case .protocolViolation(let reason):
            link?.closeForViolation("protocol violation: \(reason)")
        }
    }

    private func submitLocalWrite(_ write: LocalWrite) {
        let index = Int(write.request)
        slots[index].sequence = write.sequence
        retained.assign(index: slots[index].retainedIndex, sequence: write.sequence)
        switch slots[index].kind {
        case .write, .zeroChunk: break
        case .syncChunk:
            // The block was just read from this volume: nothing to write locally.
            syncLastSequence = write.sequence
            deferred.append(.localWriteCompleted(sequence: write.sequence))
            return
        default: preconditionFailure("local write for a \(slots[index].kind) slot")
        }
        slots[index].diskOffset = write.offsetBytes
        slots[index].diskLength = Int(write.lengthBytes)
        slots[index].doneBytes = 0
        slots[index].fua = write.fua
        submitLocalIO(index)
    }

    /// Writes what is left of a slot's range (all of it, or the rest after a short write).
    private func submitLocalIO(_ index: Int) {
        localWritesInFlight += 1
        slots[index].localSubmittedNs = MonotonicClock.nowNs()
        let slot = slots[index]
        let buffer = retained.pointer(index: slot.retainedIndex) + slot.doneBytes
        context.loop.prepareVolumeIO(write: true, volume: volume, buffer: buffer, length: slot.diskLength - slot.doneBytes,
                                     offset: slot.diskOffset + UInt64(slot.doneBytes), dsync: slot.fua && volume.honoursDSyncWrites,
                                     handler: handlerID, tag: UInt32(index))
    }

    private func acknowledged(_ index: Int) {
        switch slots[index].kind {
        case .write:
            if spec.mode == .sync && !slots[index].failed {
                counters.replicatedWriteLatency.record(since: slots[index].submittedNs)
            }
            slots[index].mutation?.finish(errno: slots[index].failed ? EIO : 0)
            freeSlot(index)
        case .zeroChunk:
            let parent = slots[index].parent
            if slots[index].failed { slots[parent].failed = true }
            freeSlot(index)
            slots[parent].remaining -= 1
            let mutation = slots[parent].mutation!
            if slots[parent].remaining == 0 && slots[parent].cursor == mutation.diskOffset + UInt64(mutation.diskLength) {
                mutation.finish(errno: slots[parent].failed ? EIO : 0)
                freeSlot(parent)
            }
        case .syncChunk:
            syncChunksOutstanding -= 1
            freeSlot(index)
        default: preconditionFailure("acknowledgement for a \(slots[index].kind) slot")
        }
    }

    // MARK: local completions

    func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        switch tag {
        case Self.flushTag:
            localWritesInFlight -= 1
            if result < 0 { diskFailed("flush", result) }
            feed(.localFlushCompleted)
        case Self.syncReadTag:
            syncReadCompleted(result)
        case Self.stopFlushTag:
            localWritesInFlight -= 1
            if result < 0 { diskFailed("flush", result) }
            stopFlushSucceeded = result == 0
            return checkStopped()
        case let tag where tag & Self.fuaFlushBit != 0:
            localWritesInFlight -= 1
            let index = Int(tag & ~Self.fuaFlushBit)
            if result < 0 {
                diskFailed("flush", result)
                slots[index].failed = true
            }
            feed(.localWriteCompleted(sequence: slots[index].sequence))
        default:
            localWritesInFlight -= 1
            let index = Int(tag)
            let left = slots[index].diskLength - slots[index].doneBytes
            if result == -EINTR || result == -EAGAIN || (result > 0 && Int(result) < left) {
                // Interrupted or short (e.g. the file system ran out of space part way): the
                // rest is tried again, and fails with the disk's own errno if it must.
                if result > 0 { slots[index].doneBytes += Int(result) }
                return submitLocalIO(index)
            }
            if result <= 0 {
                diskFailed("write", result == 0 ? -EIO : result)
                slots[index].failed = true
            } else {
                counters.localWriteLatency.record(since: slots[index].localSubmittedNs)
                if slots[index].fua && !volume.honoursDSyncWrites {
                    // The write is done but not known durable: flush before it counts as complete.
                    localWritesInFlight += 1
                    return context.loop.prepareFlush(volume: volume, handler: handlerID,
                                                     tag: UInt32(index) | Self.fuaFlushBit)
                }
            }
            feed(.localWriteCompleted(sequence: slots[index].sequence))
        }
        perform()
        checkStopped()
    }

    private func diskFailed(_ operation: String, _ result: Int32) {
        let reason = result < 0 ? String(cString: strerror(-result)) : "short transfer"
        lastError = "local \(operation) failed: \(reason)"
        health.record(operation, result: result)
    }

    private func checkDrained() {
        guard let done = draining, isDrained else { return }
        draining = nil
        done()
    }
}

// MARK: - The peer link

extension PrimaryReplicator {
    private func dialIfDue(nowNs: UInt64) {
        guard enabled, !stopping, link == nil, !resolver.isResolving, nowNs >= nextDialNs, let peer = spec.peer
        else { return }
        nextDialNs = nowNs + backoffNs
        backoffNs = min(backoffNs * 2, 5_000_000_000)
        // A name is looked up at every dial, off the loop thread; the dial goes on when it answers.
        setConnectionState("Connecting")
        resolver.resolve(peer.address) { [weak self] result in self?.dial(peer, result) }
    }

    private func dial(_ peer: PeerSpec, _ addresses: Result<[SocketAddress], AddressLookupError>) {
        guard enabled, !stopping, link == nil else { return }
        do {
            let connection = try context.clientConnection(peerName: peer.name)
            let socket = try PeerSocket(loop: context.loop, connectTo: addresses.get())
            link = PeerLink(socket: socket, connection: connection, hello: ownHello, delegate: self,
                            counters: context.counters, logger: logger)
            setConnectionState("Connecting")
        } catch let error as ControlError {
            noteFailure(error.message)
        } catch {
            noteFailure("\(error)")
        }
    }

    private var ownHello: WireHello {
        WireHello(role: .primary, nodeName: context.config.nodeName, resourceName: resource,
                  volumeSizeBytes: volume.sizeBytes, generations: WireGenerations(current: session, bitmap: basis.wireValue(session: session)),
                  promotionNumber: 0)
    }

    private func setConnectionState(_ state: String) {
        guard state != connectionState else { return }
        connectionState = state
        context.events.publish(resource: resource, "connection-state", ["connection_state": .string(state)])
    }

    private func noteFailure(_ reason: String) {
        if reason != lastError {
            logger.warning("peer link", metadata: ["reason": "\(reason)"])
            context.events.publish(resource: resource, "peer-error", ["message": .string(reason)])
        }
        lastError = reason
    }

    func peerLink(_ link: PeerLink, validate hello: WireHello) -> PeerLinkVerdict {
        guard hello.resourceName == resource else {
            return .refuse(.unknownResource, "expected resource '\(resource)', peer names '\(hello.resourceName)'")
        }
        guard hello.volumeSizeBytes == volume.sizeBytes else {
            return .refuse(.sizeMismatch, "local volume has \(volume.sizeBytes) bytes, peer \(hello.volumeSizeBytes)")
        }
        guard hello.role == .secondary else {
            return .refuse(.roleConflict, "this node is primary and so is the peer")
        }
        return .accept(delegate: self, hello: nil)
    }

    func peerLinkEstablished(_ link: PeerLink) {
        backoffNs = 250_000_000
        lastError = nil
        peerHelloSeen = false
        barrierEpoch = 0
        barrierCount = 0
        confirmedOnLink = nil
        setConnectionState("Connected")
        feed(.connectionUp)
        perform()
    }

    func peerLink(_ link: PeerLink, received message: WireMessage) {
        guard link === self.link, machine.isConnected else { return }
        switch message {
        case .replicaHello(let hello):
            guard !peerHelloSeen else { return link.closeForViolation("protocol violation: a second ReplicaHello") }
            guard let copy = DiskState(wire: hello.diskState) else {
                return link.closeForViolation("protocol violation: ReplicaHello with disk state code \(hello.diskState.rawValue)")
            }
            peerHelloSeen = true
            if !peerHeard {
                peerHeard = true
                publishPeerDiskState()
            }
            feed(.peerMessage(.hello(durableThroughEpoch: hello.durableThroughEpoch, copy: copy)))
        case .durableAck(let epoch):
            guard peerHelloSeen else { return link.closeForViolation("protocol violation: DurableAck before ReplicaHello") }
            feed(.peerMessage(.durableThroughEpoch(epoch)))
        case .dataAck(_, let sequence):
            guard peerHelloSeen else { return link.closeForViolation("protocol violation: DataAck before ReplicaHello") }
            feed(.peerMessage(.dataAck(sequence: sequence)))
        case .ping(let nonce):
            link.send(.pong(nonce: nonce))
        case .pong:
            break
        case .failoverRequest:
            context.events.publish(resource: resource, "failover-requested", ["peer": .string(link.peerNodeName)])
            onFailoverRequested?()
        default:
            return link.closeForViolation("protocol violation: a secondary sent \(message.type)")
        }
        perform()
        checkSyncDone()
    }

    func peerLinkClosed(_ link: PeerLink, reason: String) {
        guard link === self.link else { return }
        self.link = nil
        if let failure = link.failure { counters.count(failure) }
        if machine.isConnected { feed(.connectionDown) }
        noteFailure(reason)
        if reason.hasPrefix("refused by the peer: \(WireRefusal.unrelatedData)") && basis != .fullCopy {
            startFullCopy(because: reason)
        }
        setConnectionState(enabled ? "Connecting" : "StandAlone")
        perform()
        publishPeerDiskState()
        checkStopped()
        if link.peerRefusal == .diskFailed { onPeerDiskFailed?(reason) }
    }

    /// The peer cannot continue from this session's basis: copy the whole volume.
    private func startFullCopy(because reason: String) {
        logger.warning("the peer needs a full copy", metadata: ["reason": "\(reason)"])
        basis = .fullCopy
        sessionStartReason = "the peer refused to continue without a copy: \(reason)"
        peerSynced = false
        syncWanted = true
        syncCursor = 0
        if let invalidate = onFirstWrite {
            onFirstWrite = nil
            invalidate()
        }
        context.events.publish(resource: resource, "session-start", [
            "session_start": .string("full-copy"), "reason": .string("the peer refused to continue: \(reason)"),
        ])
    }

    /// One event per change of the peer's disk state as this node sees it (changes between
    /// UpToDate and Consistent coalesced, see `DiskState.publishesNow`; `tick` catches up).
    func publishPeerDiskState() {
        peerStateAnnouncer.announce(peerDiskState, resource: resource, events: context.events)
    }

    /// Tells the peer it holds every acknowledged write (SyncComplete), whenever that
    /// becomes true: in sync mode once per connection (writes are acknowledged only after
    /// the peer applied them), in async mode each time the lag returns to 0 after new writes.
    private func confirmPeerIfInSync() {
        guard let link, link.isEstablished, machine.isPeerReady, peerSynced, !syncWanted else { return }
        let sync = machine.config.mode == .sync
        guard sync || machine.lagBytes == 0 else { return publishPeerDiskState() }
        let through = machine.lastSequence
        if confirmedOnLink == nil || (!sync && confirmedOnLink != through) {
            confirmedOnLink = through
            link.send(.syncComplete(throughSequence: through))
        }
        publishPeerDiskState()
    }

    /// Encodes one message of the state machine onto the link.
    func send(_ message: PrimaryMessage) {
        guard let link, link.isEstablished else { return }
        switch message {
        case .data(let data): sendData(data, on: link)
        case .epochBarrier(let epoch):
            let count = barrierEpoch == epoch ? barrierCount : 0
            link.send(.epochBarrier(epoch: epoch, writeCount: count))
        case .flushRequest(let epoch): link.send(.flushRequest(epoch: epoch))
        case .resendComplete(let sequence): link.send(.resendComplete(throughSequence: sequence))
        }
    }

    private func sendData(_ data: DataMessage, on link: PeerLink) {
        guard let block = retained.payload(sequence: data.sequence) else {
            preconditionFailure("no retained payload for write \(data.sequence)")
        }
        if barrierEpoch != data.epoch {
            barrierEpoch = data.epoch
            barrierCount = 0
        }
        barrierCount += 1
        let (header, compressed) = WirePayload.prepare(
            block: block, epoch: data.epoch, sequence: data.sequence, offsetBytes: data.offsetBytes,
            fua: data.flags.contains(.fua), acknowledgedAfterApply: data.flags.contains(.acknowledgedAfterApply),
            compress: spec.compression == .lz4, scratch: scratch)
        let payload = compressed.map { UnsafeRawBufferPointer(rebasing: scratch[0..<$0]) } ?? block
        if link.sendData(header, payload: payload) {
            if retained.isInitialCopy(sequence: data.sequence) {
                counters.resyncedBytes += UInt64(block.count)
            } else {
                counters.replicatedBytes += UInt64(block.count)
            }
        }
    }
}

// MARK: - Initial full copy

extension PrimaryReplicator {
    /// Reads the next chunk once no local write is in flight, so that the chunk carries the
    /// newest data of its region and is sequenced after every write that touched it.
    func continueSync() {
        let wantsChunk = syncWanted && !stopping && !health.isFailed && !syncReadInFlight && machine.isPeerReady
            && syncCursor < volume.sizeBytes && !machine.isBlocked
        syncReadPending = wantsChunk
        guard wantsChunk, localWritesInFlight == 0 else { return }
        let length = Int(min(UInt64(Self.chunkBytes), volume.sizeBytes - syncCursor))
        guard let (retainedIndex, pointer) = retained.appendSpilled(length: length, initialCopy: true) else {
            syncReadPending = false
            return
        }
        let index = allocateSlot()
        slots[index].kind = .syncChunk
        slots[index].retainedIndex = retainedIndex
        syncSlot = index
        syncReadInFlight = true
        syncReadPending = false
        context.loop.prepareVolumeIO(write: false, volume: volume, buffer: pointer, length: length,
                                     offset: syncCursor, dsync: false, handler: handlerID, tag: Self.syncReadTag)
    }

    func syncReadCompleted(_ result: Int32) {
        syncReadInFlight = false
        guard let index = syncSlot else { preconditionFailure("sync read without a slot") }
        syncSlot = nil
        let length = Int(min(UInt64(Self.chunkBytes), volume.sizeBytes - syncCursor))
        guard result == Int32(length) else {
            diskFailed("read", result)
            retained.dropLast(index: slots[index].retainedIndex)
            freeSlot(index)
            // The copy stays wanted and unfinished (the failed disk reads no more of it): the
            // peer's copy is Inconsistent, not UpToDate.
            return
        }
        let offset = syncCursor
        syncCursor += UInt64(length)
        syncChunksOutstanding += 1
        feed(.writeSubmitted(request: RequestID(index), offsetBytes: offset, lengthBytes: UInt32(length), fua: false))
        if syncCursor >= volume.sizeBytes {
            context.events.publish(resource: resource, "initial-sync-sent", ["bytes": .int(Int64(volume.sizeBytes))])
        }
    }

    /// Once the last chunk's epoch is durable on the peer, the peer is UpToDate.
    func checkSyncDone() {
        guard syncWanted, syncCursor >= volume.sizeBytes, !syncReadInFlight, syncChunksOutstanding == 0,
            syncLastSequence != 0,
            machine.epoch(ofSequence: syncLastSequence) == nil, let link, link.isEstablished
        else { return }
        syncWanted = false
        peerSynced = true
        // The copy is complete through its last chunk: the peer holds a consistent image
        // from now on (UpToDate once it also holds every acknowledged write).
        confirmedOnLink = syncLastSequence
        link.send(.syncComplete(throughSequence: syncLastSequence))
        context.events.publish(resource: resource, "initial-sync-done", ["bytes": .int(Int64(volume.sizeBytes))])
        publishPeerDiskState()
        onPeerSynced?()
    }
}
