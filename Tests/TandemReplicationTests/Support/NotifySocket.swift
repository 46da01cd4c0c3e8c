// NotifySocket: the listening end of the systemd notification protocol. tandemd sends
// "READY=1" (and later WATCHDOG=1, STATUS=...) as datagrams to $NOTIFY_SOCKET; the harness
// waits for READY=1 instead of guessing how long start-up takes.
import Foundation

final class NotifySocket {
    let path: String
    private let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("notify socket: errno \(errno)") }
        unlink(path)
        let status = withUnixAddress(path) { bind(fd, $0, $1) }
        guard status == 0 else {
            close(fd)
            throw HarnessError("bind \(path): errno \(errno)")
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Waits up to `timeoutMs` for one datagram; nil when none arrived in time.
    func receive(timeoutMs: Int32) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMs) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }
}

/// Calls `body` with a sockaddr_un for `path`.
func withUnixAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    precondition(bytes.count < MemoryLayout.size(ofValue: address.sun_path), "socket path too long: \(path)")
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
}
