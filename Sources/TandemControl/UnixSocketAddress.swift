// UnixSocketAddress: building a sockaddr_un from a path, refusing paths that do not fit
// (a silently truncated path would bind or connect to a different socket).
#if canImport(Glibc)
import Glibc
#endif

public enum UnixSocketAddress {
    /// nil when the path is empty, contains NUL or is longer than sun_path allows.
    public static func make(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        return address
    }

    /// Calls bind or connect with the address as a generic sockaddr.
    public static func withSockaddr<R>(
        _ address: sockaddr_un, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R
    ) -> R {
        var copy = address
        return withUnsafePointer(to: &copy) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
