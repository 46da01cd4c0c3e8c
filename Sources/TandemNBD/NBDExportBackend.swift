// NBDExportBackend: one exported volume and what its connections share: the list of
// mutations in flight, so that a read-modify-write never interleaves with an overlapping
// write (from any connection); and the export description. On a replicated export the
// order of overlapping writes is the replication core's business (PrimaryNode's overlap
// rule). Loop thread only.
import Logging
import TandemCore
import TandemIO

public final class NBDExportBackend: TurnEndHandler {
    public let name: String
    public let volume: Volume
    public let loop: EventLoop
    public let buffers: DataBuffers
    public var readOnly: Bool
    /// When set, writes, flushes, trims and zeroes go to the sink instead of the volume. A
    /// strong reference (a weak one costs a side-table lookup per write): the owner sets it
    /// when replication starts and clears it when replication stops.
    public var sink: NBDWriteSink?
    public let maxRequestBytes: UInt32
    /// Told of every failed disk result of the export's own I/O (operation, errno); the
    /// owner decides what a failure means for the resource.
    public var onDiskError: ((String, Int32) -> Void)?
    /// The disk has failed and no sink decides for it (a standalone resource, or a primary
    /// whose replication is stopped): writes, flushes, trims and zeroes are answered with EIO
    /// without touching the disk. With a sink the primary's node decides (PrimaryNode), once.
    /// Reads still go to the disk (or the read router) and report its own errors.
    public var refusesMutations = false
    /// When set, reads are offered to it first (a primary's read balancing, the reads of a
    /// failed disk); it is set and cleared with the sink.
    public var readRouter: NBDReadRouter?
    /// Told of every mutation (offset, length in bytes) before it goes to the volume without
    /// a sink: the owner tracks what replication will have to catch up. It answers true when
    /// the mutation must wait for a record the owner writes first (a write-ahead record, once
    /// for all the turn's such mutations): it is then held until `releaseRecordHeld()`.
    public var onUnreplicatedMutation: ((UInt64, UInt64) -> Bool)?
    /// Mutations held for the owner's record (`onUnreplicatedMutation` answered true), in
    /// admission order; each counts as an operation in flight of its connection meanwhile.
    private var recordHeld: [NBDRequest] = []
    private var recordReleasing: [NBDRequest] = []
    let logger: Logger
    /// The mutations on the disk (or with the sink), dense: the conflict scan reads one
    /// contiguous array. A request knows its index (`activeIndex`); removal moves the last
    /// entry into the hole. Grows with the number of requests in flight, then stays.
    private var active: [ActiveMutation] = []
    private var waitingHead: NBDRequest?
    private var waitingTail: NBDRequest?
    /// Read-modify-writes active or waiting: only then do writes of an unreplicated export
    /// need a conflict scan.
    private var readModifyWrites = 0
    /// Waiters are released at the end of the loop turn (see `finished`).
    private var releaseScheduled = false
    var connections: [ObjectIdentifier: NBDConnection] = [:]
    public private(set) var stats = NBDStats()
    /// Writes this export puts on the volume itself (no sink): submit to local completion.
    /// Shared with the resource's replicator, which counts the writes it submits.
    public let localWriteLatency: LatencyHistogram
    /// The resource's request trace (off unless enabled); shared with its replicators.
    public let trace: RequestTrace

    public init(name: String, volume: Volume, loop: EventLoop, buffers: DataBuffers, readOnly: Bool,
                maxRequestBytes: UInt32, localWriteLatency: LatencyHistogram = LatencyHistogram(),
                trace: RequestTrace = RequestTrace(), logger: Logger) {
        self.name = name
        self.trace = trace
        self.localWriteLatency = localWriteLatency
        self.volume = volume
        self.loop = loop
        self.buffers = buffers
        self.readOnly = readOnly
        self.maxRequestBytes = maxRequestBytes
        self.logger = logger
        active.reserveCapacity(256)
    }

    public var connectionCount: Int { connections.count }

    public var export: NBDExport {
        var flags = NBD.TransmissionFlag.hasFlags | NBD.TransmissionFlag.sendFlush | NBD.TransmissionFlag.sendFUA
            | NBD.TransmissionFlag.sendTrim | NBD.TransmissionFlag.sendWriteZeroes
            | NBD.TransmissionFlag.canMultiConn | NBD.TransmissionFlag.sendCache
        if readOnly { flags |= NBD.TransmissionFlag.readOnly }
        return NBDExport(name: name, description: "tandem resource \(name)", sizeBytes: volume.sizeBytes,
                         transmissionFlags: flags, minimumBlockBytes: 1, preferredBlockBytes: 4096,
                         maximumBlockBytes: maxRequestBytes)
    }

    /// Starts `request` now, or queues it behind a conflicting mutation.
    func admit(_ request: NBDRequest) {
        if trace.enabled { traceHop(request, .receive) }
        if request.isReadModifyWrite { readModifyWrites += 1 }
        if mustWait(request) {
            request.phase = .waiting
            if let tail = waitingTail { tail.nextWaiting = request } else { waitingHead = request }
            waitingTail = request
            return
        }
        start(request)
    }

    /// Called when a mutation's disk work is over (done, failed or abandoned); with a sink,
    /// when the sink has answered it.
    func finished(_ request: NBDRequest) {
        guard request.activeIndex >= 0 else { return }
        unlinkActive(request)
        if request.isReadModifyWrite { readModifyWrites -= 1 }
        scheduleRelease()
    }

    /// Waiters start at the end of the turn, never from inside `finished`: with a sink,
    /// `finished` runs inside the sink's answer, and starting a waiter there would hand the
    /// sink a new mutation while it is still carrying out its previous batch. The turn's end
    /// comes before the next submission, so the waiter's I/O leaves no later.
    private func scheduleRelease() {
        guard waitingHead != nil, !releaseScheduled else { return }
        releaseScheduled = true
        loop.atTurnEnd(self)
    }

    public func turnEnded() {
        releaseScheduled = false
        releaseWaiters()
    }

    /// Removes a request that never started (its connection is closing).
    func abandon(_ request: NBDRequest) {
        var previous: NBDRequest? = nil
        var cursor = waitingHead
        while let current = cursor {
            if current === request {
                if let previous { previous.nextWaiting = current.nextWaiting } else { waitingHead = current.nextWaiting }
                if waitingTail === current { waitingTail = previous }
                current.nextWaiting = nil
                if current.isReadModifyWrite { readModifyWrites -= 1 }
                scheduleRelease()
                return
            }
            previous = current
            cursor = current.nextWaiting
        }
    }

    /// Records the phase from the request's last hop (the receive for `.receive`) to now,
    /// which becomes its last hop. Only while the trace is enabled.
    func traceHop(_ request: NBDRequest, _ phase: TracePhase) {
        let now = loop.traceStamp()
        if let operation = request.traceOperation {
            trace.record(operation, phase, from: phase == .receive ? request.traceStart : request.traceHop, to: now)
        }
        request.traceHop = now
    }

    func record(_ request: NBDRequest) {
        switch request.command {
        case .read: stats.readRequests += 1; stats.readBytes += UInt64(request.header.length)
        case .write: stats.writeRequests += 1; stats.writeBytes += UInt64(request.header.length)
        case .flush: stats.flushRequests += 1
        default: stats.otherRequests += 1
        }
        if request.error != 0 { stats.errors += 1 }
    }

    /// A read, write, flush or fallocate on the volume failed (counted once per failure).
    private func start(_ request: NBDRequest) {
        var held = false
        if request.isMutation, sink == nil, request.lockEnd > request.lockStart, let track = onUnreplicatedMutation {
            held = track(request.lockStart, request.lockEnd - request.lockStart)
        }
        if request.isMutation {
            request.activeIndex = active.count
            active.append(ActiveMutation(start: request.lockStart, end: request.lockEnd,
                                         isReadModifyWrite: request.isReadModifyWrite, request: request))
        }
        guard held else { return request.connection.issue(request) }
        // Its connection does not finish closing under it: the release issues it (or, closed,
        // ends it) and then lets the close go on.
        request.connection.operationsInFlight += 1
        recordHeld.append(request)
    }

    /// The owner's record is durable (or given up, said by the owner): the held mutations go
    /// to the disk in admission order. Loop thread only.
    public func releaseRecordHeld() {
        guard !recordHeld.isEmpty else { return }
        swap(&recordHeld, &recordReleasing)  // both keep their capacity: no allocation per turn
        for request in recordReleasing {
            let connection = request.connection
            connection.operationsInFlight -= 1
            connection.issue(request)
            connection.finishCloseIfIdle()
        }
        recordReleasing.removeAll(keepingCapacity: true)
    }

    private func unlinkActive(_ request: NBDRequest) {
        let index = request.activeIndex
        let last = active.removeLast()
        if index < active.count {
            active[index] = last
            last.request.activeIndex = index
        }
        request.activeIndex = -1
    }

    /// A mutation waits when it overlaps an active or earlier-waiting mutation and one of the
    /// two is a read-modify-write (its merged blocks must not interleave with another
    /// write). Plain writes may run concurrently here: on a replicated export the sink
    /// orders overlapping writes itself (PrimaryNode's overlap rule, docs/replication.md
    /// *Overlapping writes*). The scan runs only while a read-modify-write is active or
    /// waiting: a pass over a dense array of ranges (no reference counting, about a
    /// nanosecond an entry), then over the waiting list, usually empty.
    private func mustWait(_ request: NBDRequest) -> Bool {
        guard request.isMutation, !active.isEmpty || waitingHead != nil else { return false }
        guard readModifyWrites > 0 else { return false }
        return conflicts(request, waitingBefore: nil)
    }

    private func releaseWaiters() {
        var previous: NBDRequest? = nil
        var cursor = waitingHead
        while let current = cursor {
            let next = current.nextWaiting
            if !conflicts(current, waitingBefore: current) {
                if let previous { previous.nextWaiting = next } else { waitingHead = next }
                if waitingTail === current { waitingTail = previous }
                current.nextWaiting = nil
                start(current)
            } else {
                previous = current
            }
            cursor = next
        }
    }

    private func conflicts(_ request: NBDRequest, waitingBefore stopAt: NBDRequest?) -> Bool {
        let everyOverlap = request.isReadModifyWrite
        let start = request.lockStart
        let end = request.lockEnd
        let activeConflict = active.withUnsafeBufferPointer { entries in
            for entry in entries where start < entry.end && entry.start < end && (everyOverlap || entry.isReadModifyWrite) {
                return true
            }
            return false
        }
        if activeConflict { return true }
        var cursor = waitingHead
        while let other = cursor, other !== stopAt {
            if start < other.lockEnd && other.lockStart < end && (everyOverlap || other.isReadModifyWrite) { return true }
            cursor = other.nextWaiting
        }
        return false
    }
}

/// An entry of the export's active list: the range a mutation holds and its request.
struct ActiveMutation {
    var start: UInt64
    var end: UInt64
    var isReadModifyWrite: Bool
    /// The request outlives its entry: it stays in its connection's slots while active.
    unowned(unsafe) var request: NBDRequest
}

public struct NBDStats: Sendable {
    public var readRequests: UInt64 = 0
    public var readBytes: UInt64 = 0
    public var writeRequests: UInt64 = 0
    public var writeBytes: UInt64 = 0
    public var flushRequests: UInt64 = 0
    public var otherRequests: UInt64 = 0
    public var errors: UInt64 = 0
}
