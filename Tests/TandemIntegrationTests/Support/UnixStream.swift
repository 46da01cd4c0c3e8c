// UnixStream: a blocking Unix stream socket (or a loopback TCP one) with send and receive
// timeouts, for the control client and the raw NBD client. Sends use MSG_NOSIGNAL so a peer that hangs up yields
// EPIPE, never a SIGPIPE that would kill the test runner.
import Foundation

final class UnixStream {
    enum ReadOutcome: Equatable { case data, closed, timedOut }

    let fd: Int32
    private(set) var isClosed = false

    init(path: String, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        let status = withUnixAddress(path) { connect(fd, $0, $1) }
        guard status == 0 else {
            let code = errno
            close(fd)
            throw HarnessError("connect \(path): errno \(code)")
        }
        setTimeouts(seconds: timeoutSeconds)
    }

    /// The same blocking stream over TCP to 127.0.0.1:`tcpPort` (an export's `nbd.tcp`).
    init(tcpPort: Int, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        var address = LinkProxy.Engine.loopback(port: tcpPort)
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            let code = errno
            close(fd)
            throw HarnessError("connect to 127.0.0.1:\(tcpPort): errno \(code)")
        }
        setTimeouts(seconds: timeoutSeconds)
    }

    deinit { closeNow() }

    func setTimeouts(seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func closeNow() {
        guard !isClosed else { return }
        isClosed = true
        close(fd)
    }

    /// Sends all of `bytes`; throws on error or when the peer stops reading past the timeout.
    func sendAll(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw HarnessError("send: errno \(errno) after \(sent) of \(bytes.count) bytes")
            }
            sent += count
        }
    }

    /// Sends as much of `bytes` as the peer takes before the send timeout; returns the count.
    func sendUntilBlocked(_ bytes: [UInt8]) -> Int {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count < 0 {
                if errno == EINTR { continue }
                return sent
            }
            sent += count
        }
        return sent
    }

    /// Reads exactly `count` bytes; `.closed` on EOF or reset, `.timedOut` on the timeout.
    func readExact(_ count: Int) -> (ReadOutcome, [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = buffer[filled...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if got == 0 { return (.closed, Array(buffer[..<filled])) }
            if got < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return (.timedOut, Array(buffer[..<filled])) }
                return (.closed, Array(buffer[..<filled]))
            }
            filled += got
        }
        return (.data, buffer)
    }

    /// Reads whatever arrives next (at most `limit` bytes).
    func readSome(limit: Int = 65536) -> (ReadOutcome, [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: limit)
        while true {
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if got == 0 { return (.closed, []) }
            if got < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return (.timedOut, []) }
                return (.closed, [])
            }
            return (.data, Array(buffer[..<got]))
        }
    }

    /// Waits until the peer closes, discarding anything it still sends. True when it closed
    /// within the timeout.
    func awaitPeerClose() -> Bool {
        for _ in 0..<10_000 {
            switch readSome().0 {
            case .closed: return true
            case .timedOut: return false
            case .data: continue
            }
        }
        return false
    }
}
