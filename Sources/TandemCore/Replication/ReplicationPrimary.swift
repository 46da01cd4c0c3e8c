// ReplicationPrimary: the primary's side of one resource's replication, as a pure state
// machine. It assigns epochs and sequence numbers, decides when application requests are
// acknowledged (sync or async), keeps the retransmission buffer until the secondary has
// confirmed each epoch durable, and accounts the RPO (lag bytes and age).
// It performs no I/O and reads no clock: the caller passes `nowNs` with every event and
// carries out the returned actions. Confined to one thread (the resource's event loop).

public struct ReplicationPrimary: Sendable {
    struct Write: Sendable {
        var request: RequestID
        var sequence: WriteSequence
        var epoch: Epoch
        var offsetBytes: UInt64
        var lengthBytes: UInt32
        var fua: Bool
        var localDone = false
        var peerApplied = false
        var acknowledged = false
        var acknowledgedAtNs: UInt64 = 0
        /// Acknowledged as a sync write (after the peer applied it), whatever the mode is when
        /// its turn comes: `admitsSync` when it was admitted (adaptive mode switches).
        var sync: Bool
        var admittedAtNs: UInt64
        /// A copy chunk, not an application write (`.copyChunkSubmitted`).
        var copy = false
    }

    enum WaitingRequest: Sendable {
        case write(request: RequestID, offsetBytes: UInt64, lengthBytes: UInt32, fua: Bool, copy: Bool)
        case flush(request: RequestID)
    }

    struct PendingFlush: Sendable {
        var request: RequestID
        var epoch: Epoch
        var sync: Bool
    }

    public let config: ReplicationPrimaryConfig
    /// How writes and flushes admitted from now on are acknowledged: `config.mode` until the
    /// owner (adaptive mode) switches it. What was admitted keeps the mode it was admitted in.
    public private(set) var admitsSync: Bool

    /// The peer's DataAck latencies (admission to ack) since the owner last took them, and the
    /// highest of them (adaptive mode's input).
    public private(set) var peerAckSamples = 0
    public private(set) var peerAckLatencyMaxNs: UInt64 = 0
    /// Bytes the peer confirmed durable over the stream's life (the drain rate's input).
    public private(set) var peerDurableBytesTotal: UInt64 = 0

    /// Admitted writes in sequence order, kept until acknowledged and confirmed durable.
    var writes: BoundedQueue<Write>
    private var waiting: BoundedQueue<WaitingRequest>
    var flushes: BoundedQueue<PendingFlush>

    private var nextSequence: WriteSequence = 1
    /// The epoch the next write joins unless `startsNewEpoch`.
    public internal(set) var openEpoch: Epoch = 0
    var startsNewEpoch = true

    public private(set) var isConnected = false
    /// The peer left this stream (`.trackingStarted`): the owner's bitmap covers what it lacks.
    public private(set) var isTracking = false
    /// Connected and the secondary's hello received: the stream is live.
    public private(set) var isPeerReady = false
    public private(set) var peerDurableEpoch: Epoch = 0
    private var peerFlushRequestedEpoch: Epoch = 0

    private var localFlushInFlight = false
    private var localFlushCoversEpoch: Epoch = 0
    public private(set) var localDurableEpoch: Epoch = 0
    /// A local flush has completed in this run. Epoch 0 is "nothing written in this run", not
    /// "durable": the volume may hold writes of an earlier run (or received as secondary)
    /// that are only in the disk's cache, so a FLUSH is answered only after a flush.
    private var flushedOnce = false

    /// Payload bytes of admitted writes whose epoch the peer has not confirmed durable.
    public private(set) var unconfirmedBytes: UInt64 = 0
    /// Acknowledged to the application, not yet confirmed durable by the secondary (copy
    /// chunks too: their regions are as missing on the peer as a write's).
    public private(set) var lagBytes: UInt64 = 0
    /// The copy chunks' share of `lagBytes`.
    public private(set) var copyLagBytes: UInt64 = 0
    /// `lagBytes` without the copy chunks: the application writes the peer has not confirmed
    /// durable (what RPO pacing holds; a copy's regions were lacking from before).
    public var applicationLagBytes: UInt64 { lagBytes - copyLagBytes }
    /// Payload bytes of every write still held (admitted, not yet released): what the
    /// driver keeps in its retained store. Admission keeps it ≤ `bufferBytesMax`, so a
    /// store of that size can never refuse an admitted write.
    public internal(set) var retainedBytes: UInt64 = 0
    public var isBlocked: Bool { !waiting.isEmpty }
    public var writesInFlight: Int { writes.count }
    /// FLUSH requests admitted and not yet acknowledged.
    public var flushesPending: Int { flushes.count }
    /// The FLUSH `request` (admitted, not yet acknowledged) still waits for the peer: it was
    /// admitted sync, the peer is still in this stream, and it has not confirmed the epoch
    /// durable. Its acknowledgement would promise both copies durable (acknowledgeFlushes).
    public func flushWaitsForPeer(_ request: RequestID) -> Bool {
        for index in 0..<flushes.count where flushes[index].request == request {
            return flushes[index].sync && !isTracking && flushes[index].epoch > peerDurableEpoch
        }
        return false
    }

    /// Calls `body` with the range of every write still held, oldest first.
    public func forEachHeldWrite(_ body: (_ offsetBytes: UInt64, _ lengthBytes: UInt32) -> Void) {
        for index in 0..<writes.count { body(writes[index].offsetBytes, writes[index].lengthBytes) }
    }
    /// A write still held (not yet durable on the peer) overlaps [start, end).
    public func holdsWrite(overlapping start: UInt64, _ end: UInt64) -> Bool {
        for index in 0..<writes.count
        where start < writes[index].offsetBytes + UInt64(writes[index].lengthBytes) && writes[index].offsetBytes < end {
            return true
        }
        return false
    }
    /// The sequence number of the newest admitted write (0: none yet).
    public var lastSequence: WriteSequence { nextSequence - 1 }
    /// The newest sequence through which every admitted write has been acknowledged (writes
    /// that left the buffer were). Scans only up to the first unacknowledged write.
    public var acknowledgedThroughSequence: WriteSequence {
        for index in 0..<writes.count where !writes[index].acknowledged { return writes[index].sequence - 1 }
        return nextSequence - 1
    }
    /// The oldest write still held; `lastSequence + 1` when none is: every write before it
    /// is released (acknowledged and durable on the peer) and its payload may be freed.
    public var oldestHeldSequence: WriteSequence { writes.first?.sequence ?? nextSequence }
    /// The epoch of the newest write still held (0: none).
    public var newestHeldEpoch: Epoch { writes.last?.epoch ?? 0 }

    /// Whether a write of `lengthBytes` submitted now would be admitted at once.
    public func canAdmitWrite(lengthBytes: UInt32) -> Bool {
        waiting.isEmpty && canAdmit(.write(request: 0, offsetBytes: 0, lengthBytes: lengthBytes, fua: false, copy: false))
    }

    /// Whether `writes` more writes of `bytes` in all would be admitted at once (room that a
    /// caller reserves for writes it will submit later, plus one of its own).
    public func hasRoom(writes count: Int, bytes: UInt64) -> Bool {
        waiting.isEmpty && writes.count + count <= writes.capacity && retainedBytes + bytes <= config.bufferBytesMax
    }

    /// Whether a FLUSH submitted now would be admitted at once.
    public var canAdmitFlush: Bool { waiting.isEmpty && !flushes.isFull }

    public init(config: ReplicationPrimaryConfig) {
        self.config = config
        self.admitsSync = config.mode == .sync
        self.writes = BoundedQueue(capacity: config.writesInFlightMax)
        self.waiting = BoundedQueue(capacity: config.requestsWaitingMax)
        self.flushes = BoundedQueue(capacity: config.flushesPendingMax)
    }

    /// Adaptive mode: writes and flushes admitted from now on are acknowledged as `mode` says.
    public mutating func admit(as mode: ReplicationAckMode) {
        admitsSync = mode == .sync
        guard !admitsSync, config.testingFault == .switchToAsyncReleasesSyncWrites else { return }
        for index in 0..<writes.count where !writes[index].acknowledged { writes[index].sync = false }
    }

    /// The DataAck latencies gathered since the last call: their count and the highest.
    public mutating func takePeerAckLatency() -> (samples: Int, maxNs: UInt64) {
        defer { peerAckSamples = 0; peerAckLatencyMaxNs = 0 }
        return (peerAckSamples, peerAckLatencyMaxNs)
    }

    public mutating func handle(
        _ event: PrimaryEvent, nowNs: UInt64, into actions: inout [PrimaryAction]
    ) {
        switch event {
        case let .writeSubmitted(request, offsetBytes, lengthBytes, fua):
            precondition(lengthBytes > 0, "zero-length write")
            precondition(UInt64(lengthBytes) <= config.bufferBytesMax, "write larger than the buffer")
            enqueueOrAdmit(
                .write(request: request, offsetBytes: offsetBytes, lengthBytes: lengthBytes, fua: fua, copy: false),
                nowNs: nowNs, into: &actions)
        case let .copyChunkSubmitted(request, offsetBytes, lengthBytes):
            precondition(lengthBytes > 0 && UInt64(lengthBytes) <= config.bufferBytesMax, "copy chunk of \(lengthBytes) bytes")
            enqueueOrAdmit(
                .write(request: request, offsetBytes: offsetBytes, lengthBytes: lengthBytes, fua: false, copy: true),
                nowNs: nowNs, into: &actions)
        case let .flushSubmitted(request):
            enqueueOrAdmit(.flush(request: request), nowNs: nowNs, into: &actions)
        case let .localWriteCompleted(sequence):
            guard let index = index(ofSequence: sequence) else {
                preconditionFailure("completion for unknown write \(sequence)")
            }
            precondition(!writes[index].localDone, "write \(sequence) completed twice")
            writes[index].localDone = true
            acknowledgeIfDone(index, nowNs: nowNs, into: &actions)
            submitLocalFlushIfDue(into: &actions)
        case .localFlushCompleted:
            precondition(localFlushInFlight, "flush completion without a flush")
            localFlushInFlight = false
            flushedOnce = true
            localDurableEpoch = max(localDurableEpoch, localFlushCoversEpoch)
            acknowledgeFlushes(into: &actions)
            submitLocalFlushIfDue(into: &actions)
        case let .peerMessage(message):
            receive(message, nowNs: nowNs, into: &actions)
        case .connectionUp:
            precondition(!isConnected, "connection up twice")
            precondition(!isTracking, "a tracking stream never reconnects")
            isConnected = true
            isPeerReady = false
        case .connectionDown:
            isConnected = false
            isPeerReady = false
        case .trackingStarted:
            startTracking(nowNs: nowNs, into: &actions)
        case .peerFlushWanted:
            if !startsNewEpoch { closeOpenEpoch(into: &actions) }
            requestPeerFlush(through: openEpoch, into: &actions)
        case .epochCloseWanted:
            if !startsNewEpoch { closeOpenEpoch(into: &actions) }
        case .tick:
            break
        }
        releaseFinished()
        admitWaiting(nowNs: nowNs, into: &actions)
        checkInvariants()
    }

    private func checkInvariants() {
        precondition(unconfirmedBytes <= config.bufferBytesMax, "replication buffer overflow")
        precondition(lagBytes <= unconfirmedBytes, "lag exceeds the unconfirmed bytes")
        precondition(copyLagBytes <= lagBytes, "the copy's lag exceeds the lag")
        precondition(unconfirmedBytes <= retainedBytes && retainedBytes <= config.bufferBytesMax,
                     "retained bytes out of bounds")
        precondition(peerDurableEpoch <= openEpoch && localDurableEpoch <= openEpoch)
        precondition(waiting.isEmpty || !canAdmit(waiting.first!), "a waiting request could run")
        if let first = writes.first {
            precondition(first.sequence + WriteSequence(writes.count) == nextSequence,
                         "the buffer is not contiguous")
        }
    }

    // MARK: Admission

    private mutating func enqueueOrAdmit(
        _ request: WaitingRequest, nowNs: UInt64, into actions: inout [PrimaryAction]
    ) {
        if waiting.isEmpty && canAdmit(request) {
            admit(request, nowNs: nowNs, into: &actions)
            return
        }
        precondition(!waiting.isFull, "more application requests than requestsWaitingMax")
        if waiting.isEmpty {
            actions.append(.writesBlocked)
            // The buffer drains only as the secondary confirms epochs durable: ask for that
            // now rather than at the secondary's next group commit.
            let newestClosedEpoch = startsNewEpoch ? openEpoch : openEpoch - 1
            if newestClosedEpoch > peerFlushRequestedEpoch {
                requestPeerFlush(through: newestClosedEpoch, into: &actions)
            }
        }
        waiting.append(request)
    }

    private func canAdmit(_ request: WaitingRequest) -> Bool {
        switch request {
        case let .write(_, _, lengthBytes, _, _):
            return !writes.isFull && retainedBytes + UInt64(lengthBytes) <= config.bufferBytesMax
        case .flush:
            return !flushes.isFull
        }
    }

    private mutating func admitWaiting(nowNs: UInt64, into actions: inout [PrimaryAction]) {
        guard !waiting.isEmpty else { return }
        while let next = waiting.first, canAdmit(next) {
            waiting.removeFirst()
            admit(next, nowNs: nowNs, into: &actions)
        }
        if waiting.isEmpty { actions.append(.writesUnblocked) }
    }

    private mutating func admit(
        _ request: WaitingRequest, nowNs: UInt64, into actions: inout [PrimaryAction]
    ) {
        switch request {
        case let .write(request, offsetBytes, lengthBytes, fua, copy):
            admitWrite(request, offsetBytes, lengthBytes, fua, copy: copy, nowNs: nowNs, into: &actions)
        case let .flush(request):
            admitFlush(request, into: &actions)
        }
    }

    private mutating func admitWrite(
        _ request: RequestID, _ offsetBytes: UInt64, _ lengthBytes: UInt32, _ fua: Bool, copy: Bool,
        nowNs: UInt64, into actions: inout [PrimaryAction]
    ) {
        // The epoch rule: a write that arrives after any write of the open epoch was
        // acknowledged may depend on it, so it starts a new epoch; so does one after FLUSH/FUA.
        if startsNewEpoch {
            openEpoch += 1
            startsNewEpoch = false
        }
        var write = Write(
            request: request, sequence: nextSequence, epoch: openEpoch, offsetBytes: offsetBytes,
            lengthBytes: lengthBytes, fua: fua, sync: admitsSync, admittedAtNs: nowNs, copy: copy)
        // Tracking: the bitmap stands for the peer, which will get this region by a catch-up.
        write.peerApplied = isTracking
        nextSequence += 1
        writes.append(write)
        if !isTracking { unconfirmedBytes += UInt64(lengthBytes) }
        retainedBytes += UInt64(lengthBytes)
        actions.append(
            .submitLocalWrite(
                LocalWrite(
                    request: request, sequence: write.sequence, epoch: write.epoch,
                    offsetBytes: offsetBytes, lengthBytes: lengthBytes, fua: fua)))
        if isPeerReady { actions.append(.send(.data(dataMessage(write)))) }
        if fua {
            closeOpenEpoch(into: &actions)
            if write.sync { requestPeerFlush(through: write.epoch, into: &actions) }
        }
    }

    private mutating func admitFlush(_ request: RequestID, into actions: inout [PrimaryAction]) {
        let epoch = openEpoch
        if !startsNewEpoch { closeOpenEpoch(into: &actions) }
        flushes.append(PendingFlush(request: request, epoch: epoch, sync: admitsSync))
        if admitsSync { requestPeerFlush(through: epoch, into: &actions) }
        submitLocalFlushIfDue(into: &actions)
        acknowledgeFlushes(into: &actions)
    }

    private mutating func closeOpenEpoch(into actions: inout [PrimaryAction]) {
        precondition(!startsNewEpoch, "closing an epoch twice")
        startsNewEpoch = true
        if isPeerReady { actions.append(.send(.epochBarrier(epoch: openEpoch))) }
        if config.groupID != 0 { actions.append(.groupEpochClosed(epoch: openEpoch)) }
    }

    private mutating func requestPeerFlush(through epoch: Epoch, into actions: inout [PrimaryAction]) {
        guard epoch > peerDurableEpoch else { return }
        peerFlushRequestedEpoch = max(peerFlushRequestedEpoch, epoch)
        if isPeerReady { actions.append(.send(.flushRequest(throughEpoch: epoch))) }
    }

    // MARK: Acknowledgement

    private mutating func acknowledgeIfDone(
        _ index: Int, nowNs: UInt64, into actions: inout [PrimaryAction]
    ) {
        let write = writes[index]
        guard !write.acknowledged, write.localDone else { return }
        if write.sync && !isTracking {
            guard write.peerApplied else { return }
            // FUA is "durable on both": the local FUA completion and the peer's durable epoch.
            if write.fua && write.epoch > peerDurableEpoch { return }
        }
        writes[index].acknowledged = true
        writes[index].acknowledgedAtNs = nowNs
        if write.epoch > peerDurableEpoch && !isTracking { moveLag(write, entering: true) }
        actions.append(.acknowledgeWrite(request: write.request))
        if write.epoch == openEpoch && !startsNewEpoch { closeOpenEpoch(into: &actions) }
    }

    /// `write` enters the lag or leaves it (and the copy's share, if a chunk).
    private mutating func moveLag(_ write: Write, entering: Bool) {
        let bytes = UInt64(write.lengthBytes)
        lagBytes = entering ? lagBytes + bytes : lagBytes - bytes
        if write.copy { copyLagBytes = entering ? copyLagBytes + bytes : copyLagBytes - bytes }
    }

    private mutating func acknowledgeFlushes(into actions: inout [PrimaryAction]) {
        while let flush = flushes.first, flush.epoch <= localDurableEpoch, flushedOnce {
            if flush.sync && !isTracking && flush.epoch > peerDurableEpoch { return }
            flushes.removeFirst()
            actions.append(.acknowledgeFlush(request: flush.request))
        }
    }

    /// Writes with epoch ≤ the result have all completed locally. Epochs named by pending
    /// flushes are closed, so no later write can join them.
    private func locallyCompleteEpoch() -> Epoch {
        for index in 0..<writes.count where !writes[index].localDone {
            return writes[index].epoch - 1
        }
        return openEpoch
    }

    private mutating func submitLocalFlushIfDue(into actions: inout [PrimaryAction]) {
        guard !localFlushInFlight, let newest = flushes.last, newest.epoch > localDurableEpoch || !flushedOnce else {
            return
        }
        let complete = locallyCompleteEpoch()
        var covers: Epoch = 0
        for index in 0..<flushes.count where flushes[index].epoch <= complete {
            covers = max(covers, flushes[index].epoch)
        }
        // The first flush of the run is due even for epoch 0 (flushes of epoch 0 count).
        let firstDue = !flushedOnce && flushes.first!.epoch <= complete
        guard covers > localDurableEpoch || firstDue else { return }
        localFlushInFlight = true
        localFlushCoversEpoch = covers
        actions.append(.submitLocalFlush)
    }

    // MARK: Peer

    private mutating func receive(
        _ message: SecondaryMessage, nowNs: UInt64, into actions: inout [PrimaryAction]
    ) {
        // A message read before the connection was dropped (e.g. after a violation) is stale.
        guard isConnected else { return }
        switch message {
        case let .hello(durableEpoch, _):
            guard !isPeerReady else { return violation("second hello", into: &actions) }
            guard durableEpoch >= peerDurableEpoch, durableEpoch <= openEpoch else {
                // The secondary claims less than it confirmed before (its metadata was lost)
                // or more than was ever written: only a resync can repair that.
                return violation("hello with durable epoch \(durableEpoch)", into: &actions)
            }
            isPeerReady = true
            peerDurable(through: durableEpoch, nowNs: nowNs, into: &actions)
            resend(into: &actions)
        case let .dataAck(sequence):
            guard isPeerReady, sequence < nextSequence else {
                return violation("data ack for \(sequence)", into: &actions)
            }
            guard let index = index(ofSequence: sequence) else { return }
            if !writes[index].peerApplied {
                peerAckSamples += 1
                peerAckLatencyMaxNs = max(peerAckLatencyMaxNs, nowNs - min(writes[index].admittedAtNs, nowNs))
            }
            writes[index].peerApplied = true
            acknowledgeIfDone(index, nowNs: nowNs, into: &actions)
        case let .durableThroughEpoch(epoch):
            guard isPeerReady, epoch <= openEpoch, epoch < openEpoch || startsNewEpoch else {
                return violation("durable ack for open epoch \(epoch)", into: &actions)
            }
            peerDurable(through: epoch, nowNs: nowNs, into: &actions)
        }
    }

    private mutating func violation(_ reason: String, into actions: inout [PrimaryAction]) {
        isConnected = false
        isPeerReady = false
        actions.append(.protocolViolation(reason))
    }

    private mutating func peerDurable(
        through epoch: Epoch, nowNs: UInt64, into actions: inout [PrimaryAction]
    ) {
        guard epoch > peerDurableEpoch else { return }
        let previous = peerDurableEpoch
        peerDurableEpoch = epoch
        for index in 0..<writes.count {
            let write = writes[index]
            guard write.epoch > previous, write.epoch <= epoch else { continue }
            unconfirmedBytes -= UInt64(write.lengthBytes)
            peerDurableBytesTotal &+= UInt64(write.lengthBytes)
            if write.acknowledged { moveLag(write, entering: false) }
            // Durable on the secondary implies applied there.
            writes[index].peerApplied = true
            acknowledgeIfDone(index, nowNs: nowNs, into: &actions)
        }
        acknowledgeFlushes(into: &actions)
    }

    /// The peer is out of this stream; the owner marked every held write in its bitmap. What
    /// waited for the peer (sync acknowledgements, sync flushes) no longer does.
    private mutating func startTracking(nowNs: UInt64, into actions: inout [PrimaryAction]) {
        precondition(!isConnected, "tracking while the peer is connected")
        guard !isTracking else { return }
        isTracking = true
        for index in 0..<writes.count where writes[index].epoch > peerDurableEpoch {
            unconfirmedBytes -= UInt64(writes[index].lengthBytes)
            if writes[index].acknowledged { moveLag(writes[index], entering: false) }
            writes[index].peerApplied = true
            acknowledgeIfDone(index, nowNs: nowNs, into: &actions)
        }
        acknowledgeFlushes(into: &actions)
    }

    /// Everything after the secondary's durable epoch goes again, in order: the secondary
    /// drops what it already has and, after its own power loss, rewrites what may have
    /// landed out of order.
    private mutating func resend(into actions: inout [PrimaryAction]) {
        var lastSequence: WriteSequence = 0
        var lastEpoch: Epoch = 0
        for index in 0..<writes.count where writes[index].epoch > peerDurableEpoch {
            actions.append(.send(.data(dataMessage(writes[index]))))
            lastSequence = writes[index].sequence
            lastEpoch = writes[index].epoch
        }
        if lastEpoch > 0 && (lastEpoch < openEpoch || startsNewEpoch) {
            actions.append(.send(.epochBarrier(epoch: lastEpoch)))
        }
        appendGroupBarrierOnResend(into: &actions)
        if peerFlushRequestedEpoch > peerDurableEpoch {
            actions.append(.send(.flushRequest(throughEpoch: peerFlushRequestedEpoch)))
        }
        actions.append(.send(.resendComplete(throughSequence: lastSequence)))
    }
}
