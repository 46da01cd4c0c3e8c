// ConnectionThreads: what the control socket and the metrics endpoint share. Each accepts on
// a blocking socket of its own, off the event loop: one accept thread, one thread per
// connection up to `connectionsMax` (one more gets `refuse` and is closed), every thread
// counted so that `stop()` can wait for all of them, bounded. Descriptors are closed under
// the lock after `serve` returns, and `stop()` shuts them down under the same lock, so a
// number it shuts down is never one already reused.
import Dispatch
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

final class ConnectionThreads: @unchecked Sendable {
    /// Names the threads and the log lines: "control", "metrics".
    let label: String
    let connectionsMax: Int
    let logger: Logger
    private let threads = DispatchGroup()

    private struct State {
        var listenDescriptor: Int32 = -1
        var connections: Set<Int32> = []
        var stopping = false
        var running = false
    }
    private let state = Mutex(State())

    init(label: String, connectionsMax: Int, logger: Logger) {
        self.label = label
        self.connectionsMax = connectionsMax
        self.logger = logger
    }

    /// `stop()` was called: long-running sessions (an event stream) end.
    var isStopping: Bool { state.withLock { $0.stopping } }

    /// Accepts on `listener` from now on: each connection runs `serve` on a thread of its
    /// own and is closed when it returns; one past `connectionsMax` gets `refuse` (a short
    /// answer) and is closed.
    func start(listener: Int32, serve: @escaping @Sendable (Int32) -> Void,
               refuse: @escaping @Sendable (Int32) -> Void) {
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
            for descriptor in current.connections { shutdown(descriptor, Int32(SHUT_RDWR)) }
            return true
        }
        guard started else { return false }
        if threads.wait(timeout: .now() + 5) == .timedOut {
            logger.warning("\(label) threads did not finish within 5 s")
        }
        return true
    }

    private func acceptLoop(_ listener: Int32, serve: @escaping @Sendable (Int32) -> Void,
                            refuse: @escaping @Sendable (Int32) -> Void) {
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
            enum Admission { case admitted, busy, stopping }
            let admission = state.withLock { current -> Admission in
                if current.stopping { return .stopping }
                guard current.connections.count < connectionsMax else { return .busy }
                current.connections.insert(descriptor)
                return .admitted
            }
            switch admission {
            case .admitted:
                spawn(name: "tandem-\(label)-conn") {
                    serve(descriptor)
                    self.state.withLock { current in
                        current.connections.remove(descriptor)
                        close(descriptor)
                    }
                }
            case .busy:
                refuse(descriptor)
                close(descriptor)
            case .stopping:
                close(descriptor)
                return
            }
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
            body()
            threads.leave()
        }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }
}
