// ConnectionThreads: what the control socket and the metrics endpoint share. Each accepts on
// a blocking socket of its own, off the event loop: one accept thread, one thread per
// connection up to `connectionsMax`, and at most `perPeerMax` of them for one peer process
// when `peerKey` names it (one more gets `refuse` on a thread of its own, and past
// `refusalsMax` of those is closed unanswered), every thread counted so that `stop()` can
// wait for all of them, bounded. Connection threads run at a lower CPU priority
// (`connectionNice`) than the event loop: a storm of clients competes with itself, not
// with the data path. Descriptors are closed under
// the lock after `serve` returns, and `stop()` shuts them down under the same lock, so a
// number it shuts down is never one already reused.
import CShims
import Dispatch
import Foundation
import Logging
import Synchronization
import TandemIO

#if canImport(Glibc)
import Glibc
#endif

final class ConnectionThreads: @unchecked Sendable {
    /// Names the threads and the log lines: "control", "metrics".
    let label: String
    let connectionsMax: Int
    /// Connections one peer process may hold (those `peerKey` names); `connectionsMax` when
    /// there is no key, so that one client cannot take every slot from the others.
    let perPeerMax: Int
    /// The peer process of a new connection (SO_PEERCRED's pid), nil when unknown.
    let peerKey: (@Sendable (Int32) -> Int32?)?
    let logger: Logger
    private let threads = DispatchGroup()

    /// Refusals answered at once, each on a thread of its own while it lingers; one more
    /// is closed unanswered (see `refuseAndLinger`).
    static let refusalsMax = 4
    /// How long a refused client may go on sending after the answer before it is closed.
    static let refusalLingerMs = 1000
    /// What a refused client may send after the answer before it is closed.
    static let refusalLingerBytesMax = 1 << 16
    /// The nice value of connection and refusal threads; the loop runs at the process's own
    /// (0 by default), so the scheduler gives it ten times their weight when both want a core.
    static let connectionNice: Int32 = 10

    /// Why a connection was refused.
    enum Refusal: Sendable { case connectionsMax, perPeerMax }

    private struct State {
        var listenDescriptor: Int32 = -1
        var connections: Set<Int32> = []
        /// Open connections per peer process, and each connection's peer.
        var peerConnections: [Int32: Int] = [:]
        var peers: [Int32: Int32] = [:]
        var refusals: Set<Int32> = []
        var stopping = false
        var running = false
    }
    private let state = Mutex(State())

    init(label: String, connectionsMax: Int, perPeerMax: Int? = nil,
         peerKey: (@Sendable (Int32) -> Int32?)? = nil, logger: Logger) {
        precondition(connectionsMax > 0 && (perPeerMax ?? 1) > 0)
        self.label = label
        self.connectionsMax = connectionsMax
        self.perPeerMax = perPeerMax ?? connectionsMax
        self.peerKey = peerKey
        self.logger = logger
    }

    /// `stop()` was called: long-running sessions (an event stream) end.
    var isStopping: Bool { state.withLock { $0.stopping } }

    /// Accepts on `listener` from now on: each connection runs `serve` on a thread of its
    /// own and is closed when it returns; one past `connectionsMax`, or past `perPeerMax` for
    /// its peer, gets `refuse` (a short answer, told which limit) and is closed.
    func start(listener: Int32, serve: @escaping @Sendable (Int32) -> Void,
               refuse: @escaping @Sendable (Int32, Refusal) -> Void) {
        state.withLock {
            $0.listenDescriptor = listener
            $0.stopping = false
            $0.running = true
        }
        spawn(name: "tandem-\(label)-accept") { self.acceptLoop(listener, serve: serve, refuse: refuse) }
    }

    /// Stops accepting, shuts every connection down and waits (bounded) for the threads.
    /// False when it was not running.
    @discardableResult
    func stop() -> Bool {
        let started = state.withLock { current in
            defer {
                current.stopping = true
                current.running = false
            }
            guard current.running else { return false }
            if current.listenDescriptor >= 0 { shutdown(current.listenDescriptor, Int32(SHUT_RDWR)) }
            for descriptor in current.connections.union(current.refusals) { shutdown(descriptor, Int32(SHUT_RDWR)) }
            return true
        }
        guard started else { return false }
        if threads.wait(timeout: .now() + 5) == .timedOut {
            logger.warning("\(label) threads did not finish within 5 s")
        }
        return true
    }

    private func acceptLoop(_ listener: Int32, serve: @escaping @Sendable (Int32) -> Void,
                            refuse: @escaping @Sendable (Int32, Refusal) -> Void) {
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
                if isStopping || !acceptFailureIsTransient(code) { return }
                continue
            }
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            let peer = peerKey?(descriptor)
            switch admit(descriptor, peer: peer) {
            case .admitted:
                spawn(name: "tandem-\(label)-conn") {
                    serve(descriptor)
                    self.state.withLock { current in
                        current.connections.remove(descriptor)
                        if let peer = current.peers.removeValue(forKey: descriptor) {
                            current.peerConnections[peer, default: 1] -= 1
                            if current.peerConnections[peer] == 0 { current.peerConnections.removeValue(forKey: peer) }
                        }
                        close(descriptor)
                    }
                }
            case .refused(let reason):
                spawn(name: "tandem-\(label)-refuse") {
                    self.refuseAndLinger(descriptor) { refuse($0, reason) }
                    self.state.withLock { current in
                        current.refusals.remove(descriptor)
                        close(descriptor)
                    }
                }
            case .busy:
                close(descriptor)
            case .stopping:
                close(descriptor)
                return
            }
        }
    }

    private enum Admission { case admitted, refused(Refusal), busy, stopping }

    /// Counts a new connection in, or says why not: past `connectionsMax`, or past
    /// `perPeerMax` for its peer.
    private func admit(_ descriptor: Int32, peer: Int32?) -> Admission {
        state.withLock { current -> Admission in
            if current.stopping { return .stopping }
            var refusal: Refusal?
            if current.connections.count >= connectionsMax {
                refusal = .connectionsMax
            } else if let peer, current.peerConnections[peer, default: 0] >= perPeerMax {
                refusal = .perPeerMax
            }
            if let refusal {
                guard current.refusals.count < Self.refusalsMax else { return .busy }
                current.refusals.insert(descriptor)
                return .refused(refusal)
            }
            current.connections.insert(descriptor)
            if let peer {
                current.peers[descriptor] = peer
                current.peerConnections[peer, default: 0] += 1
            }
            return .admitted
        }
    }

    /// Answers a connection past the limit, then lingers: closing with input unread (the
    /// request, or what a slow client still sends) makes the kernel reset the connection,
    /// and the client sees a reset instead of the answer, or fails to send the rest of its
    /// request and never reads it. So the answer is followed by a shutdown of the sending
    /// side, and the client's bytes are read and dropped until it closes, bounded by
    /// `refusalLingerMs` and `refusalLingerBytesMax`.
    private func refuseAndLinger(_ descriptor: Int32, _ refuse: (Int32) -> Void) {
        refuse(descriptor)
        shutdown(descriptor, Int32(SHUT_WR))
        Self.discardInput(descriptor, bytesMax: Self.refusalLingerBytesMax, timeoutMs: Self.refusalLingerMs)
    }

    /// Reads and drops what the client sends until it closes, `bytesMax` arrived or
    /// `timeoutMs` passed.
    static func discardInput(_ descriptor: Int32, bytesMax: Int, timeoutMs: Int) {
        var scratch = [UInt8](repeating: 0, count: 4096)
        var discarded = 0
        let deadline = MonotonicClock.nowNs() + UInt64(timeoutMs) * 1_000_000
        while discarded < bytesMax {
            let now = MonotonicClock.nowNs()
            guard now < deadline else { return }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32((deadline - now) / 1_000_000) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return }
            let count = scratch.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard count > 0 else { return }
            discarded += count
        }
    }

    /// Decides every errno accept can return: retry, back off, or give up on the socket.
    private func acceptFailureIsTransient(_ code: Int32) -> Bool {
        switch code {
        case EINTR, ECONNABORTED, EAGAIN, EPROTO, EPERM:
            return true
        case EMFILE, ENFILE, ENOBUFS, ENOMEM:
            logger.warning("\(label) accept failed, backing off", metadata: ["errno": "\(code)"])
            usleep(100_000)
            return true
        default:
            logger.error("\(label) socket failed, no longer accepting", metadata: ["errno": "\(code)"])
            return false
        }
    }

    /// Runs `body` on a new thread named `name`, counted until it returns.
    private func spawn(name: String, _ body: @escaping @Sendable () -> Void) {
        threads.enter()
        let thread = Thread { [threads] in
            // Best effort: a thread left at the loop's priority still works.
            _ = tandem_set_thread_nice(Self.connectionNice)
            body()
            threads.leave()
        }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }
}
