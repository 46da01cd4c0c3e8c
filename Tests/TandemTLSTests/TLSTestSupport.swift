import Foundation

@testable import TandemIO

/// Certificates made once per test process by scripts/make-certs.sh: a CA with nodes alpha,
/// beta and gamma, and a second, unrelated CA that also issued an "alpha".
struct TestCertificates: Sendable {
    let directory: String
    let foreignDirectory: String

    static let shared: TestCertificates = {
        let base = FileManager.default.temporaryDirectory
            .appendingPathComponent("tandem-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        let certificates = TestCertificates(directory: base + "/ca", foreignDirectory: base + "/foreign")
        run(script, [certificates.directory, "alpha", "beta", "gamma"])
        run(script, [certificates.foreignDirectory, "alpha"])
        return certificates
    }()

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/make-certs.sh").path
    }

    private static func run(_ executable: String, _ arguments: [String]) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        try! process.run()
        process.waitUntilExit()
        precondition(process.terminationStatus == 0, "make-certs.sh failed")
    }

    var caFile: String { directory + "/ca.crt" }

    func context(
        _ role: TLSContext.Role, node: String, expecting peer: String, foreign: Bool = false,
        versions: (Int32, Int32) = (0x0304, 0x0304)
    ) throws -> TLSContext {
        let dir = foreign ? foreignDirectory : directory
        return try TLSContext(
            role: role, caFile: caFile, certFile: "\(dir)/\(node).crt", keyFile: "\(dir)/\(node).key",
            expectedPeerName: peer, protocolVersions: versions)
    }
}

/// Moves ciphertext between two in-memory connections in one thread: deterministic, no sockets.
enum Pump {
    static func move(from source: TLSConnection, to destination: TLSConnection) -> Int {
        var moved = 0
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { source.takeCiphertext(into: $0) }
            if count == 0 { return moved }
            buffer[0..<count].withUnsafeBytes { destination.feedCiphertext($0) }
            moved += count
        }
    }

    struct Outcome {
        var client: Result<Bool, TLSError>
        var server: Result<Bool, TLSError>
    }

    /// Runs both handshakes to completion or failure, delivering alerts to the other side.
    static func handshake(client: TLSConnection, server: TLSConnection) -> Outcome {
        var outcome = Outcome(client: .success(false), server: .success(false))
        for _ in 0..<50 {
            if case .success(false) = outcome.client { outcome.client = step(client) }
            let toServer = move(from: client, to: server)
            if case .success(false) = outcome.server { outcome.server = step(server) }
            let toClient = move(from: server, to: client)
            if toServer == 0 && toClient == 0 && settled(outcome) { break }
        }
        return outcome
    }

    private static func step(_ connection: TLSConnection) -> Result<Bool, TLSError> {
        Result { () throws(TLSError) -> Bool in try connection.handshake() }
    }

    private static func settled(_ outcome: Outcome) -> Bool {
        if case .success(false) = outcome.client { return false }
        if case .success(false) = outcome.server { return false }
        return true
    }

    /// Reads whatever plaintext has arrived (after pumping), or the error the read raised.
    static func readAll(_ connection: TLSConnection) -> Result<[UInt8], TLSError> {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let result = buffer.withUnsafeMutableBytes { pointer in
                Result { () throws(TLSError) -> TLSConnection.ReadResult in try connection.readPlaintext(into: pointer)
                }
            }
            switch result {
            case .failure(let error): return .failure(error)
            case .success(.bytes(let count)): bytes += buffer[0..<count]
            case .success(.needsCiphertext), .success(.closed): return .success(bytes)
            }
        }
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
