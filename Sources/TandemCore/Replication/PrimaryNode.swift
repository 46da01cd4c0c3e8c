// PrimaryNode: every decision of a primary's replication, as one state machine around
// ReplicationPrimary (epochs, acknowledgements, re-send). It owns the admission queue (one
// bounded FIFO, WRITE_ZEROES chunking, TRIM, the overlap rule), the full copy, the link's
// lifecycle (dial, backoff, hello), SyncComplete, drain, stop and the clean-stop value, and
// disk failures. A write's identity is its sequence number from admission to release; until
// admission a request is the driver's `RequestID`. No I/O, no clock (`nowNs` comes with each
// event), no randomness (the session is passed in). Confined to one thread.

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
    public let session: UInt64
    public private(set) var basis: SessionBasis
    public private(set) var primary: ReplicationPrimary
    private var inner: [PrimaryAction] = []

    /// Allocated on demand up to `ticketsMax` (an idle node holds none; docs/benchmarks.md,
    /// "Per-pair memory"), and handed out in the same order as from a full table: freed
    /// tickets first, last freed first, then the next new one.
    var tickets: [Ticket] = []
    private var freeTickets: [Int] = []
    private let ticketsMax: Int
    /// Tickets of writes, zeroes and copy chunks admitted and not answered (acknowledged, for
    /// a chunk): the overlap rule scans them.
    private var active: [Int]
    /// The ticket of each held sequence (`sequence % count`): the store holds at most
    /// `writesInFlightMax` contiguous sequences.
    /// Allocated at the first local write (an idle node never needs it).
    private var ticketOfSequence: [Int] = []
    private var queue: BoundedQueue<Queued>
    var zeroing: Zeroing?
    /// The head of the queue waits for room in the buffer (not for an overlap).
    public private(set) var isBlocked = false
    private var releasedThrough: WriteSequence = 0

    public private(set) var localWritesInFlight = 0
    private var localFlushInFlight = false

    // The link.
    public private(set) var enabled = false
    private var link: Link = .idle
    private var nextDialNs: UInt64 = 0
    private var backoffNs: UInt64
    public private(set) var connectionState: ConnectionState = .standAlone
    /// The peer's first ReplicaHello in this run: before it the peer's state is unknown.
    public private(set) var peerHeard = false
    /// The peer reported itself inconsistent (it restarted after a crash): it stays
    /// Inconsistent until the writes re-sent to it are durable there (through this epoch).
    public private(set) var peerInconsistentThroughEpoch: Epoch?
    /// The sequence SyncComplete last named on this link.
    var confirmedOnLink: WriteSequence?

    // The full copy.
    /// A full copy is due or running: the peer does not hold this volume's content yet.
    public internal(set) var copyWanted: Bool
    /// The peer holds this volume's content (no full copy is due).
    public var peerSynced: Bool { !copyWanted }
    public internal(set) var copyCursor: UInt64 = 0
    var copyReadInFlight = false
    /// The copy waits for local writes to finish before its next read: admission pauses.
    var copyWaitingForQuiet = false
    var copyChunksOutstanding = 0
    var copyLastSequence: WriteSequence = 0
    var copySampleNs: UInt64 = 0
    var copySampleCursor: UInt64 = 0
    public internal(set) var copyRateBytesPerSecond: UInt64 = 0

    // Failure, drain, stop.
    public private(set) var diskFailed = false
    public private(set) var draining = false
    private var drainedSent = false
    public private(set) var stopping = false
    public private(set) var stopped = false
    private var stopRecorded = false
    private var stopFlushInFlight = false
    private var stopFlushErrno: Int32?
    private var cleanStopInvalidated = false

    public init(config: PrimaryNodeConfig, session: UInt64, basis: SessionBasis) {
        precondition(session != 0, "session 0 means none")
        self.config = config
        self.session = session
        self.basis = basis
        primary = ReplicationPrimary(config: config.primary)
        ticketsMax = config.primary.writesInFlightMax + config.primary.flushesPendingMax + 1
        active = []
        queue = BoundedQueue(capacity: config.requestsQueuedMax)
        inner.reserveCapacity(256)
        backoffNs = config.backoffInitialNs
        copyWanted = basis == .fullCopy
    }

    // MARK: Read-only state

    public var streamState: ReplicationStreamState {
        guard link == .up else { return .off }
        if copyWanted { return .syncSource }
        return isBlocked ? .blocked : .established
    }

    /// The link is up and the peer's hello was accepted.
    public var isPeerReady: Bool { link == .up && primary.isPeerReady }

    /// The link is being dialled (the driver resolves and connects).
    public var isDialing: Bool { link == .dialing }

    public var peerDiskState: DiskState {
        DiskState.ofPeer(
            heard: peerHeard, peerReady: isPeerReady,
            copying: copyWanted || peerInconsistentThroughEpoch != nil,
            sync: config.primary.mode == .sync, lagBytes: primary.lagBytes)
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

    public var outOfSyncBytes: UInt64 {
        peerSynced ? 0 : config.volumeSizeBytes - min(copyCursor, config.volumeSizeBytes)
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
            guard !stopping else { break }
            enabled = true
            nextDialNs = 0
            backoffNs = config.backoffInitialNs
            setConnectionState(.connecting, into: &actions)
            dialIfDue(nowNs: nowNs, into: &actions)
        case .disable:
            recordStop(into: &actions)
            enabled = false
            hangUp("disabled by the operator", into: &actions)
            setConnectionState(.standAlone, into: &actions)
        case .drain:
            draining = true
        case .stop:
            recordStop(into: &actions)
            stopping = true
            enabled = false
            hangUp("resource stopping", into: &actions)
            setConnectionState(.standAlone, into: &actions)
        case let .request(id, request):
            receive(id, request, into: &actions)
        case let .localWriteDone(sequence, errno):
            localWriteDone(sequence, errno: errno, nowNs: nowNs, into: &actions)
        case let .localFlushDone(errno):
            precondition(localFlushInFlight, "a flush result without a flush")
            localFlushInFlight = false
            if errno != 0 { failDisk("flush", errno, into: &actions) }
            if stopFlushInFlight {
                stopFlushInFlight = false
                stopFlushErrno = errno
            } else {
                drive(.localFlushCompleted, nowNs: nowNs, into: &actions)
            }
        case let .copyChunkRead(offset, length, errno):
            copyChunkRead(offset, length, errno: errno, nowNs: nowNs, into: &actions)
        case .diskFailedElsewhere:
            diskFailed = true
        case .dialFailed:
            if link == .dialing { link = .idle }
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
        }
        settle(nowNs: nowNs, into: &actions)
        checkInvariants()
    }

    /// What follows any event: admit what can be, continue the copy, release, confirm,
    /// finish a drain or a stop.
    private mutating func settle(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        admitQueued(nowNs: nowNs, into: &actions)
        continueCopy(nowNs: nowNs, into: &actions)
        if let through = peerInconsistentThroughEpoch, primary.peerDurableEpoch >= through {
            peerInconsistentThroughEpoch = nil
        }
        checkCopyDone(into: &actions)
        confirmPeerIfInSync(into: &actions)
        emitRelease(into: &actions)
        if draining && !drainedSent && isDrained {
            drainedSent = true
            actions.append(.drained)
        }
        checkStopped(into: &actions)
    }

    private func checkInvariants() {
        precondition(!primary.isBlocked, "the node fed ReplicationPrimary a request it could not admit")
        precondition(localWritesInFlight >= 0 && copyChunksOutstanding >= 0)
        precondition(!(copyReadInFlight && zeroing != nil), "a copy read while zeroes are admitted")
        precondition(primary.retainedBytes <= config.primary.bufferBytesMax)
        precondition(link == .up || !primary.isConnected, "the stream is up without a link")
    }

    // MARK: ReplicationPrimary

    /// Feeds the stream machine and carries its actions into the node's.
    mutating func drive(
        _ event: PrimaryEvent, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        primary.handle(event, nowNs: nowNs, into: &inner)
        var copyDone: WriteSequence = 0
        for index in inner.indices {
            switch inner[index] {
            case var .submitLocalWrite(write):
                let ticket = Int(write.request)
                if ticketOfSequence.isEmpty {
                    ticketOfSequence = Array(repeating: -1, count: config.primary.writesInFlightMax)
                }
                ticketOfSequence[slot(write.sequence)] = ticket
                write.request = tickets[ticket].request
                switch tickets[ticket].kind {
                case .write: write.source = .request(tickets[ticket].request)
                case .zeroes: write.source = .zeroes
                case .copyChunk:
                    write.source = .copyChunk
                    copyLastSequence = write.sequence
                    copyDone = write.sequence
                default: preconditionFailure("a local write for a \(tickets[ticket].kind) ticket")
                }
                if write.source != .copyChunk {
                    tickets[ticket].localPending += 1
                    localWritesInFlight += 1
                }
                actions.append(.writeLocal(write))
            case .submitLocalFlush:
                precondition(!localFlushInFlight)
                localFlushInFlight = true
                actions.append(.flushLocal)
            case let .send(message):
                actions.append(.send(message))
            case let .acknowledgeWrite(request):
                writeAcknowledged(Int(request), into: &actions)
            case let .acknowledgeFlush(request):
                let ticket = Int(request)
                precondition(tickets[ticket].kind == .flush)
                // After a disk failure no flush can promise durability.
                actions.append(.answer(tickets[ticket].request, errno: diskFailed ? PrimaryErrno.eio : 0))
                freeTicket(ticket)
            case .writesBlocked, .writesUnblocked:
                break  // the node never lets the stream machine's own queue fill
            case let .protocolViolation(reason):
                actions.append(.protocolViolation(reason))
            }
        }
        inner.removeAll(keepingCapacity: true)
        // Room freed by this event is released before anything admitted later reuses it:
        // the driver's store, carrying the actions out in order, holds what the node holds.
        emitRelease(into: &actions)
        // A copy chunk was read from this disk: it is complete locally at once.
        if copyDone != 0 { drive(.localWriteCompleted(sequence: copyDone), nowNs: nowNs, into: &actions) }
    }

    private mutating func emitRelease(into actions: inout [PrimaryNodeAction]) {
        let released = primary.oldestHeldSequence - 1
        guard released > releasedThrough else { return }
        releasedThrough = released
        actions.append(.release(throughSequence: released))
    }

    private func slot(_ sequence: WriteSequence) -> Int { Int(sequence % UInt64(config.primary.writesInFlightMax)) }

    private mutating func writeAcknowledged(_ ticket: Int, into actions: inout [PrimaryNodeAction]) {
        tickets[ticket].writesOutstanding -= 1
        precondition(tickets[ticket].writesOutstanding >= 0, "a write acknowledged twice")
        switch tickets[ticket].kind {
        case .write:
            actions.append(.answer(tickets[ticket].request, errno: tickets[ticket].failed ? PrimaryErrno.eio : 0))
            freeTicket(ticket)
        case .zeroes:
            guard tickets[ticket].issuedAll, tickets[ticket].writesOutstanding == 0 else { return }
            actions.append(.answer(tickets[ticket].request, errno: tickets[ticket].failed ? PrimaryErrno.eio : 0))
            freeTicket(ticket)
        case .copyChunk:
            copyChunksOutstanding -= 1
            freeTicket(ticket)
        default:
            preconditionFailure("a write acknowledgement for a \(tickets[ticket].kind) ticket")
        }
    }

    // MARK: Tickets

    mutating func allocateTicket(_ kind: Ticket.Kind, request: RequestID, start: UInt64, end: UInt64) -> Int {
        let ticket: Int
        if let free = freeTickets.popLast() {
            ticket = free
        } else {
            precondition(tickets.count < ticketsMax, "more tickets than admitted requests")
            ticket = tickets.count
            tickets.append(Ticket())
        }
        tickets[ticket] = Ticket(kind: kind, request: request, start: start, end: end)
        if kind == .write || kind == .zeroes || kind == .copyChunk {
            tickets[ticket].activePosition = active.count
            active.append(ticket)
        }
        return ticket
    }

    private mutating func freeTicket(_ ticket: Int) {
        let position = tickets[ticket].activePosition
        if position >= 0 {
            let last = active.removeLast()
            if position < active.count {
                active[position] = last
                tickets[last].activePosition = position
            }
        }
        tickets[ticket] = Ticket()
        freeTickets.append(ticket)
    }

    /// The overlap rule: a mutation that overlaps an admitted write not yet answered waits
    /// until that one is answered. NBD leaves the order of overlapping requests to the
    /// client, but two replicas may not choose differently: once the earlier is answered its
    /// epoch is closed, so the secondary applies the later one after it.
    private func overlapsUnanswered(start: UInt64, end: UInt64) -> Bool {
        for ticket in active where start < tickets[ticket].end && tickets[ticket].start < end {
            return true
        }
        return false
    }

    // MARK: Admission

    private mutating func receive(
        _ id: RequestID, _ request: ApplicationRequest, into actions: inout [PrimaryNodeAction]
    ) {
        if stopping || draining || diskFailed {
            // Planned failover: read-only from now on; a stopping node or a failed disk: EIO.
            let errno = stopping || diskFailed ? PrimaryErrno.eio : PrimaryErrno.erofs
            return actions.append(.answer(id, errno: errno))
        }
        switch request {
        case .trim:
            // Trimmed blocks may read back as anything; doing nothing on both nodes keeps
            // the replicas identical, which a local-only discard would not.
            return actions.append(.answer(id, errno: 0))
        case let .write(_, length, _):
            if length == 0 || UInt64(length) > config.primary.bufferBytesMax {
                return actions.append(.answer(id, errno: PrimaryErrno.eio))
            }
            invalidateCleanStop(into: &actions)
        case let .writeZeroes(_, length, _):
            if length == 0 { return actions.append(.answer(id, errno: 0)) }
            invalidateCleanStop(into: &actions)
        case .flush:
            break
        }
        guard !queue.isFull else { return actions.append(.answer(id, errno: PrimaryErrno.enomem)) }
        queue.append(Queued(request: id, kind: request))
    }

    private mutating func invalidateCleanStop(into actions: inout [PrimaryNodeAction]) {
        guard !cleanStopInvalidated else { return }
        cleanStopInvalidated = true
        actions.append(.invalidateCleanStop)
    }

    /// Admits queued requests in order while there is room, nothing overlaps and no copy
    /// read is due or in flight.
    private mutating func admitQueued(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        isBlocked = false
        while !stopping {
            if diskFailed {
                // The failed request and every later mutation (and flush) fail.
                if let zeroes = zeroing {
                    tickets[zeroes.ticket].failed = true
                    tickets[zeroes.ticket].issuedAll = true
                    zeroing = nil
                    if tickets[zeroes.ticket].writesOutstanding == 0 {
                        actions.append(.answer(tickets[zeroes.ticket].request, errno: PrimaryErrno.eio))
                        freeTicket(zeroes.ticket)
                    }
                }
                while !queue.isEmpty {
                    actions.append(.answer(queue.removeFirst().request, errno: PrimaryErrno.eio))
                }
                return
            }
            if copyReadInFlight || copyWaitingForQuiet { return }
            if zeroing != nil {
                guard admitZeroChunks(nowNs: nowNs, into: &actions) else { return }
                continue
            }
            guard let head = queue.first else { return }
            switch head.kind {
            case .flush:
                guard primary.canAdmitFlush else { isBlocked = true; return }
                queue.removeFirst()
                let ticket = allocateTicket(.flush, request: head.request, start: 0, end: 0)
                drive(.flushSubmitted(request: RequestID(ticket)), nowNs: nowNs, into: &actions)
            case let .write(offset, length, fua):
                if overlapsUnanswered(start: offset, end: offset + UInt64(length)) { return }
                guard primary.canAdmitWrite(lengthBytes: length) else { isBlocked = true; return }
                queue.removeFirst()
                let ticket = allocateTicket(.write, request: head.request, start: offset, end: offset + UInt64(length))
                tickets[ticket].writesOutstanding = 1
                drive(.writeSubmitted(request: RequestID(ticket), offsetBytes: offset, lengthBytes: length, fua: fua),
                      nowNs: nowNs, into: &actions)
            case let .writeZeroes(offset, length, fua):
                if overlapsUnanswered(start: offset, end: offset + length) { return }
                guard primary.canAdmitWrite(lengthBytes: UInt32(min(UInt64(config.chunkBytes), length))) else {
                    isBlocked = true
                    return
                }
                queue.removeFirst()
                let ticket = allocateTicket(.zeroes, request: head.request, start: offset, end: offset + length)
                zeroing = Zeroing(ticket: ticket, cursor: offset, end: offset + length, fua: fua)
            case .trim:
                preconditionFailure("TRIM is answered on arrival")
            }
        }
    }

    /// Admits the zero chunks of the WRITE_ZEROES in progress while there is room; true
    /// when every chunk is admitted.
    private mutating func admitZeroChunks(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) -> Bool {
        guard var zeroes = zeroing else { return true }
        while zeroes.cursor < zeroes.end {
            let length = UInt32(min(UInt64(config.chunkBytes), zeroes.end - zeroes.cursor))
            guard primary.canAdmitWrite(lengthBytes: length) else {
                zeroing = zeroes
                isBlocked = true
                return false
            }
            let offset = zeroes.cursor
            zeroes.cursor += UInt64(length)
            let last = zeroes.cursor == zeroes.end
            tickets[zeroes.ticket].writesOutstanding += 1
            if last { tickets[zeroes.ticket].issuedAll = true }
            zeroing = last ? nil : zeroes
            drive(.writeSubmitted(request: RequestID(zeroes.ticket), offsetBytes: offset, lengthBytes: length,
                                  fua: zeroes.fua), nowNs: nowNs, into: &actions)
        }
        return true
    }

    // MARK: Local results

    private mutating func localWriteDone(
        _ sequence: WriteSequence, errno: Int32, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        precondition(!ticketOfSequence.isEmpty, "a local write result before any local write")
        let ticket = ticketOfSequence[slot(sequence)]
        precondition(ticket >= 0 && tickets[ticket].localPending > 0, "a local write result for \(sequence)")
        tickets[ticket].localPending -= 1
        localWritesInFlight -= 1
        if errno != 0 {
            tickets[ticket].failed = true
            failDisk("write", errno, into: &actions)
        }
        drive(.localWriteCompleted(sequence: sequence), nowNs: nowNs, into: &actions)
    }

    mutating func failDisk(_ operation: String, _ errno: Int32, into actions: inout [PrimaryNodeAction]) {
        guard !diskFailed else { return }
        diskFailed = true
        actions.append(.notice(.diskFailed(operation: operation, errno: errno)))
    }

    // MARK: Stop

    private mutating func recordStop(into actions: inout [PrimaryNodeAction]) {
        guard !stopRecorded else { return }
        stopRecorded = true
        actions.append(.recordStop(cleanStop: cleanStopValue))
    }

    private mutating func hangUp(_ reason: String, into actions: inout [PrimaryNodeAction]) {
        switch link {
        case .idle: break
        case .dialing:
            // A dial being resolved is dropped when it answers; a link being opened closes.
            link = .idle
            actions.append(.closeLink(reason))
        case .up: actions.append(.closeLink(reason))
        }
    }

    /// Once the link is gone and no local I/O runs, the local disk is flushed (always: a
    /// node that stops serving as primary — disabled, demoted, shut down — leaves every
    /// write it answered durable, whatever its disk cache held). Then a write whose local I/O
    /// completed is on this node's disk and is answered as such, a FLUSH is answered if that
    /// flush succeeded; anything else fails.
    private mutating func checkStopped(into actions: inout [PrimaryNodeAction]) {
        guard stopping, !stopped, link == .idle, localWritesInFlight == 0, !localFlushInFlight, !copyReadInFlight
        else { return }
        if stopFlushErrno == nil && !diskFailed {
            stopFlushInFlight = true
            localFlushInFlight = true
            return actions.append(.flushLocal)
        }
        let flushed = stopFlushErrno == 0 && !diskFailed
        for index in tickets.indices {
            let ticket = tickets[index]
            let errno: Int32
            switch ticket.kind {
            case .free, .copyChunk: continue
            case .write, .zeroes:
                let local = ticket.issuedAll || ticket.kind == .write
                errno = local && ticket.localPending == 0 && !ticket.failed && zeroing?.ticket != index ? 0 : PrimaryErrno.eio
            case .flush:
                errno = flushed ? 0 : PrimaryErrno.eio
            }
            actions.append(.answer(ticket.request, errno: errno))
        }
        while !queue.isEmpty { actions.append(.answer(queue.removeFirst().request, errno: PrimaryErrno.eio)) }
        zeroing = nil
        stopped = true
        actions.append(.stopped)
    }

    // MARK: Link

    private mutating func setConnectionState(_ state: ConnectionState, into actions: inout [PrimaryNodeAction]) {
        guard state != connectionState else { return }
        connectionState = state
        actions.append(.notice(.connectionState(state)))
    }

    private mutating func dialIfDue(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard enabled, !stopping, config.hasPeer, link == .idle, nowNs >= nextDialNs else { return }
        nextDialNs = nowNs + backoffNs
        backoffNs = min(backoffNs * 2, config.backoffMaxNs)
        link = .dialing
        setConnectionState(.connecting, into: &actions)
        actions.append(.dial)
    }

    private mutating func linkUp(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        precondition(link != .up, "link up twice")
        link = .up
        guard enabled, !stopping else {
            return actions.append(.closeLink(stopping ? "resource stopping" : "disabled by the operator"))
        }
        // After a loss the next tick redials at once, then backs off from 250 ms again.
        backoffNs = config.backoffInitialNs
        nextDialNs = 0
        confirmedOnLink = nil
        setConnectionState(.connected, into: &actions)
        drive(.connectionUp, nowNs: nowNs, into: &actions)
    }

    private mutating func linkDown(
        _ reason: String, refusal: WireRefusal?, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        link = .idle
        if primary.isConnected { drive(.connectionDown, nowNs: nowNs, into: &actions) }
        if refusal == .unrelatedData && basis != .fullCopy {
            startFullCopy(because: reason, into: &actions)
        }
        if refusal == .diskFailed { actions.append(.notice(.peerDiskFailed(reason))) }
        setConnectionState(enabled && !stopping ? .connecting : .standAlone, into: &actions)
    }

    /// The peer cannot continue from this session's basis: copy the whole volume.
    private mutating func startFullCopy(because reason: String, into actions: inout [PrimaryNodeAction]) {
        basis = .fullCopy
        copyWanted = true
        copyCursor = 0
        invalidateCleanStop(into: &actions)
        actions.append(.notice(.fullCopyStarted(reason: reason)))
    }

    private mutating func peerMessage(
        _ message: SecondaryMessage, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        // A message read before the link was dropped (e.g. after a violation) is stale.
        guard link == .up, primary.isConnected else { return }
        drive(.peerMessage(message), nowNs: nowNs, into: &actions)
        guard case let .hello(_, copy) = message, primary.isPeerReady else { return }
        peerHeard = true
        // A peer that says it is inconsistent (it restarted after a crash) holds an epoch
        // prefix only once the writes re-sent now are durable there.
        let resent = primary.newestHeldEpoch
        if copy == .inconsistent || copy == .failed, resent > primary.peerDurableEpoch {
            peerInconsistentThroughEpoch = max(peerInconsistentThroughEpoch ?? 0, resent)
        }
    }

    /// Tells the peer it holds every acknowledged write (SyncComplete), whenever that
    /// becomes true: in sync mode once per link (writes are acknowledged only after the peer
    /// applied them), in async mode each time the lag returns to 0 after new writes.
    private mutating func confirmPeerIfInSync(into actions: inout [PrimaryNodeAction]) {
        guard isPeerReady, !copyWanted else { return }
        let sync = config.primary.mode == .sync
        guard sync || primary.lagBytes == 0 else { return }
        // Async: only through the acknowledged prefix. A write admitted but not yet
        // acknowledged may be acknowledged before the peer applied it, so the peer's UpToDate
        // must not cover it; once it arrives there the peer is Consistent until the next
        // SyncComplete. Sync: every write is acknowledged only after the peer applied it.
        let through = sync ? primary.lastSequence : primary.acknowledgedThroughSequence
        if confirmedOnLink == nil || (!sync && confirmedOnLink != through) {
            confirmedOnLink = through
            actions.append(.sendSyncComplete(throughSequence: through))
        }
    }
}
