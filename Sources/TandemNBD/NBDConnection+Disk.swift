// NBDConnection+Disk: a request's trip to storage and back. Submits reads, writes, flushes,
// fallocates and fadvise to the ring (or hands a replicated export's mutations to its write
// sink), retries short and interrupted transfers, adds the flush a FUA write needs where
// RWF_DSYNC is not trusted, and reports disk errors to the export. Loop thread only.
import CShims
import CURing
import Glibc
import TandemCore
import TandemIO

extension NBDConnection {
    /// Called by the backend once the request may touch the disk.
    func issue(_ request: NBDRequest) {
        guard isOpen else {
            backend.finished(request)
            release(request)
            return
        }
        if backend.trace.enabled { backend.traceHop(request, .admit) }
        if backend.refusesMutations && backend.sink == nil && (request.isMutation || request.command == .flush) {
            request.phase = .disk
            return finishDisk(request, error: NBD.Errno.eio)
        }
        if backend.sink != nil && (request.isMutation || request.command == .flush) {
            if request.command == .write && request.isReadModifyWrite {
                readEdges(request)
            } else {
                handToSink(request)
            }
            return
        }
        switch request.command {
        case .read:
            if let router = backend.readRouter {
                request.phase = .disk
                if router.route(NBDPendingRead(request: request, diskOffset: request.diskOffset,
                                               diskLength: request.diskLength, buffer: request.buffer!.pointer)) {
                    operationsInFlight += 1  // the router's answer counts as an operation in flight
                    return
                }
                request.readCountedLocal = true
            }
            submitData(request, write: false)
        case .write:
            if request.isReadModifyWrite { readEdges(request) } else { submitData(request, write: true) }
        case .flush:
            request.phase = .disk
            loop.prepareFlush(volume: backend.volume, handler: handlerID, tag: tag(.disk, request))
            operationsInFlight += 1
        case .trim, .writeZeroes: submitFallocate(request)
        case .cache:
            request.phase = .disk
            loop.prepareFadvise(volume: backend.volume, offset: request.header.offset, length: request.header.length,
                                handler: handlerID, tag: tag(.cache, request))
            operationsInFlight += 1
        case .disconnect, .blockStatus, .resize:
            preconditionFailure("command \(request.command) never reaches the disk")
        }
    }

    func submitData(_ request: NBDRequest, write: Bool) {
        request.phase = .disk
        let done = request.diskDone
        if write && done == 0 { request.diskStartNs = MonotonicClock.nowNs() }
        loop.prepareVolumeIO(
            write: write, volume: backend.volume, buffer: request.buffer!.pointer + done,
            length: request.diskLength - done, offset: request.diskOffset + UInt64(done),
            dsync: write && request.header.flags & NBD.CommandFlag.fua != 0 && backend.volume.honoursDSyncWrites,
            handler: handlerID, tag: tag(.disk, request))
        operationsInFlight += 1
    }

    private func submitFallocate(_ request: NBDRequest) {
        request.phase = .disk
        let mode: Int32
        if request.command == .writeZeroes && request.header.flags & NBD.CommandFlag.noHole != 0 {
            mode = tandem_FALLOC_FL_ZERO_RANGE | tandem_FALLOC_FL_KEEP_SIZE
        } else {
            mode = tandem_FALLOC_FL_PUNCH_HOLE | tandem_FALLOC_FL_KEEP_SIZE
        }
        loop.prepareFallocate(volume: backend.volume, mode: mode, offset: request.header.offset,
                              length: UInt64(request.header.length), handler: handlerID, tag: tag(.disk, request))
        operationsInFlight += 1
    }

    func handToSink(_ request: NBDRequest) {
        guard let sink = backend.sink else { preconditionFailure("handToSink without a sink") }
        request.phase = .disk
        let kind: NBDPendingMutation.Kind
        switch request.command {
        case .write: kind = .write
        case .flush: kind = .flush
        case .trim: kind = .trim
        case .writeZeroes: kind = .writeZeroes
        default: preconditionFailure("command \(request.command) is not a mutation")
        }
        let isWrite = kind == .write
        operationsInFlight += 1  // the sink's answer counts as an operation in flight
        sink.submit(NBDPendingMutation(
            request: request, kind: kind,
            diskOffset: isWrite ? request.diskOffset : request.header.offset,
            diskLength: isWrite ? request.diskLength : Int(request.header.length),
            buffer: isWrite ? request.buffer!.pointer : nil,
            fua: request.header.flags & NBD.CommandFlag.fua != 0,
            noHole: request.header.flags & NBD.CommandFlag.noHole != 0))
    }

    /// A local read failed (and was reported: the disk is failed now): the read router may
    /// serve it from the peer instead of answering the error (the diskless primary).
    private func retryThroughRouter(_ request: NBDRequest) -> Bool {
        guard request.command == .read, request.readCountedLocal, let router = backend.readRouter else { return false }
        request.readCountedLocal = false
        router.localReadEnded()
        request.diskDone = 0
        if router.route(NBDPendingRead(request: request, diskOffset: request.diskOffset, diskLength: request.diskLength,
                                       buffer: request.buffer!.pointer)) {
            operationsInFlight += 1
            return true
        }
        request.readCountedLocal = true
        return false
    }

    /// The read router's answer for a read it took.
    func routedReadEnded(_ request: NBDRequest, outcome: NBDRoutedReadOutcome) {
        operationsInFlight -= 1
        switch outcome {
        case .served:
            request.diskDone = request.diskLength
            if backend.trace.enabled { backend.traceHop(request, .local) }
            finishDisk(request, error: 0)
        case .readLocally:
            request.readCountedLocal = true
            guard isOpen else {
                finishDisk(request, error: NBD.Errno.eio)
                break
            }
            submitData(request, write: false)
        case .failed(let errno):
            finishDisk(request, error: NBD.Errno.wire(errno))
        }
        finishCloseIfIdle()
    }

    /// The sink's answer for a mutation handed to it.
    func sinkFinished(_ request: NBDRequest, errno: Int32) {
        operationsInFlight -= 1
        finishDisk(request, error: errno == 0 ? 0 : NBD.Errno.wire(errno))
        finishCloseIfIdle()
    }

    func diskCompleted(_ request: NBDRequest, _ result: Int32) {
        if result == -EINTR || result == -EAGAIN {
            reissue(request)
            return
        }
        if result < 0 {
            if request.command == .trim && (result == -EOPNOTSUPP || result == -EINVAL) {
                finishDisk(request, error: 0)  // TRIM is advisory
            } else {
                reportDiskError(request, -result)
                if retryThroughRouter(request) { return }
                finishDisk(request, error: NBD.Errno.wire(-result))
            }
            return
        }
        if request.command == .read || request.command == .write {
            request.diskDone += Int(result)
            if result == 0 {
                reportDiskError(request, EIO)
                finishDisk(request, error: NBD.Errno.eio)  // unexpected end of volume
            } else if request.diskDone < request.diskLength {
                submitData(request, write: request.command == .write)  // short transfer
            } else if request.command == .read || backend.volume.honoursDSyncWrites
                || request.header.flags & NBD.CommandFlag.fua == 0 {
                if request.command == .write { backend.localWriteLatency.record(since: request.diskStartNs) }
                if backend.trace.enabled { backend.traceHop(request, .local) }
                finishDisk(request, error: 0)
            } else {
                // FUA on a volume whose RWF_DSYNC writes are not trusted: flush after the write.
                request.phase = .flushing
                loop.prepareFlush(volume: backend.volume, handler: handlerID, tag: tag(.flushAfter, request))
                operationsInFlight += 1
            }
            return
        }
        if (request.command == .trim || request.command == .writeZeroes)
            && request.header.flags & NBD.CommandFlag.fua != 0 {
            request.phase = .flushing
            loop.prepareFlush(volume: backend.volume, handler: handlerID, tag: tag(.flushAfter, request))
            operationsInFlight += 1
            return
        }
        finishDisk(request, error: 0)
    }

    private func reissue(_ request: NBDRequest) {
        switch request.command {
        case .read: submitData(request, write: false)
        case .write: submitData(request, write: true)
        default: issue(request)
        }
    }

    func flushAfterCompleted(_ request: NBDRequest, _ result: Int32) {
        if result == -EINTR || result == -EAGAIN {
            request.phase = .flushing
            loop.prepareFlush(volume: backend.volume, handler: handlerID, tag: tag(.flushAfter, request))
            operationsInFlight += 1
            return
        }
        if result < 0 { backend.onDiskError?("flush", -result) }
        finishDisk(request, error: result < 0 ? NBD.Errno.wire(-result) : 0)
    }

    /// A failed disk result is the resource's business too; a zeroing method the file
    /// system lacks (EOPNOTSUPP) and a failed cache hint are not disk failures.
    private func reportDiskError(_ request: NBDRequest, _ errno: Int32) {
        let operation: String
        switch request.command {
        case .read: operation = "read"
        case .write: operation = "write"
        case .flush: operation = "flush"
        case .trim, .writeZeroes:
            guard errno != EOPNOTSUPP && errno != EINVAL else { return }
            operation = request.command == .trim ? "trim" : "write-zeroes"
        default: return
        }
        backend.onDiskError?(operation, errno)
    }

    private func finishDisk(_ request: NBDRequest, error: UInt32) {
        if request.readCountedLocal {
            request.readCountedLocal = false
            backend.readRouter?.localReadEnded()
        }
        backend.finished(request)
        if !isOpen {
            release(request)
        } else {
            complete(request, error: error)
        }
    }
}
