// Certificate rotation (docs/operations.md, *Rotating certificates*): `reload-tls` and SIGHUP
// read the CA, certificate and key again; a link already up keeps its session, new
// connections use the new material, and files that do not load are refused with the
// previous material kept.
import Foundation
import Testing

extension Replication {
@Suite struct TLSReloadTests {
    static let files = ["ca.crt", "alpha.crt", "alpha.key", "beta.crt", "beta.key"]

    func reconnect(_ pair: ReplicatedPair) throws {
        try pair.expectOK(try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
    }

    func write(_ pair: ReplicatedPair, block index: Int) throws {
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: "r0")
        defer { client.disconnect() }
        try client.write(offset: UInt64(index) * 4096, data: AcknowledgedWriter.pattern(index))
    }

    @Test func rotatedCertificatesAreUsedAfterAReloadAndBadFilesAreRefused() throws {
        let metrics = "127.0.0.1:\(try ReplicatedPair.freePort())"
        let pair = try ReplicatedPair(sizeBytes: 8 << 20, alphaArguments: ["--metrics-listen", metrics])
        try pair.createAndEnable(initialSync: "none")
        try pair.waitInSync()
        let handshakes = try MetricsScrape.scrape(metrics).value("tandem_tls_handshakes_total")

        // A new CA and new node certificates, at the paths both daemons were started with.
        let rotated = try TempDirectory("certs-rotated")
        try ReplicatedPair.makeCertificates(into: rotated.path, nodes: ["alpha", "beta"])
        for name in Self.files {
            let incoming = try copy(rotated.file(name), into: pair.certs)
            #expect(rename(incoming, pair.certs.file(name)) == 0, "rename \(name): errno \(errno)")
        }

        // alpha reloads (through tandemctl); its link keeps its session and carries a write.
        let reloaded = try ExternalTool.run(try Binaries.tandemctl(), ["--socket", pair.alpha.controlSocket, "reload-tls"])
        #expect(reloaded.succeeded, "\(reloaded)")
        try write(pair, block: 1)
        try pair.waitInSync()
        #expect(try MetricsScrape.scrape(metrics).value("tandem_tls_handshakes_total") == handshakes,
                "the reload replaced the running link")

        // A new connection: alpha now trusts only the new CA, beta still only the old one.
        try reconnect(pair)
        try pair.waitFor(pair.alpha, timeoutSeconds: 20, "alpha's dial refused in TLS") {
            $0["connection_state"] as? String != "Connected"
                && ($0["last_error"] as? String)?.contains("certificate verify failed") == true
        }
        // beta reloads on SIGHUP: alpha's next dial gets through.
        kill(pair.beta.pid, SIGHUP)
        try pair.waitInSync(timeoutSeconds: 30)
        #expect(try pair.beta.control().request("ping")["ok"] as? Bool == true, "SIGHUP stopped beta")

        // Files that do not load are refused, and the material in use stays.
        let key = pair.certs.file("alpha.key")
        let goodKey = try Data(contentsOf: URL(fileURLWithPath: key))
        try Data("not a key\n".utf8).write(to: URL(fileURLWithPath: key))
        let refused = try pair.alpha.control().request("reload-tls")
        #expect(refused["ok"] as? Bool == false, "\(refused)")
        #expect(refused["error"] as? String == "invalid-argument", "\(refused)")
        #expect((refused["message"] as? String)?.contains("alpha.key") == true, "\(refused)")
        try goodKey.write(to: URL(fileURLWithPath: key))
        try FileManager.default.removeItem(atPath: pair.certs.file("ca.crt"))
        let noCA = try pair.alpha.control().request("reload-tls")
        #expect(noCA["ok"] as? Bool == false && (noCA["message"] as? String)?.contains("ca.crt") == true, "\(noCA)")
        try reconnect(pair)
        try pair.waitInSync(timeoutSeconds: 30)
        try write(pair, block: 2)
        try pair.waitInSync()
    }

    private func copy(_ source: String, into directory: TempDirectory) throws -> String {
        let target = directory.file(".incoming-" + URL(fileURLWithPath: source).lastPathComponent)
        try? FileManager.default.removeItem(atPath: target)
        try FileManager.default.copyItem(atPath: source, toPath: target)
        return target
    }
}
}
