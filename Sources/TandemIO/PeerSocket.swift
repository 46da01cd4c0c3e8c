// PeerSocket: one replication TCP connection driven by the ring: a connect (for the dialling
// side), one receive and at most one send in flight at a time (bytes go out directly while
// the socket buffer takes them, through the ring only when it is full); receives can be held
// while the owner cannot take more (backpressure). It knows nothing of TLS: bytes to send
// come from the owner's `output` (TLS ciphertext), sent from where they lie rather than copied
// into a buffer of the socket's; received bytes go to the delegate. The receive buffer is
// allocated once per connection. Loop thread only.
import Glibc
import CURing

public protocol PeerSocketDelegate: AnyObject {
    func peerSocketConnected(_ socket: PeerSocket)
    func peerSocket(_ socket: PeerSocket, received bytes: UnsafeRawBufferPointer)
    /// Called once, after every operation of the socket has completed and the fd is closed.
    func peerSocketClosed(_ socket: PeerSocket, reason: String)
}

/// Where a socket's bytes to send come from.
public protocol PeerSocketOutput: AnyObject {
    /// The next bytes to send; they must stay where they are, unchanged, until `sent` has
    /// accounted for all of them. Empty when nothing waits.
    func nextBytesToSend() -> UnsafeRawBufferPointer
    /// `count` bytes of the last `nextBytesToSend` were sent.
    func sent(_ count: Int)
}

public final class PeerSocket: IOHandler {
    public static let receiveBufferBytes = 256 << 10

    public let loop: EventLoop
    public weak var delegate: PeerSocketDelegate?
    /// What to send (held strongly: the socket may outlive its owner while it closes, and
    /// a send in flight points into the output's memory).
    public var output: PeerSocketOutput?
    public private(set) var isConnected: Bool
    public private(set) var isClosing = false
    private var fd: Int32
    private var handlerID: UInt32 = 0
    /// Read by the kernel when the connect is submitted, so it must not move.
    private let address = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
    private let receiveBuffer: UnsafeMutableRawBufferPointer
    /// Bytes of the send in flight (from `output.nextBytesToSend`).
    private var sendingBytes = 0
    private var inFlight = 0
    private var sending = false
    /// Sends that went out directly (`kick`) and through the ring (tests: the ring takes
    /// over when the socket buffer is full).
    public private(set) var directSendCount: UInt64 = 0
    public private(set) var ringSendCount: UInt64 = 0
    private var receiving = false
    /// The owner cannot take more bytes now (backpressure): no receive is armed until
    /// `resumeReceives`, so the peer's sends stop at the TCP window.
    public private(set) var receivesHeld = false
    private var connecting = false
    private var closeReason = ""
    private var closedReported = false
    /// The dialling side's addresses still to try, in order, should this connect fail.
    private var untriedAddresses: ArraySlice<SocketAddress> = []
    private var connectingTo = ""

    private enum Tag: UInt32 { case connect = 1, receive, send, cancel, nop }

    /// A peer host that vanishes without a reset is noticed by TCP: keepalive probes after 5 s
    /// of silence (3 × 2 s), and unacknowledged data fails the connection after 15 s. A
    /// connection that cannot have these (or its buffers and TCP_NODELAY) is not used: the
    /// error names the option and the errno.
    static func configure(_ fd: Int32) throws(IOError) {
        try Sockets.setNoDelay(fd)
        try Sockets.setBufferSizes(fd, bytes: 4 << 20)
        let tcp = Int32(IPPROTO_TCP)
        try Sockets.setOption(fd, SOL_SOCKET, SO_KEEPALIVE, Int32(1), "SO_KEEPALIVE")
        try Sockets.setOption(fd, tcp, TCP_KEEPIDLE, Int32(5), "TCP_KEEPIDLE")
        try Sockets.setOption(fd, tcp, TCP_KEEPINTVL, Int32(2), "TCP_KEEPINTVL")
        try Sockets.setOption(fd, tcp, TCP_KEEPCNT, Int32(3), "TCP_KEEPCNT")
        try Sockets.setOption(fd, tcp, TCP_USER_TIMEOUT, UInt32(15_000), "TCP_USER_TIMEOUT")
        // Start in quick-ACK mode rather than delayed ACKs. Latency only, so a failure is
        // counted (tandem_socket_option_failures_total) and the socket used all the same.
        _ = try? Sockets.setOption(fd, tcp, TCP_QUICKACK, Int32(1), "TCP_QUICKACK")
    }

    /// Adopts a connected socket (an accepted one). Throws, leaving `connectedFD` open for
    /// the caller to close, when the socket cannot be configured.
    public init(loop: EventLoop, connectedFD: Int32) throws(IOError) {
        try Self.configure(connectedFD)
        self.loop = loop
        self.fd = connectedFD
        self.isConnected = true
        receiveBuffer = .allocate(byteCount: Self.receiveBufferBytes, alignment: 64)
        handlerID = loop.register(self)
    }

    /// Starts a non-blocking connect on the ring to the first of `addresses` (getaddrinfo's
    /// order), moving on to the next when one fails: "localhost" may give ::1 first while the
    /// peer listens on IPv4 only.
    public init(loop: EventLoop, connectTo addresses: [SocketAddress]) throws(IOError) {
        guard let first = addresses.first else { throw IOError(errno: EDESTADDRREQ, "connect: no address") }
        self.loop = loop
        self.fd = -1
        self.isConnected = false
        receiveBuffer = .allocate(byteCount: Self.receiveBufferBytes, alignment: 64)
        untriedAddresses = addresses.dropFirst()
        fd = try Self.openSocket(family: first.family)
        handlerID = loop.register(self)
        startConnect(to: first)
    }

    private static func openSocket(family: Int32) throws(IOError) -> Int32 {
        let fd = try Sockets.streamSocket(family: family)
        do throws(IOError) { try configure(fd) } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    private func startConnect(to target: SocketAddress) {
        address.initialize(to: target.storage)
        connectingTo = target.description
        let sqe = loop.sqe(handler: handlerID, tag: Tag.connect.rawValue)
        address.withMemoryRebound(to: sockaddr.self, capacity: 1) { io_uring_prep_connect(sqe, fd, $0, target.length) }
        connecting = true
        inFlight += 1
    }

    deinit {
        address.deallocate()
        receiveBuffer.deallocate()
    }

    /// Begins receiving (call once the delegate is set, for an accepted socket).
    public func start() {
        precondition(isConnected)
        armReceive()
        kick()
    }

    /// Stops arming receives: the one in flight, if any, still completes and is delivered.
    public func holdReceives() {
        receivesHeld = true
    }

    /// Arms the next receive again after `holdReceives`.
    public func resumeReceives() {
        guard receivesHeld else { return }
        receivesHeld = false
        if isConnected { armReceive() }
    }

    /// Sends what `output` has, if no send is in flight: straight from the loop thread with
    /// a non-blocking send while the socket buffer takes the bytes, through the ring once it
    /// is full (that send completes when TCP has room again and sends on from here). A direct
    /// send costs no ring operation and no loop turn for its completion, and the bytes are on
    /// the wire before the turn's disk I/O is submitted: a primary's Data frame reaches the
    /// peer without waiting behind the submission of its own local write.
    public func kick() {
        guard isConnected, !isClosing, !sending else { return }
        sendDirectly()
    }

    /// Sends until the output is empty or the socket buffer full; then the ring takes over.
    private func sendDirectly() {
        while let output, !isClosing {
            let bytes = output.nextBytesToSend()
            guard let base = bytes.baseAddress, bytes.count > 0 else { return }
            let count = Glibc.send(fd, base, bytes.count, Sockets.directSendFlags)
            if count > 0 {
                directSendCount &+= 1
                output.sent(count)
                continue
            }
            let code = count < 0 ? errno : EAGAIN
            if code == EINTR { continue }
            if code == EAGAIN {
                submitSend()
                return
            }
            return close("send failed: \(String(cString: strerror(code)))")
        }
    }

    /// Sends the output's next bytes, if it has any; false when it has none.
    @discardableResult
    private func submitSend() -> Bool {
        guard let bytes = output?.nextBytesToSend(), let base = bytes.baseAddress, bytes.count > 0 else { return false }
        let sqe = loop.sqe(handler: handlerID, tag: Tag.send.rawValue)
        io_uring_prep_send(sqe, fd, base, bytes.count, Sockets.sendFlags)
        ringSendCount &+= 1
        sendingBytes = bytes.count
        sending = true
        inFlight += 1
        return true
    }

    /// Ends the connection; the delegate hears `peerSocketClosed` once everything settled.
    /// `abortive`: the peer is gone (it closed, or went silent), so nothing queued can reach
    /// it: the socket is shut down at once, failing a send in flight, instead of waiting for
    /// that send — which a peer that stopped reading holds until TCP gives up (15 s), with
    /// the link still reported connected meanwhile.
    public func close(_ reason: String, abortive: Bool = false) {
        guard !isClosing else { return }
        isClosing = true
        closeReason = reason
        if connecting {
            let sqe = loop.sqe(handler: handlerID, tag: Tag.cancel.rawValue)
            io_uring_prep_cancel64(sqe, UInt64(handlerID) << 32 | UInt64(Tag.connect.rawValue), 0)
        }
        // Otherwise what was queued before the close (a last message, a TLS alert or
        // close_notify) is sent first; the shutdown follows the last send.
        if !sending || abortive { Sockets.shutdownBoth(fd) }
        // A no-op so that the close is reported from a completion, never from inside close().
        let sqe = loop.sqe(handler: handlerID, tag: Tag.nop.rawValue)
        io_uring_prep_nop(sqe)
        inFlight += 1
    }

    public func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        guard let kind = Tag(rawValue: tag) else { preconditionFailure("unknown peer socket tag \(tag)") }
        switch kind {
        case .connect: connectCompleted(result)
        case .receive: receiveCompleted(result)
        case .send: sendCompleted(result)
        case .cancel: return
        case .nop: inFlight -= 1
        }
        finishIfIdle()
    }

    private func connectCompleted(_ result: Int32) {
        inFlight -= 1
        connecting = false
        guard !isClosing else { return }
        guard result == 0 else {
            let reason = "connect to \(connectingTo) failed: \(String(cString: strerror(-result)))"
            if let next = untriedAddresses.popFirst() {
                Glibc.close(fd)
                do throws(IOError) { fd = try Self.openSocket(family: next.family) } catch {
                    fd = -1
                    return close("\(reason); \(error)")
                }
                return startConnect(to: next)
            }
            close(reason)
            return
        }
        isConnected = true
        delegate?.peerSocketConnected(self)
        if !isClosing { start() }
    }

    private func armReceive() {
        guard !isClosing, !receiving, !receivesHeld else { return }
        let sqe = loop.sqe(handler: handlerID, tag: Tag.receive.rawValue)
        io_uring_prep_recv(sqe, fd, receiveBuffer.baseAddress, receiveBuffer.count, 0)
        receiving = true
        inFlight += 1
    }

    private func receiveCompleted(_ result: Int32) {
        inFlight -= 1
        receiving = false
        guard !isClosing else { return }
        if result == 0 { return close("peer closed the connection", abortive: true) }
        if result < 0 {
            if result == -EINTR || result == -EAGAIN { return armReceive() }
            return close("receive failed: \(String(cString: strerror(-result)))", abortive: true)
        }
        delegate?.peerSocket(self, received: UnsafeRawBufferPointer(rebasing: receiveBuffer[0..<Int(result)]))
        armReceive()
    }

    private func sendCompleted(_ result: Int32) {
        inFlight -= 1
        sending = false
        if isClosing { return sendWhileClosing(result) }
        if result < 0 {
            if result == -EINTR || result == -EAGAIN { return kick() }
            return close("send failed: \(String(cString: strerror(-result)))")
        }
        precondition(Int(result) <= sendingBytes, "sent more than was queued")
        output?.sent(Int(result))
        kick()
    }

    private func sendWhileClosing(_ result: Int32) {
        if result > 0 {
            precondition(Int(result) <= sendingBytes, "sent more than was queued")
            output?.sent(Int(result))
        }
        guard result > 0, submitSend() else {
            Sockets.shutdownBoth(fd)
            return
        }
    }

    private func finishIfIdle() {
        guard isClosing, inFlight == 0, !closedReported else { return }
        closedReported = true
        isConnected = false
        Glibc.close(fd)
        loop.unregister(handlerID)
        delegate?.peerSocketClosed(self, reason: closeReason)
    }
}
