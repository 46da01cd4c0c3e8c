// TandemNBD owns the NBD server on the ring: listeners, connections (handshake, request
// decoding, read-modify-write, replies) and the export each volume is served as, which
// hands mutations of a replicated export to its NBDWriteSink. It decides no replication rule.
//
// NBDListener: accepts NBD clients on one listening socket through the ring and hands each
// to a new NBDConnection of its export. Loop thread only.
import CURing
import Glibc
import Logging
import TandemIO

public final class NBDListener: IOHandler {
    public let backend: NBDExportBackend
    let fd: Int32
    let description: String
    let maxRequestsPerConnection: Int
    let logger: Logger
    private var handlerID: UInt32 = 0
    private var accepting = false
    /// Out of descriptors (EMFILE/ENFILE): the ring would fail a re-armed accept at once,
    /// for as long as the limit holds, so the next accept waits `backoffTimeout` instead.
    private var backingOff = false
    /// Read by the kernel when the timeout is submitted, after `armBackoff` returns: a
    /// stable address, not a Swift property.
    private let backoffTimeout = UnsafeMutablePointer<__kernel_timespec>.allocate(capacity: 1)
    /// Logged once per run of failures, not at every retry.
    private var outOfDescriptorsLogged = false
    private var cancelsInFlight = 0
    private var stopping = false
    private var onStopped: (() -> Void)?
    private static let acceptTag: UInt32 = 1
    private static let cancelTag: UInt32 = 2
    private static let backoffTag: UInt32 = 3

    public init(fd: Int32, description: String, backend: NBDExportBackend, maxRequestsPerConnection: Int, logger: Logger) {
        self.fd = fd
        self.description = description
        self.backend = backend
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.logger = logger
        backoffTimeout.initialize(to: __kernel_timespec(tv_sec: 0, tv_nsec: 100_000_000))
    }

    deinit { backoffTimeout.deallocate() }

    public func start() {
        handlerID = backend.loop.register(self)
        armAccept()
    }

    /// Stops accepting and closes every connection of this listener's export, each after the
    /// replies already decided are sent; `done` runs on the loop once nothing is in flight
    /// any more.
    public func stop(_ done: @escaping () -> Void) {
        stopping = true
        onStopped = done
        // Each cancel's own completion is awaited too: the handler may not be unregistered
        // while one is due (the accept it cancels can complete first, e.g. with EMFILE).
        if accepting { cancel(tag: Self.acceptTag) }
        if backingOff { cancel(tag: Self.backoffTag) }
        for connection in Array(backend.connections.values) where connection.listener === self {
            connection.closeAfterDecidedReplies("export is being removed")
        }
        finishStopIfIdle()
    }

    private func cancel(tag: UInt32) {
        let sqe = backend.loop.sqe(handler: handlerID, tag: Self.cancelTag)
        io_uring_prep_cancel64(sqe, UInt64(handlerID) << 32 | UInt64(tag), 0)
        cancelsInFlight += 1
    }

    private func armAccept() {
        guard !stopping else { return }
        let sqe = backend.loop.sqe(handler: handlerID, tag: Self.acceptTag)
        io_uring_prep_accept(sqe, fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        accepting = true
    }

    public func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        switch tag {
        case Self.cancelTag:
            cancelsInFlight -= 1
            finishStopIfIdle()
            return
        case Self.backoffTag:
            backingOff = false
            if stopping { finishStopIfIdle() } else { armAccept() }
            return
        default:
            break
        }
        accepting = false
        if result >= 0 {
            outOfDescriptorsLogged = false
            if stopping { Glibc.close(result) } else { adopt(result) }
        } else if result == -EMFILE || result == -ENFILE {
            if !stopping {
                if !outOfDescriptorsLogged {
                    outOfDescriptorsLogged = true
                    logger.warning("accept: out of file descriptors; retrying every 100 ms",
                                   metadata: ["listener": "\(description)", "errno": "\(-result)"])
                }
                armBackoff()
                return
            }
        } else if result != -ECANCELED && result != -EINTR && result != -EAGAIN && result != -ECONNABORTED {
            logger.warning("accept failed", metadata: ["listener": "\(description)", "errno": "\(-result)"])
        }
        if stopping { finishStopIfIdle() } else { armAccept() }
    }

    private func armBackoff() {
        let sqe = backend.loop.sqe(handler: handlerID, tag: Self.backoffTag)
        io_uring_prep_timeout(sqe, backoffTimeout, 0, 0)
        backingOff = true
    }

    private func adopt(_ clientFD: Int32) {
        configure(clientFD)
        let connection = NBDConnection(fd: clientFD, backend: backend, maxRequests: maxRequestsPerConnection, logger: logger)
        connection.listener = self
        let id = ObjectIdentifier(connection)
        backend.connections[id] = connection
        connection.onClosed = { [unowned self] closed in
            self.backend.connections[ObjectIdentifier(closed)] = nil
            if self.stopping { self.finishStopIfIdle() }
        }
        connection.start()
    }

    /// Latency and throughput, not correctness: the client is served either way. Each option
    /// on its own, so that one refused does not leave the other unset. TCP_NODELAY only on a
    /// TCP client: a Unix socket refuses it (EOPNOTSUPP), and before this check that refusal
    /// skipped the send buffer too, so a 1 MiB read reply left a Unix socket's default 208 KiB
    /// buffer in several partial sends, a loop turn and a wake-up of the client each.
    static func configure(_ clientFD: Int32, logger: Logger, description: String) {
        if Sockets.isInternet(clientFD) {
            do throws(IOError) { try Sockets.setNoDelay(clientFD) } catch {
                logger.warning("NBD client socket options", metadata: ["listener": "\(description)", "error": "\(error)"])
            }
        }
        do throws(IOError) { try Sockets.setBufferSizes(clientFD, bytes: clientBufferBytes) } catch {
            logger.warning("NBD client socket options", metadata: ["listener": "\(description)", "error": "\(error)"])
        }
    }

    private func configure(_ clientFD: Int32) {
        Self.configure(clientFD, logger: logger, description: description)
    }

    /// A client's socket buffers: a turn's replies to 1 MiB reads (a sequential reader's
    /// usual size; the kernel doubles the figure) leave in one send. A bound, not an
    /// allocation: the kernel charges only what is queued and unread.
    static let clientBufferBytes: Int32 = 4 << 20

    private func finishStopIfIdle() {
        guard stopping, !accepting, !backingOff, cancelsInFlight == 0 else { return }
        guard !backend.connections.values.contains(where: { $0.listener === self }) else { return }
        guard let done = onStopped else { return }
        onStopped = nil
        backend.loop.unregister(handlerID)
        Glibc.close(fd)
        done()
    }
}
