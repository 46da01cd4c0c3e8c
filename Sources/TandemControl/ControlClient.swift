// ControlClient: a blocking client for the control socket, for tandemctl and tests. One
// request at a time; ids increment per client. Replies are read with a bounded line length.
#if canImport(Glibc)
import Glibc
#endif

public enum ControlClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The socket could not be opened or connected (daemon not running, wrong path, no access).
    case unreachable(path: String, reason: String)
    /// Reading or writing failed, or the daemon closed the connection.
    case connectionLost(String)
    /// The daemon sent something that is not a reply line.
    case badReply(String)

    public var description: String {
        switch self {
        case .unreachable(let path, let reason): "cannot reach the daemon at \(path): \(reason)"
        case .connectionLost(let reason): "connection to the daemon lost: \(reason)"
        case .badReply(let reason): "unreadable reply from the daemon: \(reason)"
        }
    }
}

/// Owns one socket; use from one thread at a time.
public final class ControlClient {
    /// Largest reply line accepted (a status of many resources is still far below this).
    public static let replyBytesMax = 16 << 20
    let descriptor: Int32
    var nextID: Int64 = 1
    var lines = LineBuffer(lineBytesMax: ControlClient.replyBytesMax)

    public init(socketPath: String) throws(ControlClientError) {
        guard let address = UnixSocketAddress.make(socketPath) else {
            throw .unreachable(path: socketPath, reason: "not a usable Unix socket path")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .unreachable(path: socketPath, reason: String(cString: strerror(errno))) }
        let rc = UnixSocketAddress.withSockaddr(address) { connect(fd, $0, $1) }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .unreachable(path: socketPath, reason: reason)
        }
        descriptor = fd
    }

    deinit {
        close(descriptor)
    }

    /// Sends `{"id":N,"cmd":cmd,...args}` and waits for its reply.
    public func request(cmd: String, args: [String: JSONValue] = [:]) throws(ControlClientError) -> ControlReply {
        let id = nextID
        nextID += 1
        try send(ControlRequest(id: .int(id), cmd: cmd, args: args))
        return try readReply()
    }

    public func send(_ request: ControlRequest) throws(ControlClientError) {
        try sendRaw(ControlCodec.encode(request))
    }

    /// Writes bytes as they are (tests use this to send malformed input).
    public func sendRaw(_ bytes: [UInt8]) throws(ControlClientError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { raw in
                Glibc.send(descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw .connectionLost(String(cString: strerror(errno)))
            }
            offset += written
        }
    }

    /// The next reply line (for `events`, call repeatedly).
    public func readReply() throws(ControlClientError) -> ControlReply {
        let line = try readLine()
        switch ControlCodec.decodeReply(line: line) {
        case .success(let reply): return reply
        case .failure(let error): throw .badReply(error.message)
        }
    }

    public func readLine() throws(ControlClientError) -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            switch lines.next() {
            case .line(let line): return line
            case .tooLong: throw .badReply("reply longer than \(Self.replyBytesMax) bytes")
            case nil: break
            }
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .connectionLost(String(cString: strerror(errno)))
            }
            guard count > 0 else { throw .connectionLost("the daemon closed the connection") }
            lines.append(chunk[..<count])
        }
    }
}
