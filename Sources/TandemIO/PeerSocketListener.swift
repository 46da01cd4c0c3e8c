// PeerSocketListener: accepts replication connections on the daemon's `listen` address
// through the ring and hands each accepted fd to its owner. Loop thread only.
import Glibc
import CURing

public final class PeerSocketListener: IOHandler {
    public let loop: EventLoop
    let fd: Int32
    private var handlerID: UInt32 = 0
    private var stopping = false
    private let onAccept: (Int32) -> Void
    private let onError: (String) -> Void
    private static let acceptTag: UInt32 = 1
    private static let cancelTag: UInt32 = 2

    /// `bindPatienceNs`, `waiting`: how long an address in use is tried again, and what says so
    /// (`Sockets.listenTCP(address:backlog:patienceNs:waiting:)`).
    public init(loop: EventLoop, address: String, bindPatienceNs: UInt64 = 0, waiting: (IOError) -> Void = { _ in },
                onAccept: @escaping (Int32) -> Void, onError: @escaping (String) -> Void) throws(IOError) {
        self.loop = loop
        fd = try Sockets.listenTCP(address: address, patienceNs: bindPatienceNs, waiting: waiting)
        self.onAccept = onAccept
        self.onError = onError
        handlerID = loop.register(self)
        armAccept()
    }

    public func stop() {
        guard !stopping else { return }
        stopping = true
        let sqe = loop.sqe(handler: handlerID, tag: Self.cancelTag)
        io_uring_prep_cancel64(sqe, UInt64(handlerID) << 32 | UInt64(Self.acceptTag), 0)
    }

    private func armAccept() {
        let sqe = loop.sqe(handler: handlerID, tag: Self.acceptTag)
        io_uring_prep_accept(sqe, fd, nil, nil, Sockets.acceptFlags)
    }

    public func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        if tag == Self.cancelTag { return }
        if stopping {
            if result >= 0 { Glibc.close(result) }
            Glibc.close(fd)
            loop.unregister(handlerID)
            return
        }
        if result >= 0 {
            onAccept(result)
        } else if result != -EINTR && result != -EAGAIN && result != -ECONNABORTED {
            onError("accept failed: \(String(cString: strerror(-result)))")
        }
        armAccept()
    }
}
