// SecondaryReplicator: runs ReplicationSecondary for one resource. Data frames are restored
// (LZ4) into a buffer and checked against their CRC32C before the state machine sees them; a
// mismatch drops the connection and nothing is written. Writes are applied in epoch order as
// the state machine releases them, flushed in groups, and "durable through epoch E" is
// recorded in ReplicationMetadata before it is acknowledged. Loop thread only.
import CURing
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO

final class SecondaryReplicator: IOHandler, PeerLinkDelegate {
    struct Received {
        var sequence: WriteSequence
        var pointer: UnsafeMutableRawPointer
        var pooled: PoolBuffer?
        var length: Int
        /// When its local write was submitted (MonotonicClock), for the latency histogram.
        var submittedNs: UInt64 = 0
        var offsetBytes: UInt64 = 0
        /// Written so far (a short write is continued from here).
        var doneBytes = 0
    }

    static let flushTag: UInt32 = 0xFFFF_0001
    static let timerTag: UInt32 = 0xFFFF_0002

    let resource: String
    let spec: ResourceSpec
    let volume: Volume
    let context: ReplicationContext
    let counters: ResourceCounters
    let health: DiskHealth
    let logger: Logger
    private(set) var machine: ReplicationSecondary
    private var actions: [SecondaryAction] = []
    private var batch: [SecondaryAction] = []
    private var received: [Received?]
    private var handlerID: UInt32 = 0
    private var ioInFlight = 0
    private var timerArmed = false
    private let timeout = UnsafeMutablePointer<__kernel_timespec>.allocate(capacity: 1)
    let metadata: ReplicationMetadata
    private(set) var link: PeerLink?
    private var stopping = false
    private var onStopped: (() -> Void)?
    private(set) var lastError: String?
    private(set) var peerNode: String?
    private var primarySession: UInt64 = 0
    private let probe: SecondaryProbe

    /// `handedOver`: this process demoted the resource and its volume holds every write it
    /// acknowledged, so nothing may have landed out of order: consistent from the start.
    init(spec: ResourceSpec, volume: Volume, context: ReplicationContext, counters: ResourceCounters,
         health: DiskHealth, logger: Logger, handedOver: Bool = false) throws(ControlError) {
        self.resource = spec.name
        self.counters = counters
        self.spec = spec
        self.volume = volume
        self.context = context
        self.health = health
        self.logger = logger
        let config = ReplicationSecondaryConfig(
            // Always acknowledge completions: a sync primary needs them, an async one ignores
            // them, and the two nodes' `mode` may differ (or change with a failover).
            mode: .sync, diskDrain: spec.diskDrain,
            queuedBytesMax: max(spec.asyncBufferBytes, 4 << 20) + (64 << 20), queuedWritesMax: 8192)
        received = Array(repeating: nil, count: config.queuedWritesMax)
        do {
            metadata = try ReplicationMetadata(
                path: "\(context.config.stateDir)/\(spec.name).meta", loop: context.loop, logger: logger)
        } catch {
            health.record("metadata open", errno: error.errno)
            throw ControlError(.ioError, "replication metadata: \(error)")
        }
        let record = metadata.record
        // A record from an earlier run means this process may have stopped with unflushed
        // writes in flight: not consistent until the primary has re-sent.
        machine = ReplicationSecondary(config: config, durableThroughEpoch: record.durableThroughEpoch,
                                       restarted: record.generation > 0 && !handedOver)
        primarySession = record.session
        probe = SecondaryProbe(resource: spec.name, volumeSizeBytes: volume.sizeBytes, context: context, logger: logger)
        actions.reserveCapacity(256)
        batch.reserveCapacity(256)
        heldWrites.reserveCapacity(config.queuedWritesMax)
        handlerID = context.loop.register(self)
        metadata.onRecorded = { [unowned self] record in self.recorded(record) }
        metadata.onFailed = { [health] result in health.record("metadata write", result: result) }
        probe.onResult = { [unowned self] result in self.noteFailure(result) }
    }

    /// Probes the peer when no primary has connected for a while (SecondaryProbe).
    func tick() {
        guard !stopping else { return }
        probe.tick(connected: link != nil, peer: spec.peer)
        publishDiskState()
    }

    deinit { timeout.deallocate() }

    /// No full copy is pending or interrupted (what the record will say once written); a
    /// fresh copy created with `initial_sync: none` is taken at the operator's word.
    var isSynced: Bool {
        let record = metadata.latest
        return record.synced || (record.generation == 0 && spec.initialSync == .none)
    }

    /// The primary's last SyncComplete on this link: this copy held every acknowledged write
    /// through that sequence.
    private var confirmedThrough: WriteSequence?
    /// The newest write received on this link that its primary may have acknowledged before
    /// this node applied it (async: no acknowledged-after-apply flag).
    private var newestAsyncReceived: WriteSequence = 0

    var diskState: DiskState {
        let confirmed = confirmedThrough.map { newestAsyncReceived <= $0 } ?? false
        return DiskState.ofSecondary(synced: isSynced, consistent: machine.isConsistent,
                                     connected: link?.isEstablished == true && machine.isConnected,
                                     confirmed: confirmed)
    }

    private var diskStateAnnouncer = DiskStateAnnouncer(event: "disk-state", field: "disk_state")

    /// One event per change (changes between UpToDate and Consistent coalesced, see
    /// `DiskState.publishesNow`; `tick` catches up).
    private func publishDiskState() {
        diskStateAnnouncer.announce(diskState, resource: resource, events: context.events)
    }

    /// `WFConnection`: waiting for the primary to dial (only the primary dials).
    var connectionState: String { link?.isEstablished == true ? "Connected" : "WFConnection" }

    var statusFields: [String: JSONValue] {
        var fields: [String: JSONValue] = [:]
        fields["connection_state"] = .string(connectionState)
        fields["disk_state"] = .string(diskState.rawValue)
        // The primary's copy is the reference while it is connected; otherwise unknown.
        fields["peer_disk_state"] = .string((isConnectedToPeer ? DiskState.upToDate : .unknown).rawValue)
        fields["replication_state"] = .string(link?.isEstablished == true ? (isSynced ? "Established" : "SyncTarget") : "Off")
        fields["durable_through_epoch"] = .int(Int64(machine.durableThroughEpoch))
        fields["consistent"] = .bool(machine.isConsistent)
        fields["queued_writes"] = .int(Int64(machine.queuedWrites))
        fields["writes_in_flight"] = .int(Int64(machine.writesInFlight))
        fields["queued_bytes"] = .int(Int64(machine.queuedBytes))
        fields["lag_bytes"] = .int(0)
        fields["rpo_ms"] = .int(0)
        fields["redundant"] = .bool(link?.isEstablished == true && isSynced && machine.isConsistent)
        if let peerNode { fields["peer_node"] = .string(peerNode) }
        if let error = context.newerHandshakeFailure(than: lastErrorNs), !isConnectedToPeer {
            fields["last_error"] = .string(error)
        } else if let lastError {
            fields["last_error"] = .string(lastError)
        }
        return fields
    }

    private var lastErrorNs: UInt64 = 0

    /// A connection for this resource was refused here (PeerAcceptor / `validate`).
    func noteRefusal(_ message: String) {
        noteFailure(message)
    }

    /// Promotion: `done` runs once nothing of the stream is in flight any more.
    func stop(_ done: @escaping () -> Void) {
        probe.stop()
        stopping = true
        onStopped = done
        link?.close("resource stopping")
        checkStopped()
    }

    private func checkStopped() {
        // The record too: the owner may write it synchronously once this is done.
        guard stopping, link == nil, ioInFlight == 0, !timerArmed, !metadata.isWriting, let done = onStopped else { return }
        onStopped = nil
        for index in received.indices { if let entry = received[index] { release(entry); received[index] = nil } }
        metadata.close()
        context.loop.unregister(handlerID)
        done()
    }

    /// This node's disk failed (DiskHealth): nothing more is written or acknowledged, the
    /// primary is dropped, and its reconnects are refused with `disk-failed` so that it
    /// stops waiting for this node and serves alone.
    func diskFailed() {
        guard let failure = health.failure else { return }
        lastError = "disk failed: \(failure.operation): \(failure.message)"
        // The volume now lacks writes: only a full copy makes it current again.
        metadata.update { $0.synced = false }
        link?.close("this node's disk failed (\(failure.operation): \(failure.message))")
    }

    private func noteFailure(_ reason: String) {
        lastErrorNs = ReplicationContext.nowNs()
        guard reason != lastError else { return }
        lastError = reason
        logger.warning("peer link", metadata: ["reason": "\(reason)"])
        context.events.publish(resource: resource, "peer-error", ["message": .string(reason)])
    }

    // MARK: the link

    /// An accepted connection whose Hello names this resource.
    func validate(_ hello: WireHello, link: PeerLink) -> PeerLinkVerdict {
        guard !stopping else { return .refuse(.busy, "resource '\(resource)' is stopping") }
        if let failure = health.failure {
            return .refuse(.diskFailed, "the disk of resource '\(resource)' failed: \(failure.operation): \(failure.message) (errno \(failure.errno))")
        }
        guard let peer = spec.peer, link.channel.connection.peerCertificateNames(peer.name) else {
            return .refuse(.unexpectedNode, "the peer's certificate (\(link.channel.connection.peerSubject ?? "none")) does not name the configured peer '\(spec.peer?.name ?? "")'")
        }
        guard hello.nodeName == peer.name else {
            return .refuse(.unexpectedNode, "the peer says it is '\(hello.nodeName)', expected '\(peer.name)'")
        }
        guard hello.role == .primary else {
            return .refuse(.roleConflict, hello.role == .secondary
                ? "'\(context.config.nodeName)' is secondary for '\(resource)' too: neither node is primary"
                : "the peer is not primary")
        }
        guard hello.volumeSizeBytes == volume.sizeBytes else {
            return .refuse(.sizeMismatch, "local volume has \(volume.sizeBytes) bytes, peer \(hello.volumeSizeBytes)")
        }
        let basis = SessionBasis(wireValue: hello.generations.bitmap, session: hello.generations.current)
        let verdict = SecondarySessionVerdict.decide(
            recordSession: primarySession, recordContinuedFrom: metadata.latest.continuedFrom, recordSynced: isSynced,
            fresh: metadata.latest.generation == 0, session: hello.generations.current, basis: basis)
        if case .refuse(let reason) = verdict { return .refuse(.unrelatedData, reason) }
        pendingVerdict = verdict
        if let old = self.link {
            // The old connection's close will be ignored (it is no longer `link`): end its
            // session in the state machine now.
            old.close("replaced by a new connection from the primary")
            if machine.isConnected { feed(.connectionDown) }
            abandonUnprovenSession()
        }
        self.link = link
        peerNode = hello.nodeName
        pendingSession = hello.generations.current
        let own = WireHello(role: .secondary, nodeName: context.config.nodeName, resourceName: resource,
                            volumeSizeBytes: volume.sizeBytes, generations: WireGenerations(current: 0, bitmap: 0),
                            promotionNumber: 0)
        return .accept(delegate: self, hello: own)
    }

    private var pendingSession: UInt64 = 0
    private var pendingVerdict: SecondarySessionVerdict = .sameSession
    /// A new session's record is being written: none of its writes or flushes reaches the
    /// disk before it is stable (they wait in `heldWrites` / `flushHeld`).
    private var awaitingSessionRecord = false
    private var heldWrites: [Int] = []
    private var flushHeld = false
    /// While a new primary session has not written anything: the state machine and session
    /// it replaced, restored if it ends (see `peerLinkEstablished`).
    private var unprovenSession: (machine: ReplicationSecondary, session: UInt64)?
    private var recordRequestedEpoch: Epoch?
    /// A planned failover waits for the peer's Demoted (true) or the link's end (false).
    private var onDemoted: ((Bool) -> Void)?

    var isConnectedToPeer: Bool { link?.isEstablished == true }

    /// Asks the primary to drain and demote; `done(true)` once it has.
    func requestFailover(_ done: @escaping (Bool) -> Void) {
        guard let link, link.isEstablished, onDemoted == nil else { return done(false) }
        onDemoted = done
        link.send(.failoverRequest(promotion: 0))
    }

    func peerLink(_ link: PeerLink, validate hello: WireHello) -> PeerLinkVerdict {
        .refuse(.other, "unexpected second Hello")
    }

    func peerLinkEstablished(_ link: PeerLink) {
        guard link === self.link else { return link.close("superseded") }
        if machine.isConnected { feed(.connectionDown) }
        if pendingSession != primarySession {
            // A new primary session (the primary restarted): its epochs start afresh. The
            // switch stays in memory until the session proves itself (`commitSession`): one
            // that ends before, say in a protocol violation, leaves the recorded session, its
            // durable epoch and this state machine as they were, so the real primary's next
            // session is answered as before.
            guard ioInFlight == 0, machine.queuedWrites == 0, recordRequestedEpoch == nil, !awaitingSessionRecord else {
                return link.close("writes of the previous session still in flight")
            }
            // Queued payloads of the old session would collide with the new sequence numbers.
            for index in received.indices {
                if let entry = received[index] { release(entry) }
                received[index] = nil
            }
            unprovenSession = (machine, primarySession)
            machine = ReplicationSecondary(config: machine.config, durableThroughEpoch: 0, restarted: false)
            primarySession = pendingSession
        }
        lastError = nil
        probe.sessionSeen()
        confirmedThrough = nil
        newestAsyncReceived = 0
        context.events.publish(resource: resource, "connection-state", ["connection_state": .string("Connected")])
        feed(.connectionUp)
        perform()
        publishDiskState()
    }

    /// The new session's first Data frame was accepted and is about to be written: from now
    /// on the volume holds its writes, so it replaces the recorded session.
    /// The record says how the session relates to this volume (`synced: false` while a full
    /// copy is under way: Inconsistent, across restarts); nothing of the session reaches the
    /// disk before that record is stable (`recorded`).
    private func commitSession() {
        guard unprovenSession != nil else { return }
        unprovenSession = nil
        var synced = true, continuedFrom: UInt64 = 0
        if case .newSession(let nowSynced, let from) = pendingVerdict { (synced, continuedFrom) = (nowSynced, from) }
        metadata.update { [primarySession] in
            $0.session = primarySession
            $0.durableThroughEpoch = 0
            $0.synced = synced
            $0.continuedFrom = continuedFrom
        }
        awaitingSessionRecord = true
    }

    /// The new session ended before it wrote anything: back to the one recorded.
    private func abandonUnprovenSession() {
        guard let previous = unprovenSession else { return }
        unprovenSession = nil
        machine = previous.machine
        primarySession = previous.session
        logger.info("a new primary session ended before its first write; keeping the recorded session")
    }

    func peerLink(_ link: PeerLink, received message: WireMessage) {
        guard link === self.link, machine.isConnected else { return }
        switch message {
        case .data(let data): receiveData(data, link: link)
        case .epochBarrier(let epoch, _): feed(.message(.epochBarrier(epoch: epoch)))
        case .flushRequest(let epoch): feed(.message(.flushRequest(throughEpoch: epoch)))
        case .resendComplete(let sequence): feed(.message(.resendComplete(throughSequence: sequence)))
        case .syncComplete(let sequence):
            if unprovenSession != nil {
                // A new session confirming this copy before sending anything: right for one
                // that continues or is in sync by the operator's word (it proves itself with
                // this message, which the session check allowed), never for a full copy.
                if case .newSession(synced: false, _) = pendingVerdict {
                    return link.closeForViolation("protocol violation: SyncComplete before any Data of the session")
                }
                commitSession()
            }
            if !metadata.latest.synced || metadata.latest.promotedInconsistent {
                metadata.update {
                    $0.synced = true
                    $0.promotedInconsistent = false
                }
            }
            confirmedThrough = sequence
        case .ping(let nonce): link.send(.pong(nonce: nonce))
        case .pong: break
        case .demoted:
            context.events.publish(resource: resource, "peer-demoted", ["peer": .string(link.peerNodeName)])
            let handler = onDemoted
            onDemoted = nil
            handler?(true)
            return
        default: return link.closeForViolation("protocol violation: a primary sent \(message.type)")
        }
        perform()
        publishDiskState()
    }

    func peerLinkClosed(_ link: PeerLink, reason: String) {
        guard link === self.link else { return }
        self.link = nil
        if let failure = link.failure { counters.count(failure) }
        if let handler = onDemoted {
            onDemoted = nil
            handler(false)
        }
        if machine.isConnected { feed(.connectionDown) }
        abandonUnprovenSession()
        noteFailure(reason)
        context.events.publish(resource: resource, "connection-state", ["connection_state": .string("WFConnection")])
        perform()
        publishDiskState()
        checkStopped()
    }

    private func receiveData(_ data: WireData, link: PeerLink) {
        let header = data.header
        let length = Int(header.lengthBytes)
        guard header.offsetBytes <= volume.sizeBytes, UInt64(length) <= volume.sizeBytes - header.offsetBytes,
            header.offsetBytes % UInt64(volume.alignment) == 0, length % volume.alignment == 0
        else { return link.closeForViolation("protocol violation: write of \(length) bytes at \(header.offsetBytes) is outside or misaligned on the volume") }
        let slot = Int(header.sequence % UInt64(received.count))
        if let existing = received[slot], existing.sequence == header.sequence {
            // A re-send of a write still queued here: the state machine drops the copy.
            feed(.message(.data(message(header))))
            return
        }
        guard received[slot] == nil else { return link.closeForViolation("protocol violation: too many writes queued") }
        let entry = allocate(sequence: header.sequence, length: length)
        let destination = UnsafeMutableRawBufferPointer(start: entry.pointer, count: length)
        let failure: WirePayloadError? = data.payload.withUnsafeBytes { payload in
            do throws(WirePayloadError) { try WirePayload.restore(header, payload: payload, into: destination) } catch { return error }
            return nil
        }
        if let failure {
            release(entry)
            return link.closeForViolation("refusing a Data frame: \(failure)")
        }
        counters.receivedBytes += UInt64(length)
        if !header.flags.contains(.acknowledgedAfterApply) {
            newestAsyncReceived = max(newestAsyncReceived, header.sequence)
        }
        let queuedBefore = machine.queuedWrites
        feed(.message(.data(message(header))))
        if machine.queuedWrites > queuedBefore {
            received[slot] = entry
            commitSession()
        } else {
            release(entry)
        }
    }

    private func message(_ header: WireDataHeader) -> DataMessage {
        var flags: DataFlags = header.flags.contains(.fua) ? [.fua] : []
        if header.flags.contains(.acknowledgedAfterApply) { flags.insert(.acknowledgedAfterApply) }
        return DataMessage(epoch: header.epoch, sequence: header.sequence, offsetBytes: header.offsetBytes,
                           lengthBytes: header.lengthBytes, flags: flags)
    }

    private func allocate(sequence: WriteSequence, length: Int) -> Received {
        if let pooled = context.loop.pool.allocate(bytes: length) {
            return Received(sequence: sequence, pointer: pooled.pointer, pooled: pooled, length: length)
        }
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, max(length, 4096)) == 0 && memory != nil, "out of memory")
        return Received(sequence: sequence, pointer: memory!, pooled: nil, length: length)
    }

    private func release(_ entry: Received) {
        if let pooled = entry.pooled { context.loop.pool.release(pooled) } else { free(entry.pointer) }
    }

    // MARK: the state machine

    private func feed(_ event: SecondaryEvent) {
        machine.handle(event, nowNs: ReplicationContext.nowNs(), into: &actions)
    }

    private func perform() {
        while !actions.isEmpty {
            swap(&actions, &batch)
            for action in batch { execute(action) }
            batch.removeAll(keepingCapacity: true)
        }
        armTimer()
    }

    private func execute(_ action: SecondaryAction) {
        switch action {
        case .submitWrite(let write):
            let slot = Int(write.sequence % UInt64(received.count))
            guard let entry = received[slot], entry.sequence == write.sequence else {
                preconditionFailure("no payload for write \(write.sequence)")
            }
            guard !health.isFailed else { return }  // a failed disk is not written to
            received[slot]!.offsetBytes = write.offsetBytes
            if awaitingSessionRecord { return heldWrites.append(slot) }
            submitWrite(slot)
        case .submitFlush:
            guard !health.isFailed else { return }
            if awaitingSessionRecord { return flushHeld = true }
            ioInFlight += 1
            context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.flushTag)
        case .recordDurableEpoch(let epoch):
            recordRequestedEpoch = epoch
            metadata.update { [primarySession] in
                $0.durableThroughEpoch = epoch
                $0.session = primarySession
            }
        case .send(let message): send(message)
        case .protocolViolation(let reason): link?.closeForViolation("protocol violation: \(reason)")
        }
    }

    /// Writes what is left of a received write (all of it, or the rest after a short write).
    private func submitWrite(_ slot: Int) {
        let entry = received[slot]!
        ioInFlight += 1
        if entry.doneBytes == 0 { received[slot]!.submittedNs = MonotonicClock.nowNs() }
        context.loop.prepareVolumeIO(write: true, volume: volume, buffer: entry.pointer + entry.doneBytes,
                                     length: entry.length - entry.doneBytes,
                                     offset: entry.offsetBytes + UInt64(entry.doneBytes), dsync: false,
                                     handler: handlerID, tag: UInt32(slot))
    }

    private func send(_ message: SecondaryMessage) {
        // After a disk failure nothing is acknowledged: the link is being closed.
        guard let link, link.isEstablished, !health.isFailed else { return }
        switch message {
        case .hello(let epoch, let copy):
            link.send(.replicaHello(WireReplicaHello(durableThroughEpoch: epoch, diskState: copy.wire)))
        case .durableThroughEpoch(let epoch): link.send(.durableAck(epoch: epoch))
        case .dataAck(let sequence): link.send(.dataAck(epoch: 0, sequence: sequence))
        }
    }

    /// Feeds the state machine the record it asked for once a write covering it is stable.
    private func recorded(_ record: ReplicationRecord) {
        if stopping { return checkStopped() }
        if awaitingSessionRecord, record.session == primarySession {
            // The session's record is stable: what it held back may reach the disk.
            awaitingSessionRecord = false
            if !health.isFailed {
                for slot in heldWrites { submitWrite(slot) }
                if flushHeld {
                    ioInFlight += 1
                    context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.flushTag)
                }
            }
            heldWrites.removeAll(keepingCapacity: true)
            flushHeld = false
        }
        guard let wanted = recordRequestedEpoch, record.session == primarySession,
            record.durableThroughEpoch >= wanted
        else { return }
        recordRequestedEpoch = nil
        feed(.durableEpochRecorded(wanted))
        perform()
    }

    /// The group-commit deadline, as an io_uring timeout.
    private func armTimer() {
        guard !timerArmed, !stopping, let deadline = machine.flushDeadlineNs else { return }
        let now = ReplicationContext.nowNs()
        let delay = deadline > now ? deadline - now : 0
        timeout.pointee.tv_sec = Int64(delay / 1_000_000_000)
        timeout.pointee.tv_nsec = Int64(delay % 1_000_000_000)
        let sqe = context.loop.sqe(handler: handlerID, tag: Self.timerTag)
        io_uring_prep_timeout(sqe, timeout, 0, 0)
        timerArmed = true
    }

    func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        switch tag {
        case Self.timerTag:
            timerArmed = false
            feed(.tick)
        case Self.flushTag:
            ioInFlight -= 1
            if result == -EINTR || result == -EAGAIN {
                ioInFlight += 1
                context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.flushTag)
            } else if result < 0 {
                health.record("flush", result: result)  // never reported durable
            } else {
                feed(.flushCompleted)
            }
        default:
            ioInFlight -= 1
            writeCompleted(slot: Int(tag), result: result)
        }
        perform()
        checkStopped()
    }

    private func writeCompleted(slot: Int, result: Int32) {
        guard let entry = received[slot] else { preconditionFailure("completion without a write") }
        let left = entry.length - entry.doneBytes
        if result == -EINTR || result == -EAGAIN || (result > 0 && Int(result) < left) {
            // Interrupted or short (e.g. out of space part way): the rest is tried again and
            // fails with the disk's own errno if it must.
            if result > 0 { received[slot]!.doneBytes += Int(result) }
            return submitWrite(slot)
        }
        received[slot] = nil
        release(entry)
        guard result > 0 else {
            // The write is not on disk: it is never acknowledged (DiskHealth fails the resource).
            return health.record("write", result: result == 0 ? -EIO : result)
        }
        counters.localWriteLatency.record(since: entry.submittedNs)
        feed(.writeCompleted(sequence: entry.sequence))
    }
}
