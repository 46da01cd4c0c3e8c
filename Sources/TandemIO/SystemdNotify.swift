// SystemdNotify: the sd_notify datagram protocol ($NOTIFY_SOCKET), without libsystemd.
import Glibc

public struct SystemdNotify: Sendable {
    let path: String?
    /// Interval at which systemd expects WATCHDOG=1, if it asked for one.
    public let watchdogIntervalNs: UInt64?

    public init(environment: [String: String]) {
        path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        watchdogIntervalNs = environment["WATCHDOG_USEC"].flatMap(UInt64.init).map { $0 * 1000 }
    }

    public static func fromProcessEnvironment() -> SystemdNotify {
        var environment: [String: String] = [:]
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC"] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        return SystemdNotify(environment: environment)
    }

    /// Sends `state` (e.g. "READY=1"); silently nothing when not run under systemd.
    @discardableResult
    public func send(_ state: String) -> Bool {
        guard let path else { return false }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            if bytes.first == UInt8(ascii: "@") { raw[0] = 0 }  // abstract namespace
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let sent = state.utf8CString.withUnsafeBufferPointer { text in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, text.baseAddress, text.count - 1, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        return sent >= 0
    }
}
