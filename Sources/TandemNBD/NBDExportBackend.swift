// NBDExportBackend: one exported volume and what its connections share: the list of
// mutations in flight, so that a read-modify-write never interleaves with an overlapping
// write (from any connection), and the export description. Loop thread only.
import Logging
import TandemCore
import TandemIO

public final class NBDExportBackend {
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
    /// The disk has failed: writes, flushes, trims and zeroes are answered with EIO without
    /// touching it (or the sink). Reads still go to the disk and report its own errors.
    public var refusesMutations = false
    let logger: Logger
    private var activeHead: NBDRequest?
    private var waitingHead: NBDRequest?
    private var waitingTail: NBDRequest?
    /// Read-modify-writes active or waiting: only then do writes need a conflict scan.
    private var readModifyWrites = 0
    var connections: [ObjectIdentifier: NBDConnection] = [:]
    public private(set) var stats = NBDStats()
    /// Writes this export puts on the volume itself (no sink): submit to local completion.
    /// Shared with the resource's replicator, which counts the writes it submits.
    public let localWriteLatency: LatencyHistogram

    public init(name: String, volume: Volume, loop: EventLoop, buffers: DataBuffers, readOnly: Bool,
                maxRequestBytes: UInt32, localWriteLatency: LatencyHistogram = LatencyHistogram(), logger: Logger) {
        self.name = name
        self.localWriteLatency = localWriteLatency
        self.volume = volume
        self.loop = loop
        self.buffers = buffers
        self.readOnly = readOnly
        self.maxRequestBytes = maxRequestBytes
        self.logger = logger
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

    /// Starts `request` now, or queues it behind a conflicting read-modify-write.
    func admit(_ request: NBDRequest) {
        if request.isReadModifyWrite { readModifyWrites += 1 }
        if mustWait(request) {
            request.phase = .waiting
            if let tail = waitingTail { tail.nextWaiting = request } else { waitingHead = request }
            waitingTail = request
            return
        }
        start(request)
    }

    /// Called when a mutation's disk work is over (done, failed or abandoned).
    func finished(_ request: NBDRequest) {
        guard request.isActiveMutation else { return }
        unlinkActive(request)
        if request.isReadModifyWrite { readModifyWrites -= 1 }
        if waitingHead != nil { releaseWaiters() }
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
                releaseWaiters()
                return
            }
            previous = current
            cursor = current.nextWaiting
        }
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
        if request.isMutation {
            request.isActiveMutation = true
            request.nextActive = activeHead
            request.previousActive = nil
            activeHead?.previousActive = request
            activeHead = request
        }
        request.connection.issue(request)
    }

    private func unlinkActive(_ request: NBDRequest) {
        if let previous = request.previousActive { previous.nextActive = request.nextActive } else { activeHead = request.nextActive }
        request.nextActive?.previousActive = request.previousActive
        request.nextActive = nil
        request.previousActive = nil
        request.isActiveMutation = false
    }

    /// A mutation waits when it overlaps an active or earlier-waiting mutation and one of
    /// the two is a read-modify-write. Plain overlapping writes may run concurrently: NBD
    /// leaves their order to the client.
    private func mustWait(_ request: NBDRequest) -> Bool {
        request.isMutation && readModifyWrites > 0 && conflicts(request, waitingBefore: nil)
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
        var cursor = activeHead
        while let other = cursor {
            if (request.isReadModifyWrite || other.isReadModifyWrite) && request.overlaps(other) { return true }
            cursor = other.nextActive
        }
        cursor = waitingHead
        while let other = cursor, other !== stopAt {
            if (request.isReadModifyWrite || other.isReadModifyWrite) && request.overlaps(other) { return true }
            cursor = other.nextWaiting
        }
        return false
    }
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
