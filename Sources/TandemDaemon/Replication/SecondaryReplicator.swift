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
    }

    static let flushTag: UInt32 = 0xFFFF_0001
    static let timerTag: UInt32 = 0xFFFF_0002

    let resource: String
    let spec: ResourceSpec
    let volume: Volume
    let context: ReplicationContext
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

    init(spec: ResourceSpec, volume: Volume, context: ReplicationContext, logger: Logger) throws(ControlError) {
        self.resource = spec.name
        self.spec = spec
        self.volume = volume
        self.context = context
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
            throw ControlError(.ioError, "replication metadata: \(error)")
        }
        let record = metadata.record
        // A record from an earlier run means this process may have stopped with unflushed
        // writes in flight: not consistent until the primary has re-sent.
        machine = ReplicationSecondary(config: config, durableThroughEpoch: record.durableThroughEpoch,
                                       restarted: record.generation > 0)
        primarySession = record.session
        actions.reserveCapacity(256)
        batch.reserveCapacity(256)
        handlerID = context.loop.register(self)
        metadata.onRecorded = { [unowned self] record in self.recorded(record) }
    }

    deinit { timeout.deallocate() }

    var isSynced: Bool { metadata.record.synced || spec.initialSync == .none }

    var diskState: String {
        if !machine.isConsistent { return "Inconsistent" }
        return isSynced ? "UpToDate" : "Inconsistent"
    }

    var statusFields: [String: JSONValue] {
        var fields: [String: JSONValue] = [:]
        fields["connection_state"] = .string(link?.isEstablished == true ? "Connected" : "Connecting")
        fields["disk_state"] = .string(diskState)
        fields["replication_state"] = .string(link?.isEstablished == true ? (isSynced ? "Established" : "SyncTarget") : "Off")
        fields["durable_through_epoch"] = .int(Int64(machine.durableThroughEpoch))
        fields["consistent"] = .bool(machine.isConsistent)
        fields["queued_writes"] = .int(Int64(machine.queuedWrites))
        fields["writes_in_flight"] = .int(Int64(machine.writesInFlight))
        fields["queued_bytes"] = .int(Int64(machine.queuedBytes))
        fields["lag_bytes"] = .int(0)
        fields["rpo_ms"] = .int(0)
        if let peerNode { fields["peer_node"] = .string(peerNode) }
        if let lastError { fields["last_error"] = .string(lastError) }
        return fields
    }

    /// Promotion: `done` runs once nothing of the stream is in flight any more.
    func stop(_ done: @escaping () -> Void) {
        stopping = true
        onStopped = done
        link?.close("resource stopping")
        checkStopped()
    }

    private func checkStopped() {
        guard stopping, link == nil, ioInFlight == 0, !timerArmed, let done = onStopped else { return }
        onStopped = nil
        for index in received.indices { if let entry = received[index] { release(entry); received[index] = nil } }
        metadata.close()
        context.loop.unregister(handlerID)
        done()
    }

    private func noteFailure(_ reason: String) {
        lastError = reason
        logger.warning("peer link", metadata: ["reason": "\(reason)"])
        context.events.publish(resource: resource, "peer-error", ["message": .string(reason)])
    }

    // MARK: the link

    /// An accepted connection whose Hello names this resource.
    func validate(_ hello: WireHello, link: PeerLink) -> PeerLinkVerdict {
        guard !stopping else { return .refuse(.busy, "resource '\(resource)' is stopping") }
        guard let peer = spec.peer, link.channel.connection.peerCertificateNames(peer.name) else {
            return .refuse(.unexpectedNode, "the peer's certificate (\(link.channel.connection.peerSubject ?? "none")) does not name the configured peer '\(spec.peer?.name ?? "")'")
        }
        guard hello.nodeName == peer.name else {
            return .refuse(.unexpectedNode, "the peer says it is '\(hello.nodeName)', expected '\(peer.name)'")
        }
        guard hello.role == .primary else { return .refuse(.roleConflict, "the peer is not primary") }
        guard hello.volumeSizeBytes == volume.sizeBytes else {
            return .refuse(.sizeMismatch, "local volume has \(volume.sizeBytes) bytes, peer \(hello.volumeSizeBytes)")
        }
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
            guard ioInFlight == 0, machine.queuedWrites == 0, recordRequestedEpoch == nil else {
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
        context.events.publish(resource: resource, "connection-state", ["connection_state": .string("Connected")])
        feed(.connectionUp)
        perform()
    }

    /// The new session's first Data frame was accepted and is about to be written: from now
    /// on the volume holds its writes, so it replaces the recorded session.
    private func commitSession() {
        guard unprovenSession != nil else { return }
        unprovenSession = nil
        metadata.update { [primarySession] in
            $0.session = primarySession
            $0.durableThroughEpoch = 0
        }
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
        case .syncComplete:
            guard unprovenSession == nil else {
                return link.close("protocol violation: SyncComplete before any Data of the session")
            }
            metadata.update { $0.synced = true }
            context.events.publish(resource: resource, "disk-state", ["disk_state": .string("UpToDate")])
        case .ping(let nonce): link.send(.pong(nonce: nonce))
        case .pong: break
        case .demoted:
            context.events.publish(resource: resource, "peer-demoted", ["peer": .string(link.peerNodeName)])
            let handler = onDemoted
            onDemoted = nil
            handler?(true)
            return
        default: return link.close("protocol violation: a primary sent \(message.type)")
        }
        perform()
    }

    func peerLinkClosed(_ link: PeerLink, reason: String) {
        guard link === self.link else { return }
        self.link = nil
        if let handler = onDemoted {
            onDemoted = nil
            handler(false)
        }
        if machine.isConnected { feed(.connectionDown) }
        abandonUnprovenSession()
        noteFailure(reason)
        context.events.publish(resource: resource, "connection-state", ["connection_state": .string("Connecting")])
        perform()
        checkStopped()
    }

    private func receiveData(_ data: WireData, link: PeerLink) {
        let header = data.header
        let length = Int(header.lengthBytes)
        guard header.offsetBytes <= volume.sizeBytes, UInt64(length) <= volume.sizeBytes - header.offsetBytes,
            header.offsetBytes % UInt64(volume.alignment) == 0, length % volume.alignment == 0
        else { return link.close("protocol violation: write of \(length) bytes at \(header.offsetBytes) is outside or misaligned on the volume") }
        let slot = Int(header.sequence % UInt64(received.count))
        if let existing = received[slot], existing.sequence == header.sequence {
            // A re-send of a write still queued here: the state machine drops the copy.
            feed(.message(.data(message(header))))
            return
        }
        guard received[slot] == nil else { return link.close("protocol violation: too many writes queued") }
        let entry = allocate(sequence: header.sequence, length: length)
        let destination = UnsafeMutableRawBufferPointer(start: entry.pointer, count: length)
        let failure: WirePayloadError? = data.payload.withUnsafeBytes { payload in
            do throws(WirePayloadError) { try WirePayload.restore(header, payload: payload, into: destination) } catch { return error }
            return nil
        }
        if let failure {
            release(entry)
            return link.close("refusing a Data frame: \(failure)")
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
            ioInFlight += 1
            context.loop.prepareVolumeIO(write: true, volume: volume, buffer: entry.pointer, length: entry.length,
                                         offset: write.offsetBytes, dsync: false, handler: handlerID, tag: UInt32(slot))
        case .submitFlush:
            ioInFlight += 1
            context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.flushTag)
        case .recordDurableEpoch(let epoch):
            recordRequestedEpoch = epoch
            metadata.update { [primarySession] in
                $0.durableThroughEpoch = epoch
                $0.session = primarySession
            }
        case .send(let message): send(message)
        case .protocolViolation(let reason): link?.close("protocol violation: \(reason)")
        }
    }

    private func send(_ message: SecondaryMessage) {
        guard let link, link.isEstablished else { return }
        switch message {
        case .hello(let epoch), .durableThroughEpoch(let epoch): link.send(.durableAck(epoch: epoch))
        case .dataAck(let sequence): link.send(.dataAck(epoch: 0, sequence: sequence))
        }
    }

    /// Feeds the state machine the record it asked for once a write covering it is stable.
    private func recorded(_ record: ReplicationRecord) {
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
            precondition(result >= 0, "secondary flush failed: errno \(-result)")
            feed(.flushCompleted)
        default:
            ioInFlight -= 1
            let slot = Int(tag)
            guard let entry = received[slot] else { preconditionFailure("completion without a write") }
            precondition(result == Int32(entry.length), "secondary write failed: \(result)")
            received[slot] = nil
            release(entry)
            feed(.writeCompleted(sequence: entry.sequence))
        }
        perform()
        checkStopped()
    }
}
