// Sockets: listening sockets for the NBD front end and the peer link. Setup only; the data
// moves on the ring.
import Glibc
import Synchronization

public enum Sockets {
    /// setsockopt calls that failed in this process, from any thread (metrics:
    /// tandem_socket_option_failures_total). Each failure is also thrown to its caller, which
    /// logs it or refuses the socket. The EPERM of SO_*BUFFORCE without CAP_NET_ADMIN, which
    /// falls back by design, is not counted.
    public static let optionFailureCount = Atomic<UInt64>(0)

    /// A listening Unix stream socket at `path`, replacing a stale socket file.
    public static func listenUnix(path: String, mode: mode_t = 0o660, groupID: gid_t? = nil, backlog: Int32 = 128) throws(IOError) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else { throw IOError(errno: ENAMETOOLONG, "socket path \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw IOError(errno: EEXIST, "\(path) exists and is not a socket") }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errno: errno, "socket") }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { let code = errno; Glibc.close(fd); throw IOError(errno: code, "bind \(path)") }
        chmod(path, mode)
        if let groupID, chown(path, uid_t.max, groupID) != 0 {
            let code = errno
            Glibc.close(fd)
            throw IOError(errno: code, "chown \(path) to group \(groupID)")
        }
        guard listen(fd, backlog) == 0 else { let code = errno; Glibc.close(fd); throw IOError(errno: code, "listen \(path)") }
        return fd
    }

    /// A listening TCP socket on "host:port" (IPv4 dotted quad, "[v6]:port", or "*:port").
    public static func listenTCP(address text: String, backlog: Int32 = 128) throws(IOError) -> Int32 {
        guard let (family, storage, length) = parse(address: text) else {
            throw IOError(errno: EINVAL, "bad listen address '\(text)' (want host:port)")
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errno: errno, "socket") }
        // Without SO_REUSEADDR a restarted daemon cannot bind while old connections linger
        // in TIME_WAIT, so a failure here fails the listener rather than a later restart.
        do throws(IOError) { try setOption(fd, SOL_SOCKET, SO_REUSEADDR, Int32(1), "SO_REUSEADDR") } catch {
            Glibc.close(fd)
            throw error
        }
        var copy = storage
        let rc = withUnsafePointer(to: &copy) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard rc == 0 else { let code = errno; Glibc.close(fd); throw IOError(errno: code, "bind \(text)") }
        guard listen(fd, backlog) == 0 else { let code = errno; Glibc.close(fd); throw IOError(errno: code, "listen \(text)") }
        return fd
    }

    /// `listenTCP`, tried again every 50 ms while the address is in use, for up to `patienceNs`
    /// (0: once). A daemon restarted at once after a kill -9 can find its own dead listener
    /// still bound: the kernel cancels the io_uring accept that holds it in a worker after the
    /// process is gone, so the port is free a moment later. `waiting` is called once, before the
    /// first retry, so the start says why it pauses; a port a live process holds still fails,
    /// after the wait, with the bind's error.
    public static func listenTCP(address text: String, backlog: Int32 = 128, patienceNs: UInt64,
                                 waiting: (IOError) -> Void) throws(IOError) -> Int32 {
        let deadlineNs = MonotonicClock.nowNs() + patienceNs
        var announced = false
        while true {
            do throws(IOError) { return try listenTCP(address: text, backlog: backlog) } catch {
                guard error.errno == EADDRINUSE, MonotonicClock.nowNs() < deadlineNs else { throw error }
                if !announced { waiting(error) }
                announced = true
                usleep(50_000)
            }
        }
    }

    /// Socket buffers large enough for a few maximum-size replies, so that a 1 MiB read
    /// reply goes out in one send instead of several partial ones. SO_*BUFFORCE passes
    /// net.core.[rw]mem_max when the daemon has CAP_NET_ADMIN; otherwise the capped value.
    /// The FORCE variants fail with EPERM without the capability, which is expected and
    /// falls back; any other failure, or one of the fallback, is thrown.
    public static func setBufferSizes(_ fd: Int32, bytes: Int32) throws(IOError) {
        let pairs = [(SO_SNDBUFFORCE, SO_SNDBUF, "SO_SNDBUF"), (SO_RCVBUFFORCE, SO_RCVBUF, "SO_RCVBUF")]
        for (forced, plain, name) in pairs {
            do throws(IOError) { try attemptOption(fd, SOL_SOCKET, forced, bytes, name + "FORCE") } catch {
                guard error.errno == EPERM else {
                    optionFailureCount.add(1, ordering: .relaxed)
                    throw error
                }
                try setOption(fd, SOL_SOCKET, plain, bytes, name)
            }
        }
    }

    /// setsockopt with `value`, or the errno thrown as "setsockopt NAME" (and counted in
    /// `optionFailureCount`).
    public static func setOption<Value>(_ fd: Int32, _ level: Int32, _ option: Int32, _ value: Value, _ name: String)
        throws(IOError)
    {
        do throws(IOError) { try attemptOption(fd, level, option, value, name) } catch {
            optionFailureCount.add(1, ordering: .relaxed)
            throw error
        }
    }

    /// setsockopt, not counted: for an attempt with a fallback.
    private static func attemptOption<Value>(_ fd: Int32, _ level: Int32, _ option: Int32, _ value: Value, _ name: String)
        throws(IOError)
    {
        var copy = value
        let rc = setsockopt(fd, level, option, &copy, socklen_t(MemoryLayout<Value>.size))
        guard rc == 0 else { throw IOError(errno: errno, "setsockopt \(name)") }
    }

    /// SOCK_CLOEXEC, for accept on the ring. (Files that import CURing must not name the
    /// SOCK_* constants themselves: in a whole-module build the first importer owns them.)
    public static let acceptFlags = Int32(SOCK_CLOEXEC.rawValue)
    /// MSG_NOSIGNAL, for sends on the ring (same reason).
    public static let sendFlags = Int32(MSG_NOSIGNAL)
    /// MSG_NOSIGNAL | MSG_DONTWAIT, for a send(2) straight from the loop thread, which must
    /// never block it: a full socket buffer answers EAGAIN and the ring takes over.
    public static let directSendFlags = Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)

    public static func shutdownBoth(_ fd: Int32) { _ = shutdown(fd, Int32(SHUT_RDWR)) }

    /// A new TCP socket of `family` (AF_INET, AF_INET6) for connecting, close-on-exec.
    public static func streamSocket(family: Int32) throws(IOError) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errno: errno, "socket") }
        return fd
    }

    public static func setNoDelay(_ fd: Int32) throws(IOError) {
        try setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, Int32(1), "TCP_NODELAY")
    }

    /// Whether `fd` is an IPv4 or IPv6 socket (TCP options apply), not a Unix one (they fail
    /// with EOPNOTSUPP there). False when the address cannot be read.
    public static func isInternet(_ fd: Int32) -> Bool {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { return false }
        return Int32(storage.ss_family) == AF_INET || Int32(storage.ss_family) == AF_INET6
    }

    /// Parses "host:port"; host may be an IPv4 address, "[IPv6]", "*" or "localhost".
    public static func parse(address text: String) -> (Int32, sockaddr_storage, socklen_t)? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        var storage = sockaddr_storage()
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { return nil }
            withUnsafeBytes(of: address) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) } }
            return (AF_INET6, storage, socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
        if host == "*" || host.isEmpty { host = "0.0.0.0" }
        if host == "localhost" { host = "127.0.0.1" }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
        withUnsafeBytes(of: address) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw.prefix(MemoryLayout<sockaddr_in>.size))) } }
        return (AF_INET, storage, socklen_t(MemoryLayout<sockaddr_in>.size))
    }
}
