// MetricsScrape: an HTTP/1.1 client for tandemd's metrics endpoint (a raw TCP socket, so a
// test can also send what no real client would), and the scraped text parsed by a real
// Prometheus parser: Debian's python3-prometheus-client
// (`prometheus_client.parser.text_string_to_metric_families`), which raises on text that is
// not valid exposition format.
import Foundation

struct HTTPAnswer {
    var status: Int
    var headers: [String: String]
    var body: String
}

enum HTTPProbe {
    /// Connects to "127.0.0.1:port", sends `request` as is, reads until the server closes.
    static func exchange(_ address: String, _ request: [UInt8], timeoutSeconds: Int = 15) throws -> [UInt8] {
        let fd = try connect(address, timeoutSeconds: timeoutSeconds)
        defer { close(fd) }
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { break }  // the server may answer and close before reading it all
            sent += count
        }
        return readToEnd(fd)
    }

    static func connect(_ address: String, timeoutSeconds: Int) throws -> Int32 {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw HarnessError("bad address \(address)")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = inet_addr(String(address[..<colon]))
        let status = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            let code = errno
            close(fd)
            throw HarnessError("connect \(address): errno \(code)")
        }
        return fd
    }

    static func readToEnd(_ fd: Int32) -> [UInt8] {
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            answer += chunk[..<count]
        }
        return answer
    }

    /// Reads until the server closes; also returns the errno that ended the read (0 at a
    /// clean end of stream), so a reset is told apart from a close.
    static func readToEndOrError(_ fd: Int32) -> ([UInt8], Int32) {
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { return (answer, errno) }
            if count == 0 { return (answer, 0) }
            answer += chunk[..<count]
        }
    }

    /// Splits a response into status, headers and body; nil when it is not HTTP.
    static func parse(_ bytes: [UInt8]) -> HTTPAnswer? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return nil }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ")
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let status = Int(statusLine[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return HTTPAnswer(status: status, headers: headers, body: String(text[split.upperBound...]))
    }

    static func get(_ address: String, _ path: String = "/metrics") throws -> HTTPAnswer {
        let raw = try exchange(address, Array("GET \(path) HTTP/1.1\r\nHost: \(address)\r\nAccept: text/plain\r\n\r\n".utf8))
        guard let answer = parse(raw) else { throw HarnessError("not an HTTP answer: \(String(decoding: raw.prefix(200), as: UTF8.self))") }
        return answer
    }
}

/// One sample as the Prometheus parser read it.
struct MetricSample {
    var name: String
    var labels: [String: String]
    var value: Double
}

/// A scrape parsed by prometheus_client: families by name, with their type and samples.
struct MetricsScrape {
    static let python = "/usr/bin/python3"
    /// Prints, for each file named, {family: {"type": ..., "samples": [[name, labels, value], ...]}},
    /// as one JSON list; a parse error exits non-zero with the parser's message. Counter
    /// families are named without `_total` by the parser; samples keep their full names.
    static let parser = """
        import json, math, sys
        from prometheus_client.parser import text_string_to_metric_families
        scrapes = []
        for path in sys.argv[1:]:
            text = open(path, encoding="utf-8").read()
            out = {}
            for family in text_string_to_metric_families(text):
                if family.name in out:
                    sys.exit("%s: family %s appears twice" % (path, family.name))
                out[family.name] = {"type": family.type, "samples": [
                    [s.name, s.labels, None if math.isinf(s.value) or math.isnan(s.value) else s.value]
                    for s in family.samples]}
            scrapes.append(out)
        json.dump(scrapes, sys.stdout)
        """

    let text: String
    let types: [String: String]
    let samples: [MetricSample]

    init(text: String) throws {
        self = try Self.parseAll([text])[0]
    }

    private init(text: String, decoded: [String: [String: Any]]) throws {
        self.text = text
        var types: [String: String] = [:]
        var samples: [MetricSample] = []
        for (family, body) in decoded {
            types[family] = body["type"] as? String
            for case let sample as [Any] in body["samples"] as? [Any] ?? [] {
                guard sample.count == 3, let name = sample[0] as? String, let labels = sample[1] as? [String: String]
                else { throw HarnessError("unexpected sample \(sample)") }
                let value = (sample[2] as? NSNumber)?.doubleValue ?? .infinity
                samples.append(MetricSample(name: name, labels: labels, value: value))
            }
        }
        self.types = types
        self.samples = samples
    }

    /// Parses several scrapes with one run of the parser.
    static func parseAll(_ texts: [String]) throws -> [MetricsScrape] {
        guard !texts.isEmpty else { return [] }
        let scratch = try TempDirectory("scrape")
        var paths: [String] = []
        for (index, text) in texts.enumerated() {
            paths.append(scratch.file("metrics.\(index).txt"))
            try text.write(toFile: paths[index], atomically: true, encoding: .utf8)
        }
        let result = try ExternalTool.run(Self.python, ["-c", Self.parser] + paths, timeoutSeconds: 120)
        guard result.succeeded else {
            throw HarnessError("the Prometheus parser refused a scrape: \(result)\n--- first scrape\n\(texts[0].prefix(3000))")
        }
        guard let decoded = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: [String: Any]]],
            decoded.count == texts.count
        else { throw HarnessError("parser output is not the expected JSON: \(result.stdout.prefix(500))") }
        return try zip(texts, decoded).map { try MetricsScrape(text: $0, decoded: $1) }
    }

    static func scrape(_ address: String) throws -> MetricsScrape {
        let answer = try HTTPProbe.get(address)
        guard answer.status == 200 else { throw HarnessError("scrape answered \(answer.status): \(answer.body)") }
        guard answer.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true else {
            throw HarnessError("scrape content type \(answer.headers["content-type"] ?? "none")")
        }
        return try MetricsScrape(text: answer.body)
    }

    /// Prometheus' own linter (`promtool check metrics`, Debian's prometheus package): naming
    /// conventions (units, `_total`), HELP and TYPE for every family. Throws with its findings.
    func lint() throws {
        let scratch = try TempDirectory("lint")
        let path = scratch.file("metrics.txt")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try ExternalTool.run("/bin/sh", ["-c", "promtool check metrics < \"$0\"", path], timeoutSeconds: 60)
        guard result.succeeded, result.stdout.isEmpty, result.stderr.isEmpty else {
            throw HarnessError("promtool check metrics objects: \(result)")
        }
    }

    /// Scrapes until `condition` holds (a counter reached a value); throws with the last
    /// scrape after the timeout.
    static func waitFor(_ address: String, timeoutSeconds: Double = 20, _ what: String,
                        _ condition: (MetricsScrape) throws -> Bool) throws -> MetricsScrape {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            let scrape = try scrape(address)
            if try condition(scrape) { return scrape }
            guard Date() < deadline else { throw HarnessError("timed out waiting for \(what)\n\(scrape.text.prefix(4000))") }
            usleep(50_000)
        }
    }

    /// The samples named `name` whose labels include `labels`.
    func series(_ name: String, _ labels: [String: String] = [:]) -> [MetricSample] {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
    }

    /// The value of the one sample named `name` with `labels`; throws when there is not exactly one.
    func value(_ name: String, _ labels: [String: String] = [:]) throws -> Double {
        let found = series(name, labels)
        guard found.count == 1 else {
            throw HarnessError("\(found.count) samples of \(name)\(labels), want 1\n--- scrape\n\(text.prefix(4000))")
        }
        return found[0].value
    }

    /// The label value of the state series that is 1; throws unless exactly one is 1 and the
    /// rest are 0.
    func currentState(_ family: String, resource: String, label: String = "state") throws -> String {
        let found = series(family, ["resource": resource])
        let current = found.filter { $0.value == 1 }
        guard current.count == 1, found.allSatisfy({ $0.value == 0 || $0.value == 1 }),
            let word = current[0].labels[label]
        else { throw HarnessError("\(family) for \(resource) is not one-hot: \(found)") }
        return word
    }
}
