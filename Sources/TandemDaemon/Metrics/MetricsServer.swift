// MetricsServer: the Prometheus endpoint on `metrics_listen`. A minimal HTTP/1.1 server: one
// accept thread and one blocking thread per connection (at most `connectionsMax`), each
// reading one bounded request under a deadline, answering it and closing. `GET /metrics`
// reads a snapshot the loop took after the request arrived, shared with the scrapes waiting
// at the same time (SnapshotCoalescer, as `status` does), and renders it here, off the loop.
// It never touches resources itself, and a client's bytes can neither crash nor stall the
// daemon: bad requests get 400/404/405/431, a slow client is cut off at the deadline. Not the data path: blocking I/O is deliberate, as in
// ControlServer.
import Foundation
import Logging
import TandemIO

#if canImport(Glibc)
import Glibc
#endif

public final class MetricsServer: @unchecked Sendable {
    /// Largest request head (request line and headers) read; a longer one gets 431.
    public static let requestBytesMax = 8192
    /// Concurrent connections; one more gets 503 and is closed.
    public static let connectionsMax = 16
    /// A client must send its whole request head within this time, and read the answer.
    public static let requestTimeoutMs = 5000

    public let address: String
    let snapshot: @Sendable () -> String
    let logger: Logger
    let connections: ConnectionThreads

    /// `snapshot` produces the exposition text; it is called on a connection thread.
    public init(address: String, logger: Logger, snapshot: @escaping @Sendable () -> String) {
        self.address = address
        self.logger = logger
        self.snapshot = snapshot
        connections = ConnectionThreads(label: "metrics", connectionsMax: Self.connectionsMax, logger: logger)
    }

    /// Binds and starts accepting; throws with the address and the reason.
    public func start() throws(IOError) {
        let descriptor: Int32
        do {
            descriptor = try Sockets.listenTCP(
                address: address, backlog: Int32(Self.connectionsMax), patienceNs: Daemon.bindPatienceNs,
                waiting: { [logger, address] error in Daemon.logBindWait(logger, "metrics_listen", address, error) })
        } catch {
            throw IOError(errno: error.errno, "metrics_listen \(address): \(error.operation)")
        }
        logger.info("metrics endpoint listening", metadata: ["address": "\(address)"])
        connections.start(listener: descriptor, serve: { self.serve($0) }, refuse: { [logger] descriptor, _ in
            do throws(IOError) { try Self.setTimeouts(descriptor, milliseconds: 100) } catch {
                return logger.warning("metrics connection closed unanswered: \(error)")
            }
            _ = Self.sendAll(descriptor, HTTPResponse.error(503, "too many metrics connections").bytes(head: false))
        })
    }

    /// Stops accepting, disconnects clients and waits (bounded) for their threads. Call it
    /// while the loop still runs: a thread taking a snapshot waits for the loop.
    public func stop() {
        connections.stop()
    }

    /// Answers one request; ConnectionThreads closes the descriptor when this returns.
    func serve(_ descriptor: Int32) {
        // Without the timeouts a silent client would hold this thread past the deadline.
        do throws(IOError) { try Self.setTimeouts(descriptor, milliseconds: Self.requestTimeoutMs) } catch {
            return logger.warning("metrics connection closed unanswered: \(error)")
        }
        let response: HTTPResponse
        var isHead = false
        switch readRequestHead(descriptor) {
        case .closed:
            return
        case .timedOut:
            response = .error(408, "request not received within \(Self.requestTimeoutMs) ms")
        case .tooLong:
            response = .error(431, "request head longer than \(Self.requestBytesMax) bytes")
        case .head(let head):
            let request = HTTPRequestHead.parse(head)
            isHead = request?.method == "HEAD"
            response = answer(request)
        }
        guard Self.sendAll(descriptor, response.bytes(head: isHead)) else { return }
        // Closing with unread input would reset the connection, and the client might lose the
        // answer: end our side, then read what the client still sends (bounded) until it
        // closes too.
        shutdown(descriptor, Int32(SHUT_WR))
        ConnectionThreads.discardInput(descriptor, bytesMax: 1 << 16, timeoutMs: 1000)
    }

    func answer(_ request: HTTPRequestHead?) -> HTTPResponse {
        guard let request else { return .error(400, "malformed HTTP request") }
        guard request.method == "GET" || request.method == "HEAD" else {
            var response = HTTPResponse.error(405, "only GET and HEAD are served")
            response.headers.append(("Allow", "GET, HEAD"))
            return response
        }
        guard request.path == "/metrics" else { return .error(404, "not found; metrics are at /metrics") }
        return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(snapshot().utf8))
    }

    enum ReadResult { case head([UInt8]), tooLong, timedOut, closed }

    /// Reads until the blank line that ends the request head, under one deadline.
    func readRequestHead(_ descriptor: Int32) -> ReadResult {
        var buffer = [UInt8](repeating: 0, count: Self.requestBytesMax)
        var filled = 0
        let deadline = MonotonicClock.nowNs() + UInt64(Self.requestTimeoutMs) * 1_000_000
        while true {
            if let end = HTTPRequestHead.endOfHead(buffer[..<filled]) { return .head(Array(buffer[..<end])) }
            guard filled < buffer.count else { return .tooLong }
            let now = MonotonicClock.nowNs()
            guard now < deadline else { return .timedOut }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32((deadline - now) / 1_000_000) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return ready == 0 ? .timedOut : .closed }
            let count = buffer[filled...].withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard count > 0 else { return .closed }
            filled += count
        }
    }

    static func setTimeouts(_ descriptor: Int32, milliseconds: Int) throws(IOError) {
        let timeout = timeval(tv_sec: milliseconds / 1000, tv_usec: Int((milliseconds % 1000) * 1000))
        try Sockets.setOption(descriptor, SOL_SOCKET, SO_RCVTIMEO, timeout, "SO_RCVTIMEO")
        try Sockets.setOption(descriptor, SOL_SOCKET, SO_SNDTIMEO, timeout, "SO_SNDTIMEO")
    }

    static func sendAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }
}

/// The request line of an HTTP/1.x request head; headers are read past and ignored.
struct HTTPRequestHead: Equatable {
    var method: String
    /// The target without its query string.
    var path: String
    var version: String

    /// Index just past "\r\n\r\n" (or "\n\n", which some clients send), if present.
    static func endOfHead(_ bytes: ArraySlice<UInt8>) -> Int? {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == 0x0A {
                if index + 1 < bytes.endIndex, bytes[index + 1] == 0x0A { return index + 2 }
                if index + 2 < bytes.endIndex, bytes[index + 1] == 0x0D, bytes[index + 2] == 0x0A { return index + 3 }
            }
            index += 1
        }
        return nil
    }

    /// nil unless the first line is `METHOD SP target SP HTTP/1.x` in printable ASCII.
    static func parse(_ head: [UInt8]) -> HTTPRequestHead? {
        guard let lineEnd = head.firstIndex(of: 0x0A) else { return nil }
        var line = head[..<lineEnd]
        if line.last == 0x0D { line = line.dropLast() }
        guard !line.isEmpty, line.allSatisfy({ $0 > 0x20 && $0 < 0x7F || $0 == 0x20 }) else { return nil }
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ (0x41...0x5A).contains($0) }) else { return nil }
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return nil }
        let target = String(decoding: parts[1], as: UTF8.self)
        guard target.hasPrefix("/") else { return nil }
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        return HTTPRequestHead(method: String(decoding: parts[0], as: UTF8.self), path: path, version: version)
    }
}

struct HTTPResponse {
    var status: Int
    var contentType: String
    var body: [UInt8]
    var headers: [(String, String)] = []

    static func error(_ status: Int, _ message: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array((message + "\n").utf8))
    }

    static let reasons = [
        200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
        431: "Request Header Fields Too Large", 503: "Service Unavailable",
    ]

    /// `head`: a HEAD request gets the headers only.
    func bytes(head: Bool) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(Self.reasons[status] ?? "Error")\r\n"
        text += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return Array(text.utf8) + (head ? [] : body)
    }
}
