import Testing

@testable import TandemIO

@Suite struct TLSHandshakeTests {
    let certs = TestCertificates.shared

    @Test func mutuallyAuthenticatedPeersHandshakeOverTLS13AndExchangeData() throws {
        let client = try TLSConnection(context: certs.context(.client, node: "alpha", expecting: "beta"))
        let server = try TLSConnection(context: certs.context(.server, node: "beta", expecting: "alpha"))
        let outcome = Pump.handshake(client: client, server: server)
        #expect(try outcome.client.get() == true)
        #expect(try outcome.server.get() == true)
        #expect(client.protocolVersion == "TLSv1.3")
        #expect(client.peerSubject?.contains("CN=beta") == true)
        #expect(server.peerSubject?.contains("CN=alpha") == true)

        let message = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try message.withUnsafeBytes { try client.writePlaintext($0) }
        _ = Pump.move(from: client, to: server)
        #expect(try Pump.readAll(server).get() == message)

        let reply: [UInt8] = [1, 2, 3]
        try reply.withUnsafeBytes { try server.writePlaintext($0) }
        _ = Pump.move(from: server, to: client)
        #expect(try Pump.readAll(client).get() == reply)

        client.close()
        _ = Pump.move(from: client, to: server)
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(try buffer.withUnsafeMutableBytes { try server.readPlaintext(into: $0) } == .closed)
    }

    @Test func clientCertificateFromAnotherCAIsRefusedWithAVerificationReason() throws {
        let client = try TLSConnection(context: certs.context(.client, node: "alpha", expecting: "beta", foreign: true))
        let server = try TLSConnection(context: certs.context(.server, node: "beta", expecting: "alpha"))
        let outcome = Pump.handshake(client: client, server: server)
        let error = try #require(outcome.server.failureValue)
        #expect(error.kind == .peerVerification)
        #expect(error.message.contains("verification failed"))
        #expect(error.message.contains("unable to get local issuer certificate"))
        // TLS 1.3 clients finish first; the server's alert reaches them on the next read.
        let clientError = outcome.client.failureValue ?? Pump.readAll(client).failureValue
        #expect(clientError?.kind == .refusedByPeer)
    }

    @Test func serverCertificateFromAnotherCAIsRefusedByTheClient() throws {
        let client = try TLSConnection(context: certs.context(.client, node: "beta", expecting: "alpha"))
        let server = try TLSConnection(context: certs.context(.server, node: "alpha", expecting: "beta", foreign: true))
        let outcome = Pump.handshake(client: client, server: server)
        let error = try #require(outcome.client.failureValue)
        #expect(error.kind == .peerVerification)
        #expect(error.message.contains("verif"))
        #expect(outcome.server.failureValue != nil)
    }

    @Test func clientCertificateNamingAnotherNodeIsRefusedNamingTheExpectedNode() throws {
        let client = try TLSConnection(context: certs.context(.client, node: "gamma", expecting: "beta"))
        let server = try TLSConnection(context: certs.context(.server, node: "beta", expecting: "alpha"))
        let outcome = Pump.handshake(client: client, server: server)
        let error = try #require(outcome.server.failureValue)
        #expect(error.kind == .peerName)
        #expect(error.message.contains("'alpha'"))
        #expect(error.message.contains("CN=gamma"))
    }

    @Test func serverCertificateNamingAnotherNodeIsRefusedByTheClient() throws {
        let client = try TLSConnection(context: certs.context(.client, node: "alpha", expecting: "beta"))
        let server = try TLSConnection(context: certs.context(.server, node: "gamma", expecting: "alpha"))
        let outcome = Pump.handshake(client: client, server: server)
        let error = try #require(outcome.client.failureValue)
        #expect(error.kind == .peerName)
        #expect(error.message.contains("'beta'"))
    }

    @Test func aTLS12OnlyPeerIsRefused() throws {
        let client = try TLSConnection(
            context: certs.context(.client, node: "alpha", expecting: "beta", versions: (0x0303, 0x0303)))
        let server = try TLSConnection(context: certs.context(.server, node: "beta", expecting: "alpha"))
        let outcome = Pump.handshake(client: client, server: server)
        let error = try #require(outcome.server.failureValue)
        #expect(error.kind == .protocolVersion)
        #expect(outcome.client.failureValue != nil)
    }

    @Test func unreadableOrMismatchedCredentialsAreConfigurationErrors() throws {
        let dir = certs.directory
        #expect(throws: TLSError.self) {
            try TLSContext(
                role: .client, caFile: dir + "/missing.crt", certFile: dir + "/alpha.crt", keyFile: dir + "/alpha.key",
                expectedPeerName: "beta")
        }
        do {
            _ = try TLSContext(
                role: .server, caFile: certs.caFile, certFile: dir + "/alpha.crt", keyFile: dir + "/beta.key",
                expectedPeerName: "beta")
            Issue.record("a key that does not match its certificate was accepted")
        } catch {
            #expect(error.kind == .configuration)
            #expect(error.message.contains("beta.key"))
            #expect(error.message.contains("mismatch"))
        }
        do {
            _ = try TLSContext(
                role: .server, caFile: dir + "/nope.crt", certFile: dir + "/alpha.crt", keyFile: dir + "/alpha.key",
                expectedPeerName: "beta")
            Issue.record("a missing CA file was accepted")
        } catch {
            #expect(error.kind == .configuration)
            #expect(error.message.contains("nope.crt"))
        }
    }

    @Test func writingBeforeTheHandshakeIsRefused() throws {
        let client = try TLSConnection(context: certs.context(.client, node: "alpha", expecting: "beta"))
        #expect(throws: TLSError.self) { try [1].withUnsafeBytes { try client.writePlaintext($0) } }
    }

    @Test func garbageInsteadOfAHandshakeFailsCleanly() throws {
        var random = SeededRandom(seed: 99)
        for round in 0..<50 {
            let server = try TLSConnection(context: certs.context(.server, node: "beta", expecting: "alpha"))
            let count = Int.random(in: 1...4096, using: &random)
            var garbage = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            if round % 2 == 0 { garbage.replaceSubrange(0..<min(3, count), with: [0x16, 0x03, 0x01].prefix(count)) }
            garbage.withUnsafeBytes { server.feedCiphertext($0) }
            do {
                _ = try server.handshake()
            } catch {
                #expect(error.kind != .peerName)
            }
            #expect(server.state != .established)
        }
    }

    @Test func garbageAfterTheHandshakeFailsTheReadNotTheProcess() throws {
        let client = try TLSConnection(context: certs.context(.client, node: "alpha", expecting: "beta"))
        let server = try TLSConnection(context: certs.context(.server, node: "beta", expecting: "alpha"))
        _ = Pump.handshake(client: client, server: server)
        #expect(server.state == .established)
        let wireFrame: [UInt8] = Array("TNDM not encrypted at all".utf8)
        wireFrame.withUnsafeBytes { server.feedCiphertext($0) }
        #expect(Pump.readAll(server).failureValue != nil)
        #expect(server.state == .failed)
    }
}
