// ControlServer: the control socket (DESIGN.md "Control socket"). Owns the listening Unix
// socket and one blocking thread per connection; decodes request lines, checks the peer with
// SO_PEERCRED, and hands requests to a ControlHandler. It never touches resources itself and
// never lets a client's bytes crash or stall the daemon: every malformed line gets an error
// reply and the connection stays usable. Blocking I/O is deliberate: this is not the data path.

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

/// `@unchecked Sendable`: the immutable configuration is set in `init`; the descriptors,
/// the connection set and the stopping flag live in `connections` (ConnectionThreads), the
/// access policy behind a Mutex.
public final class ControlServer: @unchecked Sendable {
    /// Longest request line accepted, excluding the newline.
    public static let lineBytesMax = 1 << 20
    /// Concurrent connections served; one more is told `busy` and closed. Each is a thread
    /// that sleeps in recv while its client is quiet, and `status` readers share snapshots
    /// (SnapshotCoalescer), so a few hundred pollers cost the data path nothing per client.
    public static let connectionsMax = 256
    /// Connections one client process (SO_PEERCRED pid) may hold: a client that opens
    /// connections without end takes at most this share, and the others (a `ping`) still
    /// get in.
    public static let connectionsPerProcessMax = 64
    /// A client that does not read its replies for this long is disconnected.
    static let sendTimeoutSeconds = 10

    public let path: String
    public let group: String?
    let handler: any ControlHandler
    let logger: Logger
    let connections: ConnectionThreads
    let policy = Mutex(ControlAccessPolicy(groupID: nil))

    /// The limits are the static ones unless a test sets smaller ones.
    public init(path: String, group: String?, handler: any ControlHandler, logger: Logger,
                connectionsMax: Int = ControlServer.connectionsMax,
                connectionsPerProcessMax: Int = ControlServer.connectionsPerProcessMax) {
        self.path = path
        self.group = group
        self.handler = handler
        self.logger = logger
        connections = ConnectionThreads(
            label: "control", connectionsMax: connectionsMax, perPeerMax: connectionsPerProcessMax,
            peerKey: { Self.peerCredentials($0)?.pid }, logger: logger)
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
        let descriptor = try SocketPath.listen(path, groupID: groupID, backlog: Int32(min(connections.connectionsMax, 1024)))
        policy.withLock { $0 = ControlAccessPolicy(groupID: groupID) }
        logger.info("control socket listening", metadata: ["path": "\(path)", "group": "\(group ?? "-")"])
        let total = connections.connectionsMax, perProcess = connections.perPeerMax
        connections.start(listener: descriptor, serve: { self.runSession($0) }, refuse: { descriptor, reason in
            let error = switch reason {
            case .connectionsMax: ControlError(.busy, "too many control connections (\(total))")
            case .perPeerMax: ControlError(.busy, "too many control connections from this process (\(perProcess))")
            }
            _ = Self.sendAll(descriptor, ControlCodec.encode(.failure(.null, error)))
        })
    }

    /// Stops accepting, disconnects every client, waits (bounded) for their threads, and
    /// removes the socket file.
    public func stop() {
        // Only a server that started owns the socket file.
        guard connections.stop() else { return }
        unlink(path)
        logger.info("control socket closed", metadata: ["path": "\(path)"])
    }
}
