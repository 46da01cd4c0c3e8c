// ControlServer: the control socket (DESIGN.md "Control socket"). Owns the listening Unix
// socket and one blocking thread per connection; decodes request lines, checks the peer with
// SO_PEERCRED, and hands requests to a ControlHandler. It never touches resources itself and
// never lets a client's bytes crash or stall the daemon: every malformed line gets an error
// reply and the connection stays usable. Blocking I/O is deliberate: this is not the data path.

import Dispatch
import Foundation
import Logging
import Synchronization
import TandemControl

#if canImport(Glibc)
import Glibc
#endif

/// Executes control requests. Called concurrently from connection threads, hence Sendable:
/// implementations synchronise their own state.
public protocol ControlHandler: AnyObject, Sendable {
    func handle(_ request: ControlRequest, credentials: PeerCredentials) -> ControlReply

    /// `events`: runs on the connection's thread and sends each reply line with `emit`, which
    /// returns false once the client is gone or the server is stopping; return then. The
    /// default answers once with `handle`, so handlers without a stream need not implement it.
    func stream(
        _ request: ControlRequest, credentials: PeerCredentials, emit: (ControlReply) -> Bool)
}

extension ControlHandler {
    public func stream(
        _ request: ControlRequest, credentials: PeerCredentials, emit: (ControlReply) -> Bool
    ) {
        _ = emit(handle(request, credentials: credentials))
    }
}

public struct ControlServerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// `@unchecked Sendable`: the immutable configuration is set in `init`; everything mutable
/// (descriptors, the connection set, the stopping flag, the access policy) lives in `state`
/// behind a Mutex. Connection threads own their descriptor and are the only ones to close it;
/// `stop()` only shuts descriptors down to wake the blocked threads.
public final class ControlServer: @unchecked Sendable, ConnectionThreads {
    /// Longest request line accepted, excluding the newline.
    public static let lineBytesMax = 1 << 20
    /// Concurrent connections served; one more is told `busy` and closed.
    public static let connectionsMax = 64
    /// A client that does not read its replies for this long is disconnected.
    static let sendTimeoutSeconds = 10

    public let path: String
    public let group: String?
    let handler: any ControlHandler
    let logger: Logger
    let threads = DispatchGroup()

    struct State {
        var listenDescriptor: Int32 = -1
        var connections: Set<Int32> = []
        var stopping = false
        /// Between a successful start() and stop(): the socket file is ours to remove.
        var running = false
        var policy = ControlAccessPolicy(groupID: nil)
    }
    let state = Mutex(State())

    public init(path: String, group: String?, handler: any ControlHandler, logger: Logger) {
        self.path = path
        self.group = group
        self.handler = handler
        self.logger = logger
    }

    /// Creates the socket (mode 0660, group-owned when a group is configured) and starts
    /// accepting. Throws when the group is unknown or the path is in use by a live daemon.
    public func start() throws(ControlServerError) {
        var groupID: UInt32? = nil
        if let group {
            guard let id = ControlAccessPolicy.groupID(named: group) else {
                throw ControlServerError("control group '\(group)' does not exist")
            }
            groupID = id
        }
        try SocketPath.prepare(path)
        let descriptor = try SocketPath.listen(path, groupID: groupID, backlog: Int32(Self.connectionsMax))
        state.withLock {
            $0.listenDescriptor = descriptor
            $0.stopping = false
            $0.running = true
            $0.policy = ControlAccessPolicy(groupID: groupID)
        }
        logger.info("control socket listening", metadata: ["path": "\(path)", "group": "\(group ?? "-")"])
        spawn(name: "tandem-control-accept") { self.acceptLoop(descriptor) }
    }

    /// Stops accepting, disconnects every client, waits (bounded) for their threads, and
    /// removes the socket file.
    public func stop() {
        // Shut descriptors down under the lock: a connection thread closes its descriptor
        // under the same lock, so a number shut down here is never one already reused.
        let started = state.withLock { current in
            defer {
                current.stopping = true
                current.running = false
            }
            guard current.running else { return false }
            if current.listenDescriptor >= 0 { shutdown(current.listenDescriptor, Int32(SHUT_RDWR)) }
            for descriptor in current.connections { shutdown(descriptor, Int32(SHUT_RDWR)) }
            return true
        }
        guard started else { return }
        if threads.wait(timeout: .now() + 5) == .timedOut {
            logger.warning("control threads did not finish within 5 s")
        }
        unlink(path)
        logger.info("control socket closed", metadata: ["path": "\(path)"])
    }

    func acceptLoop(_ listener: Int32) {
        defer {
            state.withLock { current in
                close(listener)
                current.listenDescriptor = -1
            }
        }
        while true {
            let descriptor = accept(listener, nil, nil)
            guard descriptor >= 0 else {
                let code = errno
                if state.withLock({ $0.stopping }) || !acceptFailureIsTransient(code) { return }
                continue
            }
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            guard admit(descriptor) else { return }
        }
    }

    /// Decides every errno accept can return: retry, back off, or give up on the socket.
    func acceptFailureIsTransient(_ code: Int32) -> Bool {
        switch code {
        case EINTR, ECONNABORTED, EAGAIN, EPROTO, EPERM:
            return true
        case EMFILE, ENFILE, ENOBUFS, ENOMEM:
            logger.warning("control accept failed, backing off", metadata: ["errno": "\(code)"])
            usleep(100_000)
            return true
        default:
            logger.error("control socket failed, no longer accepting", metadata: ["errno": "\(code)"])
            return false
        }
    }

    /// Registers and serves a new connection; false when the server is stopping.
    func admit(_ descriptor: Int32) -> Bool {
        enum Admission { case admitted, busy, stopping }
        let admission = state.withLock { current -> Admission in
            if current.stopping { return .stopping }
            guard current.connections.count < Self.connectionsMax else { return .busy }
            current.connections.insert(descriptor)
            return .admitted
        }
        switch admission {
        case .admitted:
            spawn(name: "tandem-control-conn") { self.runSession(descriptor) }
            return true
        case .busy:
            let error = ControlError(.busy, "too many control connections (\(Self.connectionsMax))")
            _ = Self.sendAll(descriptor, ControlCodec.encode(.failure(.null, error)))
            close(descriptor)
            return true
        case .stopping:
            close(descriptor)
            return false
        }
    }
}
