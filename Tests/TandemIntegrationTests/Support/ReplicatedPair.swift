// ReplicatedPair: two real tandemd processes ("alpha" primary, "beta" secondary) on loopback,
// with certificates from scripts/make-certs.sh (made once per test process: CertificateCache)
// and file-backed volumes under /var/tmp, and
// one resource "r0" between them. With `throughProxy`, alpha dials beta through a LinkProxy
// in the test process, so a test can cut, stall or cap the link and count its bytes.
import Foundation

final class ReplicatedPair {
    static let resource = "r0"
    let certs: TempDirectory
    let alpha: DaemonProcess
    let beta: DaemonProcess
    let alphaAddress: String
    let betaAddress: String
    let sizeBytes: Int
    /// Between alpha and beta's listen address when the pair was made `throughProxy`.
    let proxy: LinkProxy?
    /// The address alpha's resource names for beta: the proxy's, or beta's own.
    var betaAddressForAlpha: String { proxy?.address ?? betaAddress }

    /// `betaCertificates`: a directory with another ca.crt/beta.crt/beta.key (a stranger).
    /// `betaCertificateNode`: beta presents the certificate made for another node name.
    /// `alphaArguments`, `betaArguments`: more tandemd flags (e.g. a smaller buffer pool).
    /// `throughProxy`: alpha's resource dials beta through a LinkProxy (`proxy`); beta still
    /// names alpha's own address (it never dials).
    init(sizeBytes: Int = 64 << 20, betaCertificates: String? = nil, betaCertificateNode: String? = nil,
         alphaCertificateNode: String? = nil, alphaArguments: [String] = [], betaArguments: [String] = [],
         throughProxy: Bool = false) throws {
        self.sizeBytes = sizeBytes
        certs = try TempDirectory("certs")
        try CertificateCache.shared.copy(
            into: certs.path, nodes: ["alpha", "beta"] + [betaCertificateNode, alphaCertificateNode].compactMap { $0 })
        alphaAddress = "127.0.0.1:\(try Self.freePort())"
        betaAddress = "127.0.0.1:\(try Self.freePort())"
        proxy = throughProxy ? try LinkProxy(target: betaAddress) : nil
        alpha = try DaemonProcess()
        beta = try DaemonProcess()
        configure(alpha, node: "alpha", listen: alphaAddress, certificates: certs.path,
                  certificateNode: alphaCertificateNode)
        alpha.extraArguments += alphaArguments
        configure(beta, node: "beta", listen: betaAddress, certificates: betaCertificates ?? certs.path,
                  certificateNode: betaCertificateNode ?? "beta")
        beta.extraArguments += betaArguments
        try alpha.start()
        try beta.start()
    }

    static func makeCertificates(into directory: String, nodes: [String]) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/make-certs.sh").path
        try ExternalTool.check("/bin/sh", [script, directory] + nodes)
    }

    private func configure(_ daemon: DaemonProcess, node: String, listen: String, certificates: String,
                           certificateNode: String? = nil) {
        daemon.nodeName = node
        let file = certificateNode ?? node
        daemon.extraArguments = [
            "--listen", listen, "--tls-ca", "\(certificates)/ca.crt", "--tls-cert", "\(certificates)/\(file).crt",
            "--tls-key", "\(certificates)/\(file).key",
        ]
    }

    /// A port nobody uses right now, below the kernel's ephemeral range (32768 and up here):
    /// a daemon restarted on it later must not find it taken by some outgoing connection's
    /// ephemeral port, as a port the kernel picks with bind(0) can be. Ports are handed out in
    /// turn from a random start, never twice in one test run: two random picks could be the
    /// same port, and the second daemon to bind it would fail. The probe is close-on-exec: a
    /// child a concurrent test spawns while it is bound would otherwise keep the port bound for
    /// its whole life (posix_spawn passes on every descriptor that is not).
    static func freePort() throws -> Int {
        for _ in 0..<200 {
            let port = PortCursor.shared.next()
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            if bound { return port }
        }
        throw HarnessError("cannot find a free port below the ephemeral range")
    }

    /// The next port to try, in turn from a random start (thread-safe): 20000–32767, or the
    /// range `TANDEM_TEST_PORTS` names ("FIRST-LAST"; scripts/test.sh gives each integration
    /// process its own). Processes sharing one range can each find a port free and hand it
    /// out in turn: a daemon restarted after a kill -9 then finds its port taken by the other
    /// process's daemon ("Address already in use"; the fresh-clone CI of 2026-12-07's sixth
    /// session lost eleven tests so).
    private final class PortCursor: @unchecked Sendable {
        static let shared = PortCursor()
        private let lock = NSLock()
        private let range: Range<Int>
        private var port: Int

        init() {
            let named = ProcessInfo.processInfo.environment["TANDEM_TEST_PORTS"].flatMap { text -> Range<Int>? in
                let bounds = text.split(separator: "-").compactMap { Int($0) }
                guard bounds.count == 2, bounds[0] >= 1024, bounds[0] < bounds[1], bounds[1] < 32_768 else { return nil }
                return bounds[0]..<(bounds[1] + 1)
            }
            range = named ?? 20_000..<32_768
            port = Int.random(in: range)
        }

        func next() -> Int {
            lock.lock()
            defer { lock.unlock() }
            port = port + 1 < range.upperBound ? port + 1 : range.lowerBound
            return port
        }
    }

    func volume(_ daemon: DaemonProcess) -> String { daemon.directory.file("volume") }
    func nbdSocket(_ daemon: DaemonProcess) -> String { daemon.directory.file("nbd.sock") }

    /// Creates r0 on both nodes and enables both; beta first so alpha's first dial succeeds.
    /// `secondaryBufferBytes`: beta's async_buffer_bytes (what sizes its receive queue).
    /// `primaryBufferBytes`: alpha's async_buffer_bytes (what bounds its retained writes).
    /// `peerHost`: the host both name their peer by instead of 127.0.0.1 (e.g. "localhost").
    /// `fencing`: the resource's fencing policy on both nodes; nil leaves the key out.
    func createAndEnable(mode: String = "sync", initialSync: String = "full", compression: String = "none",
                         diskDrain: String = "drain", secondaryBufferBytes: Int? = nil, primaryBufferBytes: Int? = nil,
                         peerHost: String? = nil, fencing: String? = nil, betaSettings: [String: Any] = [:],
                         alphaSettings: [String: Any] = [:]) throws {
        func named(_ address: String) -> String {
            guard let peerHost else { return address }
            return "\(peerHost):\(address.split(separator: ":").last!)"
        }
        try create(on: beta, role: "secondary", peer: ("alpha", named(alphaAddress)), mode: mode, initialSync: initialSync,
                   compression: compression, diskDrain: diskDrain, asyncBufferBytes: secondaryBufferBytes, fencing: fencing,
                   settings: betaSettings)
        try create(on: alpha, role: "primary", peer: ("beta", named(betaAddressForAlpha)), mode: mode,
                   initialSync: initialSync, compression: compression, diskDrain: diskDrain,
                   asyncBufferBytes: primaryBufferBytes, fencing: fencing, settings: alphaSettings)
        try expectOK(try beta.control().request("enable", ["name": Self.resource]))
        try expectOK(try alpha.control().request("enable", ["name": Self.resource]))
    }

    /// `settings`: more `create` keys (e.g. `resync_rate`).
    func create(on daemon: DaemonProcess, role: String, peer: (String, String), mode: String, initialSync: String,
                compression: String, diskDrain: String = "drain", asyncBufferBytes: Int? = nil,
                fencing: String? = nil, settings: [String: Any] = [:]) throws {
        var arguments: [String: Any] = [
            "name": Self.resource, "volume": volume(daemon), "size_bytes": sizeBytes, "role": role,
            "peer": ["name": peer.0, "address": peer.1], "mode": mode, "initial_sync": initialSync,
            "compression": compression, "disk_drain": diskDrain, "nbd": ["socket": nbdSocket(daemon)],
        ]
        if let asyncBufferBytes { arguments["async_buffer_bytes"] = asyncBufferBytes }
        if let fencing { arguments["fencing"] = fencing }
        arguments.merge(settings) { $1 }
        let reply = try daemon.control().request("create", arguments)
        try expectOK(reply)
    }

    @discardableResult
    /// Makes `path` (a held or failing volume) `daemon`'s volume file, before `create`.
    func useAsVolume(_ path: String, of daemon: DaemonProcess) throws {
        guard symlink(path, volume(daemon)) == 0 else { throw HarnessError("symlink \(path): errno \(errno)") }
    }

    func expectOK(_ reply: JSONObject) throws -> JSONObject {
        guard reply["ok"] as? Bool == true else { throw HarnessError("request refused: \(reply)") }
        return reply
    }

    func status(_ daemon: DaemonProcess) throws -> JSONObject {
        try expectOK(try daemon.control().request("status", ["name": Self.resource]))
    }

    /// Waits until `condition` holds for the daemon's status: it subscribes to the daemon's
    /// `events` stream, then reads status once, and again after every event line. State changes
    /// arrive as events; counters such as lag_bytes have none, and the stream's idle heartbeat
    /// (one a second) re-checks them. Throws with the last status and the log on the timeout.
    @discardableResult
    func waitFor(_ daemon: DaemonProcess, timeoutSeconds: Double = 60, _ what: String,
                 _ condition: (JSONObject) -> Bool) throws -> JSONObject {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        let events = try daemon.control()
        try events.sendLine(Array(#"{"id": 0, "cmd": "events"}"#.utf8))
        _ = try events.readReply()  // the subscription is in place: no change after it is missed
        var last = try status(daemon)
        while !condition(last) {
            guard Date() < deadline else {
                throw HarnessError("timed out waiting for \(what); last status \(last)\n" + daemon.logTail())
            }
            _ = try events.readReply()  // the next event, or the idle heartbeat
            last = try status(daemon)
        }
        return last
    }

    /// Reads `daemon`'s events until `count` events named `name` arrived after the
    /// subscription (or the timeout passes); returns how many did. The subscription's reply
    /// is read first (and must say `subscribed`): without it the count began whenever the
    /// daemon got round to the request, and a refused subscription counted as no events.
    func awaitEvents(_ daemon: DaemonProcess, named name: String, count: Int, timeoutSeconds: Double = 30) throws -> Int {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        let events = try daemon.control()
        try events.sendLine(Array(#"{"id": 0, "cmd": "events"}"#.utf8))
        let reply = try events.readReply()
        guard reply.ok == true, reply["event"] as? String == "subscribed" else {
            throw HarnessError("events subscription refused: \(reply)")
        }
        var seen = 0
        while seen < count, Date() < deadline {
            if try events.readReply()["event"] as? String == name { seen += 1 }
        }
        return seen
    }

    /// Both nodes connected and UpToDate, nothing left to confirm.
    func waitInSync(timeoutSeconds: Double = 120) throws {
        try waitFor(alpha, timeoutSeconds: timeoutSeconds, "alpha connected with an UpToDate peer") {
            $0["connection_state"] as? String == "Connected" && $0["peer_disk_state"] as? String == "UpToDate"
                && $0["lag_bytes"] as? Int == 0 && $0["unconfirmed_bytes"] as? Int == 0
        }
        try waitFor(beta, timeoutSeconds: timeoutSeconds, "beta UpToDate") {
            $0["disk_state"] as? String == "UpToDate" && $0["connection_state"] as? String == "Connected"
        }
    }
}
