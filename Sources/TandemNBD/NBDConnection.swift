// NBDConnection: one client socket, from handshake to close. Receives into a staging
// buffer; write payloads beyond what the staging read already holds go straight into the
// request's (registered) buffer. Replies are gathered into one sendmsg per loop turn.
// Loop thread only; every operation it submits is tagged with its handler id.
import CShims
import CURing
import Glibc
import Logging
import TandemCore
import TandemIO

public final class NBDConnection: IOHandler, BufferWaiter, TurnEndHandler {
    enum Kind: UInt32 {
        case receive = 1, send, disk, edgeHead, edgeTail, flushAfter, cache
    }

    enum State { case handshake, transmission, closing, closed }

    let fd: Int32
    let backend: NBDExportBackend
    let loop: EventLoop
    let logger: Logger
    private(set) var handlerID: UInt32 = 0
    private var state = State.handshake
    private var handshake: NBDHandshake
    private var handshakeOutput: [UInt8] = []
    private var structuredReplies = false

    private let staging: UnsafeMutableRawBufferPointer
    private var stagingStart = 0
    private var stagingEnd = 0
    private static let stagingBytes = 64 << 10

    private var requests: [NBDRequest] = []
    private var freeSlots: [UInt16] = []
    private let replyHeaders: UnsafeMutableRawBufferPointer
    private var replyHead: NBDRequest?
    private var replyTail: NBDRequest?
    private let iovecs: UnsafeMutablePointer<iovec>
    private let iovecCapacity: Int
    private var message = msghdr()
    private var sendBatch: [NBDRequest] = []
    private var sendIovecFirst = 0
    private var sendIovecCount = 0

    private var receiving = false
    private var sending = false
    private var operationsInFlight = 0
    /// The request whose write payload is being received, if any.
    private var payloadRequest: NBDRequest?
    /// Bytes of an unusable write payload still to be read and dropped.
    private var discardBytes = 0
    private var waitingForBuffers = false
    /// Replies completed in this loop turn leave together in one sendmsg at its end.
    private var replyFlushScheduled = false
    private var disconnectRequested = false
    private var closeReason: String?
    var onClosed: ((NBDConnection) -> Void)?
    weak var listener: NBDListener?

    init(fd: Int32, backend: NBDExportBackend, maxRequests: Int, logger: Logger) {
        self.fd = fd
        self.backend = backend
        self.loop = backend.loop
        self.logger = logger
        handshake = NBDHandshake(export: backend.export)
        staging = .allocate(byteCount: Self.stagingBytes, alignment: 64)
        replyHeaders = .allocate(byteCount: maxRequests * 32, alignment: 8)
        iovecCapacity = maxRequests * 2
        iovecs = .allocate(capacity: iovecCapacity)
        sendBatch.reserveCapacity(maxRequests)
        requests.reserveCapacity(maxRequests)
        for index in 0..<maxRequests {
            let header = UnsafeMutableRawBufferPointer(rebasing: replyHeaders[(index * 32)..<(index * 32 + 32)])
            requests.append(NBDRequest(connection: self, index: UInt16(index), replyHeader: header))
        }
        freeSlots = (0..<UInt16(maxRequests)).reversed()
    }

    deinit {
        staging.deallocate()
        replyHeaders.deallocate()
        iovecs.deallocate()
    }

    func start() {
        handlerID = loop.register(self)
        handshakeOutput = NBDHandshake.greeting()
        sendHandshakeOutput()
        armReceive()
    }

    /// Ends the connection: stops reading, lets in-flight disk work finish, frees everything.
    func close(_ reason: String) {
        guard isOpen else { return }
        if closeReason == nil { closeReason = reason }
        state = .closing
        logger.debug("closing NBD connection", metadata: ["reason": "\(reason)"])
        shutdown(fd, Int32(SHUT_RDWR))
        if waitingForBuffers { backend.buffers.cancelWait(self); waitingForBuffers = false }
        for request in requests where request.phase == .waiting {
            backend.abandon(request)
            release(request)
        }
        if let request = payloadRequest { release(request); payloadRequest = nil }
        finishCloseIfIdle()
    }

    private func finishCloseIfIdle() {
        guard state == .closing, operationsInFlight == 0 else { return }
        state = .closed
        for request in requests where request.phase != .free { release(request) }
        loop.unregister(handlerID)
        Glibc.close(fd)
        onClosed?(self)
        onClosed = nil
    }

    // MARK: completions

    public func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        operationsInFlight -= 1
        let kind = Kind(rawValue: tag >> 16)
        let index = Int(tag & 0xFFFF)
        switch kind {
        case .receive: received(result)
        case .send: sent(result)
        case .disk: diskCompleted(requests[index], result)
        case .edgeHead, .edgeTail: edgeCompleted(requests[index], result)
        case .flushAfter: flushAfterCompleted(requests[index], result)
        case .cache: complete(requests[index], error: 0)
        case nil: preconditionFailure("unknown NBD completion tag \(tag)")
        }
        finishCloseIfIdle()
    }

    @inline(__always)
    private func sqe(_ kind: Kind, _ index: UInt16 = 0) -> UnsafeMutablePointer<io_uring_sqe> {
        operationsInFlight += 1
        return loop.sqe(handler: handlerID, tag: kind.rawValue << 16 | UInt32(index))
    }

    // MARK: receiving

    private func armReceive() {
        guard !receiving, isOpen else { return }
        if let request = payloadRequest {
            let remaining = Int(request.header.length) - request.payloadReceived
            let target = request.buffer!.pointer + request.dataOffset + request.payloadReceived
            let sqe = self.sqe(.receive)
            io_uring_prep_recv(sqe, fd, target, remaining, Int32(MSG_WAITALL))
            receiving = true
            return
        }
        if stagingStart == stagingEnd {
            stagingStart = 0
            stagingEnd = 0
        } else if stagingEnd == staging.count || stagingStart > staging.count / 2 {
            let pending = stagingEnd - stagingStart
            memmove(staging.baseAddress!, staging.baseAddress! + stagingStart, pending)
            stagingStart = 0
            stagingEnd = pending
        }
        let sqe = self.sqe(.receive)
        io_uring_prep_recv(sqe, fd, staging.baseAddress! + stagingEnd, staging.count - stagingEnd, 0)
        receiving = true
    }

    private func received(_ result: Int32) {
        receiving = false
        guard isOpen else { return }
        if result == -EINTR || result == -EAGAIN || result == -ENOBUFS {
            armReceive()
            return
        }
        guard result > 0 else {
            close(result == 0 ? "client closed the connection" : "receive failed: errno \(-result)")
            return
        }
        if let request = payloadRequest {
            request.payloadReceived += Int(result)
            if request.payloadReceived == Int(request.header.length) {
                payloadRequest = nil
                backend.admit(request)
            }
        } else {
            stagingEnd += Int(result)
        }
        process()
    }

    /// Parses whatever the staging buffer holds and re-arms the receive unless stalled.
    private func process() {
        switch state {
        case .handshake: processHandshake()
        case .transmission: processRequests()
        case .closing, .closed: return
        }
        if isOpen && (payloadRequest != nil || !isStalled) { armReceive() }
    }

    private var isOpen: Bool { state == .handshake || state == .transmission }

    private var isStalled: Bool {
        disconnectRequested || waitingForBuffers || (state == .transmission && freeSlots.isEmpty)
    }

    private func processHandshake() {
        let (used, outcome) = handshake.feed(UnsafeRawBufferPointer(rebasing: staging[stagingStart..<stagingEnd]))
        stagingStart += used
        handshakeOutput += handshake.takeOutput()
        switch outcome {
        case .needMore:
            sendHandshakeOutput()
        case .transmission(let structured):
            structuredReplies = structured
            state = .transmission
            sendHandshakeOutput()
            processRequests()
        case .close(let reason):
            // Deliver any final reply (e.g. ABORT's ACK) before closing, best effort.
            if !handshakeOutput.isEmpty {
                _ = handshakeOutput.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            }
            close(reason)
        }
    }

    /// Handshake replies are small and rare: a plain non-blocking send, falling back to the
    /// ring only if the socket buffer is full.
    private func sendHandshakeOutput() {
        guard !handshakeOutput.isEmpty, !sending else { return }
        let sent = handshakeOutput.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        if sent > 0 { handshakeOutput.removeFirst(sent) }
        if sent < 0 && errno != EAGAIN && errno != EINTR {
            close("send failed during handshake: errno \(errno)")
            return
        }
        if !handshakeOutput.isEmpty {
            sending = true
            let sqe = self.sqe(.send)
            handshakeOutput.withUnsafeBytes { io_uring_prep_send(sqe, fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            sendBatch.removeAll(keepingCapacity: true)
            sendIovecCount = 0
        }
    }

    // MARK: requests

    private func processRequests() {
        // While a payload streams into its request buffer the staging buffer holds nothing.
        while state == .transmission && payloadRequest == nil && !isStalled {
            if discardBytes > 0 {
                let take = min(discardBytes, stagingEnd - stagingStart)
                stagingStart += take
                discardBytes -= take
                if discardBytes > 0 { return }
            }
            guard stagingEnd - stagingStart >= NBD.requestHeaderBytes else { return }
            let bytes = UnsafeRawBufferPointer(rebasing: staging[stagingStart..<(stagingStart + NBD.requestHeaderBytes)])
            guard let header = NBDRequestHeader.parse(bytes) else {
                close("request with bad magic")
                return
            }
            guard begin(header) else { return }
        }
    }

    /// Takes one request off the staging buffer; false when it must wait for buffers.
    private func begin(_ header: NBDRequestHeader) -> Bool {
        guard let command = NBD.Command(rawValue: header.type) else {
            return reject(header, NBD.Errno.einval, payload: false)
        }
        let hasPayload = command == .write
        if let error = validate(header, command) {
            return reject(header, error, payload: hasPayload)
        }
        if command == .disconnect {
            stagingStart += NBD.requestHeaderBytes
            disconnectRequested = true
            closeWhenDrained()
            return true
        }
        let request = requests[Int(freeSlots.last!)]
        request.header = header
        request.command = command
        if !prepareBuffers(request) { return false }
        freeSlots.removeLast()
        stagingStart += NBD.requestHeaderBytes
        if hasPayload {
            takePayload(request)
        } else if header.length == 0 && command != .flush {
            complete(request, error: 0)  // nothing to read, trim, zero or cache
        } else {
            backend.admit(request)
        }
        return true
    }

    private func validate(_ header: NBDRequestHeader, _ command: NBD.Command) -> UInt32? {
        let known = NBD.CommandFlag.fua | NBD.CommandFlag.noHole
        if header.flags & ~known != 0 { return NBD.Errno.einval }
        switch command {
        case .read, .write, .trim, .writeZeroes, .cache:
            if header.length > backend.maxRequestBytes && (command == .read || command == .write) {
                return command == .write ? NBD.Errno.eoverflow : NBD.Errno.einval
            }
            let (end, overflow) = header.offset.addingReportingOverflow(UInt64(header.length))
            if overflow || end > backend.volume.sizeBytes {
                return command == .read || command == .cache ? NBD.Errno.einval : NBD.Errno.enospc
            }
            if backend.readOnly && command != .read && command != .cache { return NBD.Errno.eperm }
            return nil
        case .flush, .disconnect:
            return nil
        case .blockStatus, .resize:
            return NBD.Errno.einval
        }
    }

    /// Answers a request that will not run; a write's payload is read and dropped.
    private func reject(_ header: NBDRequestHeader, _ error: UInt32, payload: Bool) -> Bool {
        guard let slot = freeSlots.popLast() else { return false }
        stagingStart += NBD.requestHeaderBytes
        if payload { discardBytes = Int(header.length) }
        let request = requests[Int(slot)]
        request.header = header
        request.command = NBD.Command(rawValue: header.type) ?? .flush
        complete(request, error: error)
        return true
    }

    /// Chooses the aligned disk range and takes the buffers it needs, all or nothing.
    private func prepareBuffers(_ request: NBDRequest) -> Bool {
        let command = request.command
        guard command == .read || command == .write else { return true }
        let alignment = UInt64(backend.volume.alignment)
        let start = request.header.offset / alignment * alignment
        let end = (request.endOffset + alignment - 1) / alignment * alignment
        request.diskOffset = start
        request.diskLength = Int(end - start)
        request.dataOffset = Int(request.header.offset - start)
        request.isReadModifyWrite = command == .write && (start != request.header.offset || end != request.endOffset)
        guard request.diskLength > 0 else { return true }
        guard let buffer = backend.buffers.allocate(bytes: request.diskLength, for: self) else {
            waitingForBuffers = true
            return false
        }
        if request.isReadModifyWrite {
            guard let edges = backend.buffers.allocate(bytes: 2 * Int(alignment), for: self) else {
                backend.buffers.release(buffer)
                waitingForBuffers = true
                return false
            }
            request.edges = edges
        }
        request.buffer = buffer
        waitingForBuffers = false
        return true
    }

    public func buffersAvailable() {
        guard waitingForBuffers, state == .transmission else { return }
        waitingForBuffers = false
        process()
    }

    private func takePayload(_ request: NBDRequest) {
        let length = Int(request.header.length)
        let available = min(length, stagingEnd - stagingStart)
        if available > 0 {
            (request.buffer!.pointer + request.dataOffset).copyMemory(
                from: staging.baseAddress! + stagingStart, byteCount: available)
            stagingStart += available
        }
        request.payloadReceived = available
        if available == length {
            if length == 0 { complete(request, error: 0) } else { backend.admit(request) }
        } else {
            request.phase = .receiving
            payloadRequest = request
        }
    }

    // MARK: disk

    /// Called by the backend once the request may touch the disk.
    func issue(_ request: NBDRequest) {
        guard isOpen else {
            backend.finished(request)
            release(request)
            return
        }
        if backend.refusesMutations && (request.isMutation || request.command == .flush) {
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
        case .read: submitData(request, write: false)
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

    @inline(__always)
    private func tag(_ kind: Kind, _ request: NBDRequest) -> UInt32 { kind.rawValue << 16 | UInt32(request.index) }

    private func submitData(_ request: NBDRequest, write: Bool) {
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

    private func readEdges(_ request: NBDRequest) {
        request.phase = .readingEdges
        let alignment = backend.volume.alignment
        let edges = request.edges!.pointer
        let headPartial = request.dataOffset != 0
        let tailStart = request.diskOffset + UInt64(request.diskLength - alignment)
        let tailPartial = request.endOffset != request.diskOffset + UInt64(request.diskLength)
        if headPartial {
            loop.prepareVolumeIO(write: false, volume: backend.volume, buffer: edges, length: alignment,
                                 offset: request.diskOffset, dsync: false, handler: handlerID, tag: tag(.edgeHead, request))
            operationsInFlight += 1
            request.edgeReadsPending += 1
        }
        if tailPartial && !(headPartial && tailStart == request.diskOffset) {
            loop.prepareVolumeIO(write: false, volume: backend.volume, buffer: edges + alignment, length: alignment,
                                 offset: tailStart, dsync: false, handler: handlerID, tag: tag(.edgeTail, request))
            operationsInFlight += 1
            request.edgeReadsPending += 1
        }
    }

    private func edgeCompleted(_ request: NBDRequest, _ result: Int32) {
        request.edgeReadsPending -= 1
        if result != Int32(backend.volume.alignment) && request.error == 0 {
            request.error = result < 0 ? NBD.Errno.wire(-result) : NBD.Errno.eio
            backend.onDiskError?("read", result < 0 ? -result : EIO)
        }
        guard request.edgeReadsPending == 0 else { return }
        guard request.error == 0, isOpen else {
            backend.finished(request)
            if !isOpen { release(request) } else { complete(request, error: request.error) }
            return
        }
        mergeEdges(request)
        if backend.sink != nil { handToSink(request) } else { submitData(request, write: true) }
    }

    private func handToSink(_ request: NBDRequest) {
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

    /// The sink's answer for a mutation handed to it.
    func sinkFinished(_ request: NBDRequest, errno: Int32) {
        operationsInFlight -= 1
        finishDisk(request, error: errno == 0 ? 0 : NBD.Errno.wire(errno))
        finishCloseIfIdle()
    }

    /// Fills the parts of the aligned buffer the client did not send from the edge blocks.
    private func mergeEdges(_ request: NBDRequest) {
        let alignment = backend.volume.alignment
        let buffer = request.buffer!.pointer
        let edges = request.edges!.pointer
        if request.dataOffset != 0 {
            buffer.copyMemory(from: edges, byteCount: request.dataOffset)
        }
        let dataEnd = request.dataOffset + Int(request.header.length)
        if dataEnd != request.diskLength {
            let tailBlock = request.diskLength - alignment
            let singleBlock = tailBlock == 0 && request.dataOffset != 0
            let source = singleBlock ? edges : edges + alignment
            (buffer + dataEnd).copyMemory(from: source + (dataEnd - tailBlock), byteCount: request.diskLength - dataEnd)
        }
    }

    private func diskCompleted(_ request: NBDRequest, _ result: Int32) {
        if result == -EINTR || result == -EAGAIN {
            reissue(request)
            return
        }
        if result < 0 {
            if request.command == .trim && (result == -EOPNOTSUPP || result == -EINVAL) {
                finishDisk(request, error: 0)  // TRIM is advisory
            } else {
                reportDiskError(request, -result)
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

    private func flushAfterCompleted(_ request: NBDRequest, _ result: Int32) {
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
        backend.finished(request)
        if !isOpen {
            release(request)
        } else {
            complete(request, error: error)
        }
    }

    // MARK: replies

    private func complete(_ request: NBDRequest, error: UInt32) {
        request.error = error
        request.phase = .replying
        backend.record(request)
        let handle = request.header.handle
        if request.command == .read && structuredReplies {
            if error == 0 {
                NBDReply.encodeReadChunkHeader(into: request.replyHeader, handle: handle, offset: request.header.offset,
                                               dataLength: request.header.length)
                request.replyHeaderBytes = 28
            } else {
                NBDReply.encodeStructuredError(into: request.replyHeader, handle: handle, error: error)
                request.replyHeaderBytes = NBDReply.structuredErrorBytes
            }
        } else {
            NBDReply.encodeSimple(into: request.replyHeader, error: error, handle: handle)
            request.replyHeaderBytes = NBD.simpleReplyBytes
        }
        if let tail = replyTail { tail.nextReply = request } else { replyHead = request }
        replyTail = request
        if !replyFlushScheduled {
            replyFlushScheduled = true
            loop.atTurnEnd(self)
        }
    }

    public func turnEnded() {
        replyFlushScheduled = false
        flushReplies()
    }

    private func flushReplies() {
        guard !sending, replyHead != nil, isOpen else { return }
        sendBatch.removeAll(keepingCapacity: true)
        var count = 0
        while let request = replyHead, count + 2 <= iovecCapacity {
            replyHead = request.nextReply
            request.nextReply = nil
            iovecs[count] = iovec(iov_base: request.replyHeader.baseAddress, iov_len: request.replyHeaderBytes)
            count += 1
            if request.command == .read && request.error == 0 && request.header.length > 0 {
                iovecs[count] = iovec(iov_base: request.buffer!.pointer + request.dataOffset,
                                      iov_len: Int(request.header.length))
                count += 1
            }
            sendBatch.append(request)
        }
        if replyHead == nil { replyTail = nil }
        sendIovecFirst = 0
        sendIovecCount = count
        submitSendmsg()
    }

    private func submitSendmsg() {
        sending = true
        message = msghdr()
        message.msg_iov = iovecs + sendIovecFirst
        message.msg_iovlen = sendIovecCount - sendIovecFirst
        let sqe = self.sqe(.send)
        io_uring_prep_sendmsg(sqe, fd, &message, UInt32(MSG_NOSIGNAL))
    }

    private func sent(_ result: Int32) {
        sending = false
        if !isOpen { return }
        if result == -EINTR || result == -EAGAIN {
            resend()
            return
        }
        guard result >= 0 else {
            close("send failed: errno \(-result)")
            return
        }
        if sendIovecCount == 0 {
            handshakeOutput.removeFirst(Int(result))
            sendHandshakeOutput()
            flushReplies()
            return
        }
        var remaining = Int(result)
        while sendIovecFirst < sendIovecCount && remaining >= iovecs[sendIovecFirst].iov_len {
            remaining -= iovecs[sendIovecFirst].iov_len
            sendIovecFirst += 1
        }
        if sendIovecFirst < sendIovecCount {
            iovecs[sendIovecFirst].iov_base += remaining
            iovecs[sendIovecFirst].iov_len -= remaining
            submitSendmsg()
            return
        }
        for request in sendBatch { release(request) }
        sendBatch.removeAll(keepingCapacity: true)
        sendIovecCount = 0
        if disconnectRequested {
            closeWhenDrained()
        } else {
            flushReplies()
            process()
        }
    }

    private func resend() {
        if sendIovecCount == 0 { sendHandshakeOutput() } else { submitSendmsg() }
    }

    /// NBD_CMD_DISC: finish what is in flight, answer it, then close.
    private func closeWhenDrained() {
        let busy = requests.contains { $0.phase != .free }
        if !busy && !sending { close("client disconnected") }
    }

    private func release(_ request: NBDRequest) {
        if let buffer = request.buffer { request.buffer = nil; backend.buffers.release(buffer) }
        if let edges = request.edges { request.edges = nil; backend.buffers.release(edges) }
        request.reset()
        freeSlots.append(request.index)
    }
}
