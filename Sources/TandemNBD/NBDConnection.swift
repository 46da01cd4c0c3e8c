// NBDConnection: one client socket, from handshake to close. This file owns the class, its
// state, its lifecycle (start, close, the request slots), the receive path into the staging
// buffer and the dispatch of completions. Write payloads beyond what the staging read already
// holds go straight into the request's (registered) buffer. The extensions hold the rest:
// +Handshake (option haggling), +Requests (decoding, validation, buffers), +ReadModifyWrite
// (unaligned writes), +Disk (submission and completion), +Replies (encoding, batched send).
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
    // The state below is shared with the extensions in NBDConnection+*.swift, hence internal
    // rather than private; nothing outside this class touches it.
    var state = State.handshake
    var handshake: NBDHandshake
    var handshakeOutput: [UInt8] = []
    var structuredReplies = false

    let staging: UnsafeMutableRawBufferPointer
    var stagingStart = 0
    var stagingEnd = 0
    private static let stagingBytes = 64 << 10

    private(set) var requests: [NBDRequest] = []
    var freeSlots: [UInt16] = []
    private let replyHeaders: UnsafeMutableRawBufferPointer
    var replyHead: NBDRequest?
    var replyTail: NBDRequest?
    let iovecs: UnsafeMutablePointer<iovec>
    let iovecCapacity: Int
    var message = msghdr()
    var sendBatch: [NBDRequest] = []
    var sendIovecFirst = 0
    var sendIovecCount = 0

    private var receiving = false
    var sending = false
    var operationsInFlight = 0
    /// The request whose write payload is being received, if any.
    var payloadRequest: NBDRequest?
    /// Bytes of an unusable write payload still to be read and dropped.
    var discardBytes = 0
    var waitingForBuffers = false
    /// Replies completed in this loop turn leave together in one sendmsg at its end.
    var replyFlushScheduled = false
    /// closeAfterDecidedReplies is sending: a full socket ends the send, nothing more is read.
    var sendingBeforeClose = false
    var disconnectRequested = false
    /// The last receive's trace stamp: requests parsed from it start there (RequestTrace).
    var receiveStamp = TraceStamp.none
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

    /// Ends the connection as `close` does, once the replies already decided and not yet
    /// sent are on the socket, as far as it takes them without waiting: the export's end
    /// (a demotion, a yield, a shutdown) comes in the turn whose stop answered the requests it
    /// held, and the client is owed those answers (an EIO tells it the write may not be on
    /// both copies; a dropped connection tells it nothing). Replies behind a send the socket
    /// has not taken yet (a client that stopped reading) are dropped with the connection.
    func closeAfterDecidedReplies(_ reason: String) {
        if isOpen && !sending && replyHead != nil {
            sendingBeforeClose = true
            flushReplies()
            sendingBeforeClose = false
        }
        close(reason)
    }

    /// Ends the connection: stops reading, lets in-flight disk work finish, frees everything.
    func close(_ reason: String) {
        guard isOpen else { return }
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

    func finishCloseIfIdle() {
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
    func sqe(_ kind: Kind, _ index: UInt16 = 0) -> UnsafeMutablePointer<io_uring_sqe> {
        operationsInFlight += 1
        return loop.sqe(handler: handlerID, tag: kind.rawValue << 16 | UInt32(index))
    }

    @inline(__always)
    func tag(_ kind: Kind, _ request: NBDRequest) -> UInt32 { kind.rawValue << 16 | UInt32(request.index) }

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
        receiveStamp = backend.trace.enabled ? loop.traceStamp() : .none
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
    func process() {
        switch state {
        case .handshake: processHandshake()
        case .transmission: processRequests()
        case .closing, .closed: return
        }
        if isOpen && (payloadRequest != nil || !isStalled) { armReceive() }
    }

    var isOpen: Bool { state == .handshake || state == .transmission }

    var isStalled: Bool {
        disconnectRequested || waitingForBuffers || (state == .transmission && freeSlots.isEmpty)
    }

    // MARK: lifecycle of a request slot

    /// NBD_CMD_DISC: finish what is in flight, answer it, then close.
    func closeWhenDrained() {
        let busy = requests.contains { $0.phase != .free }
        if !busy && !sending { close("client disconnected") }
    }

    func release(_ request: NBDRequest) {
        if let buffer = request.buffer { request.buffer = nil; backend.buffers.release(buffer) }
        if let edges = request.edges { request.edges = nil; backend.buffers.release(edges) }
        request.reset()
        freeSlots.append(request.index)
    }
}
