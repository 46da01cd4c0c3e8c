// Guarantee 6 for the metrics endpoint: whatever a client sends, it gets an HTTP error (or a
// closed connection) and the daemon keeps serving scrapes and control requests. And a
// metrics_listen the daemon cannot use stops it at start with a message naming the address.
import Foundation
import Testing

extension Integration {
@Suite struct MetricsHTTP {
    static func startDaemon() throws -> (DaemonProcess, String) {
        let address = "127.0.0.1:\(try ReplicatedPair.freePort())"
        return (try DaemonProcess.started(extraArguments: ["--metrics-listen", address]), address)
    }

    @Test(arguments: [
        ("not HTTP", "garbage\r\n\r\n", 400),
        ("unknown path", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("metrics under another path", "GET /metrics/../admin HTTP/1.1\r\n\r\n", 404),
        ("POST", "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 405),
        ("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
        ("binary", "\u{16}\u{03}\u{01}\u{00}\u{7F}\u{01}\u{00}\n\r\n\r\n", 400),
        ("NUL in the target", "GET /metr\u{0}ics HTTP/1.1\r\n\r\n", 400),
        ("lower-case method", "get /metrics HTTP/1.1\r\n\r\n", 400),
    ])
    func badRequestsGetAnErrorAndTheEndpointKeepsServing(_ label: String, _ request: String, _ status: Int) throws {
        try expectAnswered(Array(request.utf8), status, label)
    }

    @Test func requestHeadOverTheLimitGets431() throws {
        let padding = [UInt8](repeating: 0x61, count: 10_000)
        try expectAnswered(Array("GET /metrics HTTP/1.1\r\nX-Padding: ".utf8) + padding, 431, "head too long")
    }

    func expectAnswered(_ request: [UInt8], _ status: Int, _ label: String) throws {
        let (daemon, address) = try Self.startDaemon()
        defer { try? daemon.stop() }
        let raw = try HTTPProbe.exchange(address, request)
        let answer = HTTPProbe.parse(raw)
        #expect(answer?.status == status, "\(label): answered \(String(decoding: raw.prefix(200), as: UTF8.self))")
        #expect(daemon.isRunning, "\(label): tandemd died\n\(daemon.logTail())")
        let scrape = try MetricsScrape.scrape(address)
        #expect(try scrape.value("tandem_resources") == 0)
        #expect(try daemon.control().request("ping", [:])["ok"] as? Bool == true)
    }

    @Test func silentAndHalfOpenClientsAreCutOffWhileOthersAreServed() throws {
        let (daemon, address) = try Self.startDaemon()
        defer { try? daemon.stop() }
        // A client that connects and says nothing holds one connection slot, not the endpoint.
        let silent = try HTTPProbe.connect(address, timeoutSeconds: 20)
        defer { close(silent) }
        let partial = try HTTPProbe.connect(address, timeoutSeconds: 20)
        defer { close(partial) }
        _ = Array("GET /metrics HTTP/1.1\r\n".utf8).withUnsafeBytes { send(partial, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        for _ in 0..<3 { #expect(try MetricsScrape.scrape(address).value("tandem_resources") == 0) }
        // Both are answered 408 once the request deadline (5 s) has passed, then closed.
        for fd in [silent, partial] {
            let answer = HTTPProbe.parse(HTTPProbe.readToEnd(fd))
            #expect(answer?.status == 408)
        }
        // A client that connects and hangs up at once changes nothing either.
        close(try HTTPProbe.connect(address, timeoutSeconds: 5))
        #expect(try MetricsScrape.scrape(address).value("tandem_resources") == 0)
        #expect(daemon.isRunning)
    }

    /// With every connection slot held by a slowloris, one more client gets its 503 whole,
    /// even while it is still trickling its own request: the endpoint must not close with
    /// unread input, which makes the kernel answer with a reset instead of the 503.
    @Test func aRefusedSlowClientReceivesTheWhole503() throws {
        let (daemon, address) = try Self.startDaemon()
        defer { try? daemon.stop() }
        let partial = Array("GET /metrics HTTP/1.1\r\n".utf8)
        let holders = try Self.holdEveryConnectionSlot(address)
        defer { holders.forEach { close($0) } }
        for attempt in 0..<5 {
            let fd = try HTTPProbe.connect(address, timeoutSeconds: 10)
            defer { close(fd) }
            // A slowloris: the request line, then a header line every 20 ms, never the blank
            // line; the answer is read only afterwards.
            // A client library stops at the first failed send (a reset) and never reads the
            // answer, so every send must succeed: the endpoint reads and discards the rest.
            _ = partial.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var sendErrno: Int32 = 0
            for line in 0..<10 where sendErrno == 0 {
                usleep(20_000)
                let header = Array("X-Slow-\(line): 1\r\n".utf8)
                let sent = header.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent < 0 { sendErrno = errno }
            }
            #expect(sendErrno == 0, "attempt \(attempt): the request was cut off with errno \(sendErrno)")
            try Self.expectWholeAnswer(fd, 503, "attempt \(attempt)")
        }
        #expect(daemon.isRunning)
    }

    /// A refused client that sent its whole request at once, 32 KiB of headers, before it
    /// reads: those bytes sit unread in the endpoint's receive queue when it is done with the
    /// 503. Closed like that, the kernel resets the connection and the client's read fails
    /// with ECONNRESET (or the answer is lost); the endpoint must end its side and read the
    /// rest first, so the client reads the whole 503 and then a clean end of stream.
    @Test func aRefusedClientWithUnreadRequestBytesGetsThe503AndNoReset() throws {
        let (daemon, address) = try Self.startDaemon()
        defer { try? daemon.stop() }
        let holders = try Self.holdEveryConnectionSlot(address)
        defer { holders.forEach { close($0) } }
        var request = Array("GET /metrics HTTP/1.1\r\nHost: x\r\n".utf8)
        for line in 0..<256 { request += Array("X-Filler-\(line): \(String(repeating: "f", count: 110))\r\n".utf8) }
        request += Array("\r\n".utf8)
        for attempt in 0..<8 {
            let fd = try HTTPProbe.connect(address, timeoutSeconds: 10)
            defer { close(fd) }
            let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            #expect(sent == request.count, "attempt \(attempt): sent \(sent) of \(request.count) bytes, errno \(errno)")
            try Self.expectWholeAnswer(fd, 503, "attempt \(attempt)")
        }
        #expect(daemon.isRunning)
    }

    /// A served client that sends a body with its GET, or pipelines a second request behind
    /// the first, has bytes the endpoint never parses: the answer to the first still arrives
    /// whole, followed by a clean end of stream, not a reset.
    @Test(arguments: [("a 48 KiB body with the GET", 0), ("a second request pipelined", 1), ("both", 2)])
    func aServedClientWithBytesPastItsRequestGetsTheWholeAnswer(_ label: String, _ shape: Int) throws {
        let (daemon, address) = try Self.startDaemon()
        defer { try? daemon.stop() }
        let bodyBytes = 48 << 10
        var request = Array("GET /metrics HTTP/1.1\r\nHost: x\r\n".utf8)
        request += shape == 1 ? [] : Array("Content-Length: \(bodyBytes)\r\n".utf8)
        request += Array("\r\n".utf8)
        if shape != 1 { request += [UInt8](repeating: 0x62, count: bodyBytes) }
        if shape != 0 { request += Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8) }
        for attempt in 0..<4 {
            let fd = try HTTPProbe.connect(address, timeoutSeconds: 10)
            defer { close(fd) }
            let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            #expect(sent == request.count, "\(label), attempt \(attempt): sent \(sent) of \(request.count), errno \(errno)")
            let answer = try Self.expectWholeAnswer(fd, 200, "\(label), attempt \(attempt)")
            #expect(try MetricsScrape(text: answer.body).value("tandem_resources") == 0)
        }
        #expect(daemon.isRunning)
    }

    /// Every connection slot held by a client that sent half a request line.
    static func holdEveryConnectionSlot(_ address: String) throws -> [Int32] {
        let partial = Array("GET /metrics HTTP/1.1\r\n".utf8)
        var holders: [Int32] = []
        for _ in 0..<16 {
            let fd = try HTTPProbe.connect(address, timeoutSeconds: 20)
            holders.append(fd)
            _ = partial.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        return holders
    }

    /// Reads to the end: a clean end of stream (no reset), an answer of `status` whose body
    /// is as long as its Content-Length says.
    @discardableResult
    static func expectWholeAnswer(_ fd: Int32, _ status: Int, _ label: String) throws -> HTTPAnswer {
        let (raw, readErrno) = HTTPProbe.readToEndOrError(fd)
        #expect(readErrno == 0, "\(label): the read ended with errno \(readErrno) after \(raw.count) bytes")
        guard let answer = HTTPProbe.parse(raw) else {
            throw HarnessError("\(label): not an HTTP answer (\(raw.count) bytes): \(String(decoding: raw.prefix(200), as: UTF8.self))")
        }
        #expect(answer.status == status, "\(label): \(String(decoding: raw.prefix(200), as: UTF8.self))")
        #expect(answer.body.utf8.count == Int(answer.headers["content-length"] ?? ""),
                "\(label): body of \(answer.body.utf8.count) bytes, Content-Length \(answer.headers["content-length"] ?? "none")")
        return answer
    }

    @Test func headRequestGetsHeadersOnly() throws {
        let (daemon, address) = try Self.startDaemon()
        defer { try? daemon.stop() }
        let raw = try HTTPProbe.exchange(address, Array("HEAD /metrics HTTP/1.0\r\n\r\n".utf8))
        let answer = HTTPProbe.parse(raw)
        #expect(answer?.status == 200)
        #expect(answer?.body == "")
        #expect(Int(answer?.headers["content-length"] ?? "0") ?? 0 > 0)
    }

    @Test func metricsAddressInUseStopsTheDaemonNamingIt() throws {
        let (holder, address) = try Self.startDaemon()
        defer { try? holder.stop() }
        let daemon = try DaemonProcess(extraArguments: ["--metrics-listen", address])
        let result = try ExternalTool.run(try Binaries.tandemd(), daemon.arguments, timeoutSeconds: 30)
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("metrics_listen \(address)"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: daemon.controlSocket))
    }
}
}
