import Foundation
import TandemCore
import Testing

@testable import TandemIO

/// The blocking helper over a real socketpair, carrying real wire frames: the shape of a first
/// daemon integration.
@Suite struct TLSBlockingStreamTests {
    let certs = TestCertificates.shared

    @Test func wireFramesCrossASocketPairOverMutualTLS() throws {
        let (client, server) = try startPair(clientNode: "alpha")
        defer { server.close() }
        let block = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 / 4096) }
        try client.handshake()
        try client.write(WireEncoder.encode(.hello(WireFixturesTLS.hello), promotionNumber: 3))
        try Self.sendData(block, over: client)
        try client.write(WireEncoder.encode(.epochBarrier(epoch: 1, writeCount: 1), promotionNumber: 3))
        client.close()
        let frames = try #require(try server.wait()?.get())
        #expect(frames.count == 3)
        #expect(frames.first?.message == .hello(WireFixturesTLS.hello))
        guard case .data(let data) = frames[1].message else {
            Issue.record("second frame is not data")
            return
        }
        #expect(data.header.flags.contains(.compressed))
        var restored = [UInt8](repeating: 0, count: Int(data.header.lengthBytes))
        try data.payload.withUnsafeBytes { payload in
            try restored.withUnsafeMutableBytes { try WirePayload.restore(data.header, payload: payload, into: $0) }
        }
        #expect(restored == block)
    }

    /// Sends the Data prefix and the (compressed) payload as two writes: no frame is assembled.
    private static func sendData(_ block: [UInt8], over stream: TLSBlockingStream) throws {
        var scratch = [UInt8](repeating: 0, count: block.count)
        var prefix = [UInt8](repeating: 0, count: WireEncoder.dataPrefixBytes)
        try block.withUnsafeBytes { blockBytes in
            try scratch.withUnsafeMutableBytes { scratchBytes in
                let (header, compressed) = WirePayload.prepare(
                    block: blockBytes, epoch: 1, sequence: 1, offsetBytes: 0, fua: true, compress: true,
                    scratch: scratchBytes)
                let payload = compressed.map { UnsafeRawBufferPointer(rebasing: scratchBytes[0..<$0]) } ?? blockBytes
                _ = try prefix.withUnsafeMutableBytes {
                    try WireEncoder.encodeDataPrefix(header, payloadBytes: payload.count, promotionNumber: 3, into: $0)
                }
                try stream.write(prefix)
                try stream.write(payload)
            }
        }
    }

    private static func serve(_ stream: TLSBlockingStream) throws -> [WireFrame] {
        try stream.handshake()
        var decoder = WireDecoder()
        var frames: [WireFrame] = []
        var buffer = [UInt8](repeating: 0, count: 32 << 10)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }
            if count == 0 { break }
            decoder.feed(buffer[0..<count])
            while let frame = try decoder.next() { frames.append(frame) }
        }
        try decoder.finish()
        return frames
    }

    @Test func aRefusedPeerLearnsWhyOverTheSocket() throws {
        let (client, server) = try startPair(clientNode: "gamma")
        defer { server.close() }
        let clientError: TLSError? = {
            do {
                try client.handshake()
                var buffer = [UInt8](repeating: 0, count: 64)
                _ = try buffer.withUnsafeMutableBytes { try client.read(into: $0) }
                return nil
            } catch { return error as? TLSError }
        }()
        let served = try #require(server.wait())
        #expect(clientError?.kind == .refusedByPeer)
        let serverError = try #require(served.failureValue as? TLSError)
        #expect(serverError.kind == .peerName)
    }
}

extension TLSBlockingStreamTests {
    /// A socketpair; beta serves one end on its own thread (`serve`), the returned client
    /// stream (the certificate of `clientNode`, expecting beta) holds the other.
    private func startPair(clientNode: String) throws -> (TLSBlockingStream, ServerThread) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw TLSError(.configuration, "socketpair failed")
        }
        let serverConnection = try TLSConnection(context: certs.context(.server, node: "beta", expecting: "alpha"))
        let clientConnection = try TLSConnection(context: certs.context(.client, node: clientNode, expecting: "beta"))
        let server = ServerThread(fds: fds)
        let serverFD = fds[1]
        Thread.detachNewThread {
            defer { server.done.signal() }
            server.result = Result { try Self.serve(TLSBlockingStream(connection: serverConnection, fd: serverFD)) }
        }
        return (TLSBlockingStream(connection: clientConnection, fd: fds[0]), server)
    }
}

/// The server side of `startPair`: its result is written by the server thread before it
/// signals, and read by the test after it waits.
final class ServerThread: @unchecked Sendable {
    let fds: [Int32]
    let done = DispatchSemaphore(value: 0)
    var result: Result<[WireFrame], any Error>?

    init(fds: [Int32]) { self.fds = fds }

    func wait() -> Result<[WireFrame], any Error>? {
        done.wait()
        return result
    }

    /// Closes both ends of the socketpair (after `wait`).
    func close() {
        Glibc.close(fds[0])
        Glibc.close(fds[1])
    }
}

enum WireFixturesTLS {
    static let hello = WireHello(
        role: .primary, nodeName: "alpha", resourceName: "r0", volumeSizeBytes: 1 << 30,
        generations: WireGenerations(current: 5, bitmap: 0, history: [4, 3, 0, 0]), promotionNumber: 3)
}
