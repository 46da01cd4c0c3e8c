// SocketPath: creating a listening Unix socket at a path: parent directory, stale-socket
// removal (never of a live socket or a non-socket file), bind, mode 0660, group ownership.
import TandemControl

#if canImport(Glibc)
import Glibc
#endif

enum SocketPath {
    /// Creates missing parent directories (0755) and removes a stale socket left by a crash.
    static func prepare(_ path: String) throws(ControlServerError) {
        guard UnixSocketAddress.make(path) != nil, path.hasPrefix("/") else {
            throw ControlServerError("control socket path '\(path)' must be absolute and at most 107 bytes")
        }
        try makeDirectories(parentOf: path)
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ControlServerError("'\(path)' exists and is not a socket; refusing to replace it")
        }
        if isLive(path) {
            throw ControlServerError("control socket '\(path)' is in use by a running daemon")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw ControlServerError("cannot remove stale socket '\(path)': \(String(cString: strerror(errno)))")
        }
    }

    static func makeDirectories(parentOf path: String) throws(ControlServerError) {
        var prefix = ""
        for component in path.split(separator: "/").dropLast() {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0, errno != EEXIST {
                throw ControlServerError("cannot create directory '\(prefix)': \(String(cString: strerror(errno)))")
            }
        }
    }

    /// True when something accepts connections at `path`.
    static func isLive(_ path: String) -> Bool {
        guard let address = UnixSocketAddress.make(path) else { return false }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        return UnixSocketAddress.withSockaddr(address) { connect(descriptor, $0, $1) } == 0
    }

    static func listen(_ path: String, groupID: UInt32?, backlog: Int32) throws(ControlServerError) -> Int32 {
        guard let address = UnixSocketAddress.make(path) else {
            throw ControlServerError("control socket path '\(path)' is too long")
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw failure("socket", path) }
        // Bind with a restrictive umask so the socket is never briefly world-accessible.
        let previousMask = umask(0o177)
        let bound = UnixSocketAddress.withSockaddr(address) { bind(descriptor, $0, $1) }
        umask(previousMask)
        guard bound == 0 else {
            let error = failure("bind", path)
            close(descriptor)
            throw error
        }
        do throws(ControlServerError) {
            if let groupID, chown(path, uid_t.max, groupID) != 0 { throw failure("chown", path) }
            guard chmod(path, 0o660) == 0 else { throw failure("chmod", path) }
            guard Glibc.listen(descriptor, backlog) == 0 else { throw failure("listen", path) }
        } catch {
            close(descriptor)
            unlink(path)
            throw error
        }
        return descriptor
    }

    static func failure(_ call: String, _ path: String) -> ControlServerError {
        ControlServerError("\(call) on control socket '\(path)' failed: \(String(cString: strerror(errno)))")
    }
}
