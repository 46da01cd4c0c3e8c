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
    private var stopping = false
    private var onStopped: (() -> Void)?
    private static let acceptTag: UInt32 = 1
    private static let cancelTag: UInt32 = 2

    public init(fd: Int32, description: String, backend: NBDExportBackend, maxRequestsPerConnection: Int, logger: Logger) {
        self.fd = fd
        self.description = description
        self.backend = backend
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.logger = logger
    }

    public func start() {
        handlerID = backend.loop.register(self)
        armAccept()
    }

    /// Stops accepting and closes every connection of this listener's export; `done` runs
    /// on the loop once nothing is in flight any more.
    public func stop(_ done: @escaping () -> Void) {
        stopping = true
        onStopped = done
        if accepting {
            let sqe = backend.loop.sqe(handler: handlerID, tag: Self.cancelTag)
            io_uring_prep_cancel64(sqe, packedAcceptUserData, 0)
        }
        for connection in Array(backend.connections.values) where connection.listener === self {
            connection.close("export is being removed")
        }
        finishStopIfIdle()
    }

    private var packedAcceptUserData: UInt64 { UInt64(handlerID) << 32 | UInt64(Self.acceptTag) }

    private func armAccept() {
        guard !stopping else { return }
        let sqe = backend.loop.sqe(handler: handlerID, tag: Self.acceptTag)
        io_uring_prep_accept(sqe, fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        accepting = true
    }

    public func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        if tag == Self.cancelTag { return }
        accepting = false
        if result >= 0 {
            if stopping { Glibc.close(result) } else { adopt(result) }
        } else if result != -ECANCELED && result != -EINTR && result != -EAGAIN && result != -ECONNABORTED {
            logger.warning("accept failed", metadata: ["listener": "\(description)", "errno": "\(-result)"])
        }
        if stopping { finishStopIfIdle() } else { armAccept() }
    }

    private func adopt(_ clientFD: Int32) {
        // Latency and throughput, not correctness: the client is served either way.
        do throws(IOError) {
            try Sockets.setNoDelay(clientFD)
            try Sockets.setBufferSizes(clientFD, bytes: 4 << 20)
        } catch {
            logger.warning("NBD client socket options", metadata: ["listener": "\(description)", "error": "\(error)"])
        }
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

    private func finishStopIfIdle() {
        guard stopping, !accepting else { return }
        guard !backend.connections.values.contains(where: { $0.listener === self }) else { return }
        guard let done = onStopped else { return }
        onStopped = nil
        backend.loop.unregister(handlerID)
        Glibc.close(fd)
        done()
    }
}
