// SecondaryNode: every decision of a secondary replica, as a pure state machine wrapping
// ReplicationSecondary (which applies the stream). It decides which primary it accepts (the
// Hello checks and the session verdict), when a new primary session replaces the recorded one
// (only once it proves itself with its first Data or an allowed SyncComplete; until then the
// previous machine is kept and restored if the session ends), what the record says
// (`.writeRecord`), that none of a new session's writes or flushes reaches the disk before its
// record is stable, what the ReplicaHello reports, which Data frames are duplicates, what
// SyncComplete and Demoted change, the disk state it reports, what a disk failure stops, and
// when to probe a peer that never connects. No I/O, no clock (time comes with each event),
// confined to one thread (the resource's event loop).

public struct SecondaryNodeConfig: Sendable, Hashable {
    public var machine: ReplicationSecondaryConfig
    public var resourceName: String
    /// This node's name (refusal texts).
    public var nodeName: String
    /// The configured peer, nil when none is configured (every Hello is refused).
    public var peerName: String?
    public var volumeSizeBytes: UInt64
    /// Writes must start and end on this boundary (the volume's O_DIRECT alignment).
    public var alignment: Int
    /// What the volumes were at creation (`initial_sync: none`: identical).
    public var initialSync: InitialSync
    /// Without a primary for this long the node probes its peer once…
    public var probeQuietNs: UInt64
    /// …and again at most this often.
    public var probeIntervalNs: UInt64
    /// The staging journal's size (`staging_bytes`): a catch-up stages up to this much and
    /// keeps the copy Consistent (0: never stage; SecondaryNode+Staging).
    public var stagingBytesMax: UInt64
    /// The consistency group this resource is a member of (nil: none; docs/groups.md).
    public var group: String? = nil
    /// A group member's staged catch-up commits with the group's (ConsistencyGroup+CatchUp);
    /// false only to show what the coordination prevents (a test's control).
    public var groupCommitsCatchUp = true

    public init(
        machine: ReplicationSecondaryConfig, resourceName: String, nodeName: String, peerName: String?,
        volumeSizeBytes: UInt64, alignment: Int, initialSync: InitialSync,
        probeQuietNs: UInt64 = 10_000_000_000, probeIntervalNs: UInt64 = 30_000_000_000,
        stagingBytesMax: UInt64 = 0
    ) {
        precondition(alignment > 0)
        self.machine = machine
        self.resourceName = resourceName
        self.nodeName = nodeName
        self.peerName = peerName
        self.volumeSizeBytes = volumeSizeBytes
        self.alignment = alignment
        self.initialSync = initialSync
        self.probeQuietNs = probeQuietNs
        self.probeIntervalNs = probeIntervalNs
        self.stagingBytesMax = stagingBytesMax
    }
}

public struct SecondaryNode: Sendable {
    enum LinkPhase: Sendable, Equatable {
        case none
        /// A Hello was accepted; the handshake is finishing.
        case accepted
        case established
    }

    public let config: SecondaryNodeConfig
    public internal(set) var machine: ReplicationSecondary
    /// The record as it will be once every requested write is stored.
    public internal(set) var record: ReplicationRecord
    /// The primary session the machine's epochs belong to.
    public internal(set) var session: UInt64
    internal(set) var link = LinkPhase.none
    /// The accepted Hello's session and what it means for this copy.
    var pendingSession: UInt64 = 0
    var pendingVerdict = SecondarySessionVerdict.sameSession
    /// The accepted Hello's basis is a catch-up (it may be staged).
    var pendingCatchUp = false
    /// The staged catch-up (SecondaryNode+Staging).
    var staging: SecondaryStaging
    /// While a new primary session has not written anything: the machine and session it
    /// replaced, restored if it ends.
    var unproven: (machine: ReplicationSecondary, session: UInt64)?
    /// A new session's record is being stored: its writes and flushes wait.
    var awaitingSessionRecord = false
    var heldWrites: BoundedQueue<SecondaryWrite>
    var flushHeld = false
    var recordRequestedEpoch: Epoch?
    /// The primary's wall-clock stamps of epochs not yet durable (SecondaryNode+EpochTime).
    var epochTimes: [EpochTimeStamp] = []
    /// The primary's last SyncComplete on this link.
    public internal(set) var confirmedThrough: WriteSequence?
    /// A SyncComplete on this link whose CaughtUp is not sent yet: the record generation
    /// that must be stored first (SecondaryNode+CaughtUp).
    var caughtUpOwedGeneration: UInt64?
    /// The generation of the newest record the driver reported stored.
    var storedGeneration: UInt64 = 0
    /// The newest write received on this link that its primary may have acknowledged before
    /// this node applied it (async: no acknowledged-after-apply flag).
    var newestAsyncReceived: WriteSequence = 0
    var failoverPending = false
    /// Digest reads in flight (online verify) and when the last DigestRequest came.
    public var digestReadsInFlight: Int { digestRegionsInFlight.count }
    var digestRegionsInFlight: [UInt64] = []
    /// The volume made durable before this link's first digest read, and the reads waiting
    /// for that flush (SecondaryNode+Verify).
    var digestFlush = DigestFlush.needed
    var digestsAwaitingFlush: [(offsetBytes: UInt64, lengthBytes: UInt64)] = []
    var lastDigestRequestNs: UInt64?
    /// The link's primary names protocol `verifyEndVersion` or later: it ends its verify with
    /// VerifyEnd, so `VerifyT` lasts until then (an older one's ends two seconds after its
    /// last DigestRequest: `verifyTargetShownNs`).
    var primarySendsVerifyEnd = false
    public static let digestReadsMax = 8
    static let verifyTargetShownNs: UInt64 = 2_000_000_000
    public internal(set) var diskFault: SecondaryDiskFault?
    public internal(set) var isStopping = false
    var nextProbeNs: UInt64
    var machineActions: [SecondaryAction] = []
    /// A restarted copy whose last run stopped cleanly (volume flushed after its last write,
    /// flag `secondary-clean-stop`): the volume is the epoch prefix that stop left, so it is
    /// consistent although the machine waits for a re-send. True until this run submits its
    /// first write: a re-sent write may land over a newer one, and from then on the machine's
    /// consistency (after ResendComplete) is the copy's.
    public internal(set) var consistentAtRest: Bool
    /// Writes submitted to the volume (not the journal) by this run: a group's image check.
    public internal(set) var volumeWritesSubmitted: UInt64 = 0

    /// - `record`: the stored record (`ReplicationRecord()` for a new resource).
    /// - `handedOver`: this process demoted the resource and its volume holds every write it
    ///   acknowledged (see `restarted`).
    /// - `cleanStop`: the metadata said the last run stopped cleanly (`consistentAtRest`); the
    ///   driver clears the flag durably before it creates the node.
    public init(config: SecondaryNodeConfig, record: ReplicationRecord, handedOver: Bool, cleanStop: Bool = false,
                nowNs: UInt64) {
        self.config = config
        self.record = record
        session = record.session
        let restarted = Self.restarted(record: record, handedOver: handedOver)
        machine = ReplicationSecondary(config: config.machine, durableThroughEpoch: record.durableThroughEpoch,
                                       restarted: restarted)
        consistentAtRest = restarted && cleanStop
        heldWrites = BoundedQueue(capacity: config.machine.queuedWritesMax)
        staging = SecondaryStaging(record: record)
        storedGeneration = record.generation
        nextProbeNs = nowNs + config.probeQuietNs
        machineActions.reserveCapacity(256)
    }

    // MARK: rules over the record

    /// The restart rule: a record from an earlier run means the node may have stopped with
    /// unflushed writes, which may have landed in any order: not consistent until the primary
    /// has re-sent. Not so when this process demoted and handed over everything.
    public static func restarted(record: ReplicationRecord, handedOver: Bool) -> Bool {
        record.generation > 0 && !handedOver
    }

    /// No full copy is pending or interrupted; a fresh copy created with `initial_sync: none`
    /// is taken at the operator's word.
    public static func isSynced(record: ReplicationRecord, initialSync: InitialSync) -> Bool {
        record.synced || (record.generation == 0 && initialSync == .none)
    }

    public var isSynced: Bool { Self.isSynced(record: record, initialSync: config.initialSync) }

    /// Whether this run's stop, once the driver has flushed the volume, leaves a copy a
    /// restart may call consistent (flag `secondary-clean-stop`): the node is stopping, no
    /// write or flush is outstanding, its disk has not failed, and what it applied is an
    /// epoch prefix (the machine is consistent, or nothing was written since a clean start).
    /// Writes are submitted in sequence order, so with none in flight the volume holds
    /// exactly a prefix of the primary's writes. Whether the copy is synced is the record's
    /// business (a stopped full copy stays Inconsistent whatever this says).
    public var stopLeavesConsistentCopy: Bool {
        isStopping && diskFault == nil && machine.writesInFlight == 0 && !machine.flushInFlight
            && ownCopy.consistent
    }

    // MARK: state for status

    public var isConnected: Bool { link == .established }

    public var connectionState: ConnectionState { link == .established ? .connected : .wfConnection }

    public var diskState: DiskState {
        if diskFault != nil { return .failed }
        var confirmed = confirmedThrough.map { newestAsyncReceived <= $0 } ?? false
        if config.machine.testingFault == .claimsUpToDateBeforeConfirmed { confirmed = true }
        if staging.phase != .off { confirmed = false }  // UpToDate once the journal is applied
        let copy = ownCopy
        return DiskState.ofSecondary(synced: copy.synced, consistent: copy.consistent,
                                     connected: link == .established && machine.isConnected, confirmed: confirmed)
    }

    /// What the volume holds now. While a new session is unproven the disk still holds the
    /// recorded session's content: its consistency is the replaced machine's (a restarted
    /// copy is not crash-consistent until re-sent), and a session that announced a full copy
    /// makes it unsynced from the moment it was accepted.
    private var ownCopy: (synced: Bool, consistent: Bool) {
        if imageKeptByStaging { return (true, true) }
        guard let unproven else { return (isSynced, machine.isConsistent || consistentAtRest) }
        var synced = isSynced
        if case .newSession(let nowSynced, _) = pendingVerdict { synced = nowSynced }
        return (synced, unproven.machine.isConsistent || consistentAtRest)
    }

    /// The running catch-up, or the accepted one that will begin a journal, goes to the journal:
    /// the volume keeps its image (unless a full copy replaces it), whatever is re-sent.
    var imageKeptByStaging: Bool {
        if staging.keepsConsistent, unproven == nil || pendingCatchUp { return true }
        guard let unproven else { return false }
        return willStage(replacedConsistent: unproven.machine.isConsistent || consistentAtRest)
    }

    /// The primary's copy is the reference while it is connected; otherwise unknown.
    public var peerDiskState: DiskState { link == .established ? .upToDate : .unknown }

    public var streamState: SecondaryStreamState {
        guard link == .established else { return .off }
        guard isSynced else { return .syncTarget }
        return lastDigestRequestNs == nil ? .established : .verifyT
    }

    /// Both copies hold the same writes while the link lasts.
    public var isRedundant: Bool { link == .established && isSynced && machine.isConsistent && diskFault == nil }

    /// When the group-commit timer next needs a `.tick`.
    public var flushDeadlineNs: UInt64? { machine.flushDeadlineNs }

    /// What the driver does with a Data frame before it reads the payload.
    public func classify(_ data: DataMessage) -> SecondaryDataClass {
        guard link == .established, machine.isConnected, diskFault == nil, !isStopping else { return .ignore }
        let length = UInt64(data.lengthBytes)
        let alignment = UInt64(config.alignment)
        guard data.offsetBytes <= config.volumeSizeBytes, length <= config.volumeSizeBytes - data.offsetBytes,
            data.offsetBytes % alignment == 0, length % alignment == 0
        else {
            return .violation("protocol violation: write of \(length) bytes at \(data.offsetBytes) is outside or misaligned on the volume")
        }
        switch machine.classify(data) {
        case .accept: return .new
        case .duplicate: return .duplicate
        case .wait: return .wait
        case .violation(let reason): return .violation("protocol violation: \(reason)")
        }
    }

    // MARK: events

    public mutating func handle(_ event: SecondaryNodeEvent, nowNs: UInt64, into actions: inout [SecondaryNodeAction]) {
        switch event {
        case .hello(let facts): hello(facts, nowNs: nowNs, into: &actions)
        case .linkEstablished: established(nowNs: nowNs, into: &actions)
        case .linkClosed: closed(nowNs: nowNs, into: &actions)
        case .message(let message):
            guard link == .established, machine.isConnected else { break }
            feed(.message(message), nowNs: nowNs, into: &actions)
        case .data(let data): receive(data, nowNs: nowNs, into: &actions)
        case .syncComplete(let through): syncComplete(through, into: &actions)
        case .demoted:
            guard link == .established, machine.isConnected else { break }
            actions.append(.notice(.peerDemoted))
            if failoverPending {
                failoverPending = false
                // A commit under way finishes first: the promotion must find the catch-up
                // on the volume, not a journal it would drop (SecondaryNode+Staging).
                if staging.holds {
                    staging.failoverAnswerHeld = true
                } else {
                    // A catch-up this copy stages is not on it before its SyncComplete (the
                    // drain does not wait for the copy): it must not take over as the holder of
                    // every write; the operator decides, as for an Inconsistent copy.
                    actions.append(.failoverAnswered(demoted: !stagesIncompleteCatchUp))
                }
            }
        case .unexpected(let type):
            guard link == .established, machine.isConnected else { break }
            actions.append(.closeForViolation("protocol violation: a primary sent \(type)"))
        case let .digestRequested(offset, length):
            digestRequested(offset, length, nowNs: nowNs, into: &actions)
        case .verifyEnded: lastDigestRequestNs = nil
        case let .digestFlushCompleted(errno): digestFlushCompleted(errno, nowNs: nowNs, into: &actions)
        case let .digestRead(offset, length, digest, errno):
            if let index = digestRegionsInFlight.firstIndex(of: offset) { digestRegionsInFlight.remove(at: index) }
            if errno != 0 || digest == nil {
                fail(SecondaryDiskFault(operation: "read", errno: errno == 0 ? 5 : errno), nowNs: nowNs, into: &actions)
            } else if link == .established, diskFault == nil, let digest {
                actions.append(.sendDigest(offsetBytes: offset, lengthBytes: length, digest: digest))
            }
        case let .groupIssueLimit(limit):
            guard config.machine.groupID != 0 else { break }
            feed(.groupIssueLimit(limit), nowNs: nowNs, into: &actions)
        case .requestFailover:
            guard link == .established, !failoverPending, diskFault == nil, !isStopping else {
                actions.append(.failoverAnswered(demoted: false))
                break
            }
            failoverPending = true
            actions.append(.sendFailoverRequest)
        case .writeCompleted(let sequence, let errno):
            stagedIOEnded(write: true)
            if errno != 0 {
                // Not on the disk: never acknowledged, and the copy now lacks it.
                fail(SecondaryDiskFault(operation: "write", errno: errno), nowNs: nowNs, into: &actions)
            } else {
                feed(.writeCompleted(sequence: sequence), nowNs: nowNs, into: &actions)
            }
        case .flushCompleted(let errno):
            if staging.flushInFlight { stagedIOEnded(write: false) }
            if errno != 0 {
                fail(SecondaryDiskFault(operation: "flush", errno: errno), nowNs: nowNs, into: &actions)  // never durable
            } else {
                feed(.flushCompleted, nowNs: nowNs, into: &actions)
            }
        case .recorded(let stored): recorded(stored, nowNs: nowNs, into: &actions)
        case .recordFailed(let errno):
            fail(SecondaryDiskFault(operation: "metadata write", errno: errno), nowNs: nowNs, into: &actions)
        case .diskFailed(let fault): fail(fault, ownResult: false, nowNs: nowNs, into: &actions)
        case .stagingApplied(let errno): stagingApplied(errno: errno, nowNs: nowNs, into: &actions)
        case .groupCommitBegin: groupCommitBegin(into: &actions)
        case .groupCommitDecided: groupCommitDecided(into: &actions)
        case .stagingFailed(let fault): fail(fault, nowNs: nowNs, into: &actions)
        case .stop:
            guard !isStopping else { break }
            isStopping = true
            if link != .none { close("resource stopping", nowNs: nowNs, into: &actions) }
        case .tick:
            if let last = lastDigestRequestNs, !primarySendsVerifyEnd, nowNs >= last + Self.verifyTargetShownNs {
                lastDigestRequestNs = nil
            }
            feed(.tick, nowNs: nowNs, into: &actions)
            if !isStopping, link == .none, config.peerName != nil, nowNs >= nextProbeNs {
                nextProbeNs = nowNs + config.probeIntervalNs
                actions.append(.probe)
            }
        }
        continueStaging(into: &actions)
        answerCaughtUpIfSettled(into: &actions)
        checkInvariants()
    }

    private func checkInvariants() {
        precondition(heldWrites.isEmpty && !flushHeld || awaitingSessionRecord || staging.holds,
                     "writes held without a session record or a commit")
        precondition(staging.phase == .off || staging.phase == .clearing || record.staging != nil, "staging without a staged record")
        precondition(staging.writesInFlight == 0 || staging.phase == .staging || staging.phase == .draining(noRoom: false)
            || staging.phase == .draining(noRoom: true), "staged writes in flight after the drain")
        precondition(unproven == nil || machine.queuedWrites == 0, "an unproven session holds writes")
        precondition(unproven == nil || !awaitingSessionRecord, "an unproven session's record is being written")
        precondition(!failoverPending || link == .established, "failover pending without a link")
        precondition(link != .established || !isStopping, "connected while stopping")
    }

    // MARK: the stream

    private mutating func receive(_ data: DataMessage, nowNs: UInt64, into actions: inout [SecondaryNodeAction]) {
        switch classify(data) {
        case .ignore: return
        case .violation(let reason): return actions.append(.closeForViolation(reason))
        case .wait: return actions.append(.closeForViolation("a Data frame was delivered with no room for it in the queue"))
        case .duplicate: break
        case .new:
            if !data.flags.contains(.acknowledgedAfterApply) {
                newestAsyncReceived = max(newestAsyncReceived, data.sequence)
            }
            commitSession(into: &actions)
        }
        feed(.message(.data(data)), nowNs: nowNs, into: &actions)
    }

    private mutating func syncComplete(_ through: WriteSequence, into actions: inout [SecondaryNodeAction]) {
        guard link == .established, machine.isConnected else { return }
        if unproven != nil {
            // A new session confirming this copy before sending anything: right for one that
            // continues or is in sync by the operator's word (it proves itself with this
            // message, which the session check allowed), never for a full copy.
            if case .newSession(synced: false, _) = pendingVerdict {
                return actions.append(.closeForViolation("protocol violation: SyncComplete before any Data of the session"))
            }
            commitSession(into: &actions)
        }
        if staging.phase == .staging {
            // The catch-up is complete: commit and apply the journal, then the copy is synced.
            confirmedThrough = through
            caughtUpOwedGeneration = record.generation
            // A group member's journal commits with the group's (docs/groups.md, *Catch-up*).
            if commitsWithGroup {
                staging.catchUpComplete = true
                staging.catchUpThroughSequence = through
                return
            }
            return beginCommit(noRoom: false, writeBytes: 0, into: &actions)
        }
        if !record.synced || record.promotedInconsistent {
            record.synced = true
            record.promotedInconsistent = false
            writeRecord(into: &actions)
        }
        caughtUpOwedGeneration = record.generation
        confirmedThrough = through
    }

    private mutating func recorded(_ stored: ReplicationRecord, nowNs: UInt64, into actions: inout [SecondaryNodeAction]) {
        storedGeneration = max(storedGeneration, stored.generation)
        // Stopping (a promotion): nothing more of the stream is written or acknowledged.
        guard !isStopping else { return }
        if awaitingSessionRecord, stored.session == session {
            // The session's record is stable: what it held back may reach the disk.
            awaitingSessionRecord = false
            releaseHeld(into: &actions)
        }
        stagingRecorded(stored, into: &actions)
        guard let wanted = recordRequestedEpoch, stored.session == session, stored.durableThroughEpoch >= wanted
        else { return }
        recordRequestedEpoch = nil
        feed(.durableEpochRecorded(wanted), nowNs: nowNs, into: &actions)
    }

    // MARK: disk failures

    /// The first failure stops writing and acknowledging; the volume lacks writes from now on
    /// (only a full copy makes it current again); the primary is dropped and later Hellos are
    /// refused with `disk-failed`, so that it stops waiting for this node and serves alone.
    /// `ownResult`: a result of this node's own I/O (reported to the driver, which counts it);
    /// otherwise the driver reported it.
    mutating func fail(_ fault: SecondaryDiskFault, ownResult: Bool = true, nowNs: UInt64,
                               into actions: inout [SecondaryNodeAction]) {
        if ownResult { actions.append(.notice(.diskError(fault))) }
        if staging.failoverAnswerHeld {  // the commit a planned failover waits for cannot finish
            staging.failoverAnswerHeld = false
            actions.append(.failoverAnswered(demoted: false))
        }
        if let known = diskFault {
            if known.message == nil, known.operation == fault.operation, known.errno == fault.errno {
                diskFault?.message = fault.message
            }
            return
        }
        diskFault = fault
        record.synced = false
        writeRecord(into: &actions)
        heldWrites.removeAll()
        flushHeld = false
        if link != .none { close("this node's disk failed (\(fault.summary))", nowNs: nowNs, into: &actions) }
    }

    // MARK: the machine

    mutating func feed(_ event: SecondaryEvent, nowNs: UInt64, into actions: inout [SecondaryNodeAction]) {
        machine.handle(event, nowNs: nowNs, into: &machineActions)
        for action in machineActions { translate(action, into: &actions) }
        machineActions.removeAll(keepingCapacity: true)
    }

    private mutating func translate(_ action: SecondaryAction, into actions: inout [SecondaryNodeAction]) {
        switch action {
        case .submitWrite(let write):
            guard diskFault == nil else { return }  // a failed disk is not written to
            if awaitingSessionRecord || staging.holds { return heldWrites.append(write) }
            if staging.phase == .staging, !hasRoom(for: write) {
                heldWrites.append(write)
                let bytes = StagingJournalRecord.recordBytes(lengthBytes: write.lengthBytes)
                return beginCommit(noRoom: true, writeBytes: bytes, into: &actions)
            }
            route(write, into: &actions)
        case .submitFlush:
            guard diskFault == nil else { return }
            if awaitingSessionRecord || staging.holds || !heldWrites.isEmpty { return flushHeld = true }
            routeFlush(into: &actions)
        case .recordDurableEpoch(let epoch):
            noteDurable(epoch)
            recordRequestedEpoch = epoch
            record.durableThroughEpoch = epoch
            record.session = session
            stampDurable(epoch)
            writeRecord(into: &actions)
        case .send(let message):
            // After a disk failure nothing is acknowledged: the link is being closed.
            guard diskFault == nil, link == .established else { return }
            if case .hello(let epoch, _) = message {
                // The copy as it starts: Inconsistent while a full copy is due or unfinished,
                // or after a restart until the re-send is applied (also after a clean stop:
                // the re-sent writes make it inconsistent until ResendComplete, so the primary
                // must send one and count the peer Inconsistent until then) — unless the
                // catch-up is staged: the re-sent writes go to the journal, and the image
                // this copy reports itself (Consistent, or Outdated) is what the primary shows.
                let own = ownCopy
                let consistent = (unproven?.machine ?? machine).isConsistent
                let copy: DiskState = imageKeptByStaging || (own.synced && consistent) ? .consistent : .inconsistent
                return actions.append(.send(.hello(durableThroughEpoch: epoch, copy: copy)))
            }
            actions.append(.send(message))
        case .protocolViolation(let reason):
            actions.append(.closeForViolation("protocol violation: \(reason)"))
        }
    }
}
