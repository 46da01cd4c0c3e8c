// SecondaryReplicator: the driver of one resource's SecondaryNode (TandemCore), which makes
// every decision. This file maps the peer link (Hellos, frames, closes) and the metadata
// record to the node's events and carries out its link, record and notice actions;
// SecondaryReplicator+IO.swift holds the payloads and the volume I/O. Data frames are restored
// (LZ4) into a buffer and checked against their CRC32C before the node sees them; a mismatch
// drops the connection and nothing is written. Loop thread only.
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
        /// Staged: the record's place in the journal, its header buffer, the writes (header,
        /// payload) not yet complete and the first error of either.
        var journalOffset: UInt64?
        var header: UnsafeMutableRawPointer?
        var partsLeft = 0
        var stagingErrno: Int32 = 0
    }

    static let flushTag: UInt32 = 0xFFFF_0001
    static let timerTag: UInt32 = 0xFFFF_0002
    static let stagingFlushTag: UInt32 = 0xFFFF_0003
    /// The volume flush before a link's first digest read (SecondaryReplicator+Verify).
    static let digestFlushTag: UInt32 = 0xFFFF_0004
    /// Staging journal record headers: this base | the payload's slot.
    static let stagingHeaderTagBase: UInt32 = 0xFFFD_0000
    /// Digest reads (online verify): this base | the buffer's slot.
    static let digestReadTagBase: UInt32 = 0xFFFE_0000

    let resource: String
    let spec: ResourceSpec
    let volume: Volume
    let context: ReplicationContext
    let counters: ResourceCounters
    let health: DiskHealth
    let logger: Logger
    private(set) var node: SecondaryNode
    private var actions: [SecondaryNodeAction] = []
    private var batch: [SecondaryNodeAction] = []
    /// Payloads received and not yet written, by sequence modulo the node's queue bound.
    var received: SlotTable<Received>
    var handlerID: UInt32 = 0
    /// Writes and flushes submitted and not completed.
    var ioInFlight = 0
    var timerArmed = false
    /// The request trace's group-commit stamps: the flush submitted, and the first write
    /// completed since the last DurableAck (TracePhase.secondaryFlush, .secondaryDurable).
    var traceFlushStamp = TraceStamp.none
    var traceUndurableStamp = TraceStamp.none
    let timeout = UnsafeMutablePointer<__kernel_timespec>.allocate(capacity: 1)
    let metadata: ReplicationMetadata
    var link: PeerLink?
    var stopping = false
    private var onStopped: (() -> Void)?
    var lastError: String?
    private var lastErrorNs: UInt64 = 0
    private(set) var peerNode: String?
    private let probe: SecondaryProbe
    private var performing = false
    /// The Hello being validated and the verdict the node gave it (`validate`).
    var candidate: (link: PeerLink, hello: WireHello)?
    var verdict: PeerLinkVerdict?
    /// A planned failover waits for the peer's Demoted (true) or the link's end (false).
    private var onDemoted: ((Bool) -> Void)?
    private var diskStateAnnouncer = DiskStateAnnouncer(event: "disk-state", field: "disk_state")
    /// Buffers of the regions being digested for the primary's verify, and those regions.
    let digestBuffers = CopyBuffers(slotBytes: Int(WireFormat.digestRegionBytesMax), slotsMax: SecondaryNode.digestReadsMax)
    var digestReads = [(offset: UInt64, length: UInt64)?](repeating: nil, count: SecondaryNode.digestReadsMax)
    /// The reads being served for the primary (SecondaryReplicator+Reads).
    let peerReads = PeerReadBuffers()
    /// The accepted primary's Hello: its generation is this copy's once it is UpToDate.
    private var primaryHello: WireHello?
    /// The version the current primary's Hello named (what it reads: CatchUpInPlace).
    var primaryHelloVersion: UInt16 = 0
    /// The Hello of the primary whose link was accepted last (failover compares generations).
    private(set) var acceptedPrimaryHello: WireHello?
    /// This copy became UpToDate with the primary (the resource adopts its generation).
    var onUpToDate: ((WireHello) -> Void)?
    /// A primary's Hello was accepted (the resource learns whether it was left behind).
    var onPrimaryAccepted: ((WireHello) -> Void)?
    /// Split-brain resync (Resource+SplitBrainUnion): a survivor's Hello may ask for this
    /// loser's bitmap since parting; the frames go before the ReplicaHello, or the link is
    /// refused `unrelated-data` (the survivor then copies the whole volume).
    var splitBrainBitmapFrames: ((WireHello) -> (frames: [WireMessage]?, refusal: String?))?
    var pendingBitmapFrames: [WireMessage]?
    /// The generation tail and promotion number of this node's Hello.
    var helloGenerations: (() -> (node: WireNodeGenerations, promotion: UInt64))?
    /// The primary asked for a resize (SecondaryReplicator+Resize); the resource answers.
    var onResizeRequested: ((WireResize, @escaping (Result<Void, ResizeRefusal>) -> Void) -> Void)?
    /// The primary's link closed (a resize answered on it restarts this replicator).
    var onLinkClosed: (() -> Void)?
    /// The staging journal, open while a catch-up is staged (StagingJournal).
    var journal: StagingJournal?
    var journalSession: UInt64 = 0
    let journalPath: String
    let stagingBytesMax: UInt64

    /// `handedOver`: this process demoted the resource and its volume holds every write it
    /// acknowledged (SecondaryNode.restarted). `cleanStop`: the last run stopped cleanly
    /// (SecondaryNode.consistentAtRest).
    init(spec: ResourceSpec, volume: Volume, context: ReplicationContext, counters: ResourceCounters,
         health: DiskHealth, metadataFile: MetadataFile, logger: Logger, handedOver: Bool = false,
         cleanStop: Bool = false) throws(ControlError) {
        self.resource = spec.name
        self.counters = counters
        self.spec = spec
        self.volume = volume
        self.context = context
        self.health = health
        self.logger = logger
        var machine = ReplicationSecondaryConfig(
            diskDrain: spec.diskDrain,
            queuedBytesMax: max(spec.asyncBufferBytes, 4 << 20) + (64 << 20), queuedWritesMax: 8192,
            groupCommitIntervalNs: UInt64(spec.groupCommitUs) * 1_000)
        machine.groupID = spec.groupID  // consistency group (docs/groups.md)
        received = SlotTable(count: machine.queuedWritesMax)
        metadata = ReplicationMetadata(file: metadataFile)
        journalPath = spec.stagingPath ?? StagingJournal.defaultPath(stateDir: context.config.stateDir, name: spec.name)
        stagingBytesMax = spec.stagingBytes ?? StagingJournal.bytesDefault
        let groupCommitted = GroupCommitFile.committedBytes(spec: spec, record: metadataFile.superblock.record,
                                                            stateDir: context.config.stateDir)
        let replayed = try Self.settleStaging(metadataFile: metadataFile, journalPath: journalPath, volume: volume,
                                              health: health, events: context.events, resource: spec.name, logger: logger,
                                              groupCommittedBytes: groupCommitted)
        var config = SecondaryNodeConfig(
            machine: machine, resourceName: spec.name, nodeName: context.config.nodeName, peerName: spec.peer?.name,
            volumeSizeBytes: volume.sizeBytes, alignment: volume.alignment, initialSync: spec.initialSync,
            stagingBytesMax: stagingBytesMax)
        config.group = spec.group
        config.groupCommitsCatchUp = !Self.groupCatchUpUncoordinated  // a test's control (docs/groups.md)
        // A replayed journal leaves a consistent image, as a clean stop does (stagefix).
        let consistentAtStart = cleanStop || (replayed && metadata.record.synced)
        node = SecondaryNode(config: config, record: metadata.record, handedOver: handedOver,
                             cleanStop: consistentAtStart, nowNs: ReplicationContext.nowNs())
        probe = SecondaryProbe(resource: spec.name, volumeSizeBytes: volume.sizeBytes, context: context, logger: logger)
        if let staged = metadataFile.superblock.record.staging {
            // A staged catch-up resumed (its durable part proven by `settleStaging`): the node
            // goes on staging, the same session's stream included, with no `.beginStaging`.
            do throws(IOError) { journal = try StagingJournal(path: journalPath, sizeBytes: stagingBytesMax, logger: logger) } catch {
                health.record("staging journal", errno: error.errno)
                throw ControlError(.ioError, "\(journalPath): cannot open the staging journal: \(error)")
            }
            journalSession = staged.session
        }
        actions.reserveCapacity(256)
        batch.reserveCapacity(256)
        handlerID = context.loop.register(self)
        // Strong for the whole body: the stop these calls may finish releases this replicator
        // (the loop held the last reference), and an unowned `self` read after that aborts.
        metadata.onRecorded = { [weak self] record in
            guard let self else { return }
            feed(.recorded(record))
            // A staged catch-up turns UpToDate when the record forgetting its journal is
            // stable: said (and the primary's generation adopted) now, not at the next tick.
            if node.diskState == .upToDate { publishDiskState() }
            // perform() ends with checkStopped(): a stop that waited for this record finishes
            // there and may release this replicator, so nothing may follow it here.
            perform()
        }
        metadata.onFailed = { [weak self] result in
            guard let self else { return }
            feed(.recordFailed(errno: result))
            perform()
        }
        probe.onResult = { [weak self] result in self?.noteFailure(result) }
    }

    deinit { timeout.deallocate() }

    /// Probe timing and the group-commit deadline (the node decides what is due).
    func tick() {
        guard !stopping else { return }
        let now = ReplicationContext.nowNs()
        link?.checkLiveness(nowNs: now)
        probe.checkLiveness(nowNs: now)
        feed(.tick)
        perform()
        publishDiskState()
        received.releaseChunksWhenIdle()
        digestBuffers.releaseMemoryWhenIdle()
        peerReads.releaseMemoryWhenIdle()
    }

    var diskState: DiskState { node.diskState }

    /// `body` reads the node in place, not a copy of it (NodeReads); it must not change it.
    @inline(__always)
    func peekNode<Result>(_ body: (inout SecondaryNode) -> Result) -> Result { body(&node) }

    var connectionState: ConnectionState { node.connectionState }
    var isConnectedToPeer: Bool { node.isConnected && link?.isEstablished == true }

    /// One event per change (changes between UpToDate and Consistent coalesced, see
    /// `DiskState.publishesNow`; `tick` catches up).
    func publishDiskState() {
        if primaryHello != nil, peekNode({ $0.diskState }) == .upToDate, let hello = primaryHello {
            primaryHello = nil
            onUpToDate?(hello)
        }
        diskStateAnnouncer.announce(reportedDiskState, resource: resource, events: context.events)
    }

    /// What the node says of both copies; the resource's status reports them through
    /// `ReportedDiskStates`.
    var copyView: SecondaryCopyView {
        SecondaryCopyView(diskState: reportedDiskState, peerDiskState: node.peerDiskState, redundant: node.isRedundant)
    }

    /// Status fields other than the disk states (`copyView`).
    var statusFields: [String: JSONValue] {
        let machine = node.machine
        var fields: [String: JSONValue] = [:]
        fields["connection_state"] = .string(node.connectionState.rawValue)
        fields["replication_state"] = .string(node.streamState.rawValue)
        fields["durable_through_epoch"] = .int(Int64(machine.durableThroughEpoch))
        fields["consistent"] = .bool(machine.isConsistent)
        fields["queued_writes"] = .int(Int64(machine.queuedWrites))
        fields["writes_in_flight"] = .int(Int64(machine.writesInFlight))
        fields["queued_bytes"] = .int(Int64(machine.queuedBytes))
        fields["staging"] = .string(stagingWord)
        fields["staged_bytes"] = .int(Int64(node.stagedBytes))
        fields["staging_bytes"] = .int(Int64(stagingBytesMax))
        // What the volume's image holds (stagefix: consistent_as_of).
        fields["consistent_as_of"] = ConsistentPoint.statusValue(node.consistentAsOf)
        fields["lag_bytes"] = .int(0)
        fields["rpo_ms"] = .int(0)
        fields["reads_served_for_peer"] = .int(Int64(clamping: counters.readsServedForPeer))
        fields["reads_refused_for_peer"] = .int(Int64(clamping: counters.readsRefusedForPeer))
        if let group = context.groups.secondaryStatus(of: spec.group) { fields["group_epochs"] = group }
        if spec.group != nil { fields["group_catch_up"] = .string(groupCatchUpWord) }
        if let peerNode { fields["peer_node"] = .string(peerNode) }
        if let error = context.newerHandshakeFailure(than: lastErrorNs), !isConnectedToPeer {
            fields["last_error"] = .string(error)
        } else if let lastError {
            fields["last_error"] = .string(lastError)
        }
        return fields
    }

    /// The primary's wall-clock time of an epoch it closes (protocol 9): carried by the node.
    func noteEpochTime(epoch: UInt64, wallClockNs: UInt64) { node.noteEpochTime(epoch: epoch, wallClockNs: wallClockNs) }

    /// A connection for this resource was refused here (PeerAcceptor / `validate`).
    func noteRefusal(_ message: String) {
        noteFailure(message)
    }

    func noteFailure(_ reason: String) {
        lastErrorNs = ReplicationContext.nowNs()
        guard reason != lastError else { return }
        lastError = reason
        logger.warning("peer link", metadata: ["reason": "\(reason)"])
        context.events.publish(resource: resource, "peer-error", ["message": .string(reason)])
    }

    /// Promotion: `done` runs once nothing of the stream is in flight any more.
    func stop(_ done: @escaping () -> Void) {
        probe.stop()
        stopping = true
        onStopped = done
        feed(.stop)
        perform()
        checkStopped()
    }

    func checkStopped() {
        // The record too: the owner may write it synchronously once this is done.
        guard stopping, link == nil, ioInFlight == 0, !timerArmed, !metadata.isWriting, let done = onStopped else { return }
        onStopped = nil
        releasePayloads()
        metadata.close()
        context.loop.unregister(handlerID)
        done()
    }

    /// This node's disk failed (DiskHealth, from any part of the resource): the node stops
    /// writing and acknowledging, drops the primary and refuses its reconnects with
    /// `disk-failed`, so that it stops waiting for this node and serves alone.
    func diskFailed() {
        guard let failure = health.failure else { return }
        lastError = "disk failed: \(failure.operation): \(failure.message)"
        feed(.diskFailed(SecondaryDiskFault(operation: failure.operation, errno: failure.errno, message: failure.message)))
        perform()
    }

    /// Asks the primary to drain and demote; `done(true)` once it has.
    func requestFailover(_ done: @escaping (Bool) -> Void) {
        guard onDemoted == nil else { return done(false) }
        onDemoted = done
        feed(.requestFailover)
        perform()
    }

    // MARK: the node

    func feed(_ event: SecondaryNodeEvent) {
        node.handle(event, nowNs: ReplicationContext.nowNs(), into: &actions)
    }

    /// Carries out what the node asked; an action whose callee feeds the node again (a disk
    /// error reported to DiskHealth calls back `diskFailed`, a failover answer stops this
    /// replicator) is picked up by the same loop, and a stop it began is checked at the end.
    func perform() {
        guard !performing else { return }
        performing = true
        while !actions.isEmpty {
            swap(&actions, &batch)
            for action in batch { execute(action) }
            batch.removeAll(keepingCapacity: true)
        }
        performing = false
        armTimer()
        checkStopped()
        // A member's progress may let the group's other members go on (ConsistencyGroups).
        if spec.group != nil { context.groups.secondaryProgressed(self) }
    }

    private func execute(_ action: SecondaryNodeAction) {
        switch action {
        case .acceptLink:
            guard let candidate else { preconditionFailure("accepted no Hello") }
            link = candidate.link
            peerNode = candidate.hello.nodeName
            primaryHello = candidate.hello
            primaryHelloVersion = candidate.hello.protocolVersion
            acceptedPrimaryHello = candidate.hello
            onPrimaryAccepted?(candidate.hello)
            // A session that starts in sync (no copy): this copy holds the primary's
            // generation from now on, as it will once UpToDate after a copy.
            switch SessionBasis(generations: candidate.hello.generations) {
            case .assumeInSync, .continues:
                primaryHello = nil
                onUpToDate?(candidate.hello)
            case .fullCopy, .catchUp: break
            }
            let (generations, promotion) = helloGenerations?() ?? (WireNodeGenerations(current: 0, bitmap: 0), 0)
            // A primary of an older build cannot read the generation tail: it gets a Hello of
            // its own version (docs/protocol.md, *Versions*).
            let version = min(WireFormat.helloVersion, candidate.hello.protocolVersion)
            let own = WireHello(protocolVersion: version, role: .secondary, nodeName: context.config.nodeName,
                                resourceName: resource,
                                volumeSizeBytes: volume.sizeBytes, generations: WireGenerations(current: 0, bitmap: 0),
                                promotionNumber: promotion, node: generations)
            verdict = .accept(delegate: self, hello: own)
        case .refuseLink(let code, let reason):
            verdict = .refuse(code, reason)
        case .closeLink(let reason):
            // No longer current: its close reports nothing here (the node has ended it).
            guard let old = link else { return }
            link = nil
            old.close(reason)
        case .closeForViolation(let reason):
            link?.closeForViolation(reason)
        case .releasePayloads:
            releasePayloads()
        case .submitWrite(let write):
            submit(write)
        case .submitFlush:
            submitFlush()
        case .writeRecord(let record):
            metadata.write(record)
        case let .beginStaging(session, journalBytes):
            beginStaging(session: session, journalBytes: journalBytes)
        case let .stageWrite(write, journalOffset):
            stage(write, journalOffset: journalOffset)
        case .flushStaging:
            flushStaging()
        case .commitStaging(let record):
            commitStaging(record)
        case .applyStaging(let journalBytes):
            applyStaging(journalBytes: journalBytes)
        case .send(let message):
            send(message)
        case .sendFailoverRequest:
            link?.send(.failoverRequest(promotion: 0))
        case .sendCaughtUp(let session):
            // Only a primary of protocol 7 or later reads it (an older one would drop the link).
            if primaryHelloVersion >= WireFormat.caughtUpVersion { link?.send(.caughtUp(session: session)) }
        case .failoverAnswered(let demoted):
            let handler = onDemoted
            onDemoted = nil
            handler?(demoted)
        case .flushForDigests:
            flushForDigests()
        case let .readForDigest(offset, length):
            readForDigest(offset: offset, length: length)
        case let .sendDigest(offset, length, digest):
            link?.send(.digests(offsetBytes: offset, lengthBytes: length, digest: digest))
        case .probe:
            probe.start(peer: spec.peer)
        case .endProbe:
            probe.sessionSeen()
        case .notice(let notice):
            noticed(notice)
        }
    }

    private func noticed(_ notice: SecondaryNotice) {
        switch notice {
        case .connectionState(let state):
            if state == .connected { lastError = nil }
            context.events.publish(resource: resource, "connection-state", ["connection_state": .string(state.rawValue)])
        case .diskError(let fault):
            health.record(fault.operation, errno: fault.errno)  // the first fails the resource
        case .peerDemoted:
            context.events.publish(resource: resource, "peer-demoted", ["peer": .string(peerNode ?? "")])
        case .sessionAbandoned:
            logger.info("a new primary session ended before its first write; keeping the recorded session")
        case let .catchUpInconsistent(staged, write, max):
            logger.warning("the catch-up outgrew the staging journal: it goes on in place, Inconsistent until done",
                           metadata: ["staged_bytes": "\(staged)", "staging_bytes": "\(max)"])
            context.events.publish(resource: resource, "catch-up-inconsistent", [
                "staged_bytes": .int(Int64(staged)), "write_bytes": .int(Int64(write)),
                "staging_bytes": .int(Int64(max)), "journal": .string(journalPath),
            ])
            tellPrimaryCatchUpWentInPlace()
        case .stagingApplied(let bytes):
            context.events.publish(resource: resource, "catch-up-applied", ["journal_bytes": .int(Int64(bytes))])
        }
    }

    /// The DataAck of `sequence` is queued: its ack and total phases end (once: a duplicate's
    /// re-acknowledgement is not counted).
    private func traceAcknowledged(_ sequence: WriteSequence) {
        guard counters.trace.enabled, let stamps = counters.trace.existingStamps(sequence), stamps.pointee.link.isSet else {
            return
        }
        let now = context.loop.traceStamp()
        counters.trace.record(.write, .secondaryAck, from: stamps.pointee.link, to: now)
        counters.trace.record(.write, .secondaryTotal, from: stamps.pointee.start, to: now)
        stamps.pointee.link = .none
    }

    private func send(_ message: SecondaryMessage) {
        guard let link, link.isEstablished else { return }
        switch message {
        case .hello(let epoch, let copy):
            link.send(.replicaHello(WireReplicaHello(durableThroughEpoch: epoch, diskState: copy.wire)))
        case .durableThroughEpoch(let epoch):
            link.send(.durableAck(epoch: epoch))
            // A stamp from before the trace was last turned on belongs to an earlier count.
            if counters.trace.enabled, traceUndurableStamp.ns >= counters.trace.sinceNs {
                counters.trace.record(.write, .secondaryDurable, from: traceUndurableStamp, to: context.loop.traceStamp())
            }
            traceUndurableStamp = .none
        case .dataAck(let sequence):
            link.send(.dataAck(epoch: 0, sequence: sequence))
            traceAcknowledged(sequence)
        }
    }
}
