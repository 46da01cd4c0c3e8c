// TCPEnd: a blocking loopback TCP socket (a listener or one connected end) with bounded
// reads, for the proxy's own tests.
import Foundation

/// A blocking loopback TCP socket for the proxy's tests: a listener or one connected end.
/// Sendable so a test can send from one thread and read on another (send and recv on one
/// socket from two threads is safe).
final class TCPEnd: @unchecked Sendable {
    let fd: Int32
    let port: Int
    var address: String { "127.0.0.1:\(port)" }

    private init(fd: Int32, port: Int) {
        self.fd = fd
        self.port = port
    }

    deinit { close(fd) }

    static func listening() throws -> TCPEnd {
        let port = try ReplicatedPair.freePort()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = LinkProxy.Engine.loopback(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            close(fd)
            throw HarnessError("listen on \(port): errno \(errno)")
        }
        return TCPEnd(fd: fd, port: port)
    }

    static func connected(to port: Int) throws -> TCPEnd {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = LinkProxy.Engine.loopback(port: port)
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(fd)
            throw HarnessError("connect to \(port): errno \(errno)")
        }
        return TCPEnd(fd: fd, port: port)
    }

    /// True when `events` arrive on the socket within the time.
    private func ready(_ events: Int32, timeoutSeconds: Double) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
        return poll(&entry, 1, Int32(timeoutSeconds * 1000)) > 0
    }

    func pendingConnection(timeoutSeconds: Double) -> Bool { ready(POLLIN, timeoutSeconds: timeoutSeconds) }
    func pendingBytes(timeoutSeconds: Double) -> Bool { ready(POLLIN, timeoutSeconds: timeoutSeconds) }

    func accept(timeoutSeconds: Double) throws -> TCPEnd {
        guard ready(POLLIN, timeoutSeconds: timeoutSeconds) else { throw HarnessError("no connection within \(timeoutSeconds) s") }
        let client = LinkProxy.Engine.acceptCloseOnExec(fd)
        guard client >= 0 else { throw HarnessError("accept: errno \(errno)") }
        return TCPEnd(fd: client, port: port)
    }

    func sendAll(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw HarnessError("send: errno \(errno) after \(sent) bytes") }
            sent += count
        }
    }

    /// Reads what is there (at least one byte, at most `limit`); throws on the end or the timeout.
    func readSome(upTo limit: Int, timeoutSeconds: Double) throws -> Int {
        guard ready(POLLIN, timeoutSeconds: timeoutSeconds) else { throw HarnessError("nothing to read within \(timeoutSeconds) s") }
        var scratch = [UInt8](repeating: 0, count: min(limit, 256 << 10))
        let count = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { throw HarnessError("read: \(count < 0 ? "errno \(errno)" : "end of stream")") }
        return count
    }

    func readExactly(_ count: Int, timeoutSeconds: Double) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var bytes: [UInt8] = []
        var scratch = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count < count {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, ready(POLLIN, timeoutSeconds: left) else {
                throw HarnessError("read \(bytes.count) of \(count) bytes in \(timeoutSeconds) s")
            }
            let got = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - bytes.count), 0) }
            guard got > 0 else { throw HarnessError("stream ended after \(bytes.count) of \(count) bytes") }
            bytes += scratch[0..<got]
        }
        return bytes
    }

    /// Reads and drops until the end of the stream (0) or an error (a reset); false when the
    /// stream is still open after the timeout.
    func readUntilEnd(timeoutSeconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var scratch = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, ready(POLLIN, timeoutSeconds: left) else { return false }
            let got = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if got < 0 && errno == EINTR { continue }
            if got <= 0 { return true }
        }
    }
}
