import Foundation
import TandemCore
import Testing

@testable import TandemIO

/// The blocking helper over a real socketpair, carrying real wire frames: the shape of a first
/// daemon integration.
@Suite struct TLSBlockingStreamTests {
    let certs = TestCertificates.shared

    @Test func wireFramesCrossASocketPairOverMutualTLS() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        let serverConnection = try TLSConnection(context: certs.context(.server, node: "beta", expecting: "alpha"))
        let clientConnection = try TLSConnection(context: certs.context(.client, node: "alpha", expecting: "beta"))
        let block = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 / 4096) }

        let received = ReceivedFrames()
        let serverFD = fds[1]
        let serverDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { serverDone.signal() }
            received.result = Result { try Self.serve(TLSBlockingStream(connection: serverConnection, fd: serverFD)) }
        }
        let client = TLSBlockingStream(connection: clientConnection, fd: fds[0])
        try client.handshake()
        try client.write(WireEncoder.encode(.hello(WireFixturesTLS.hello), promotionNumber: 3))
        try Self.sendData(block, over: client)
        try client.write(WireEncoder.encode(.epochBarrier(epoch: 1, writeCount: 1), promotionNumber: 3))
        client.close()
        serverDone.wait()

        let frames = try #require(try received.result?.get())
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
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        let serverConnection = try TLSConnection(context: certs.context(.server, node: "beta", expecting: "alpha"))
        let clientConnection = try TLSConnection(context: certs.context(.client, node: "gamma", expecting: "beta"))
        let received = ReceivedFrames()
        let serverFD = fds[1]
        let serverDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { serverDone.signal() }
            received.result = Result { try Self.serve(TLSBlockingStream(connection: serverConnection, fd: serverFD)) }
        }
        let client = TLSBlockingStream(connection: clientConnection, fd: fds[0])
        let clientError: TLSError? = {
            do {
                try client.handshake()
                var buffer = [UInt8](repeating: 0, count: 64)
                _ = try buffer.withUnsafeMutableBytes { try client.read(into: $0) }
                return nil
            } catch { return error as? TLSError }
        }()
        serverDone.wait()
        #expect(clientError?.kind == .refusedByPeer)
        let serverError = try #require(received.result?.failureValue as? TLSError)
        #expect(serverError.kind == .peerName)
    }
}

/// Written by the server thread before it signals, read by the test after it waits.
final class ReceivedFrames: @unchecked Sendable {
    var result: Result<[WireFrame], any Error>?
}

enum WireFixturesTLS {
    static let hello = WireHello(
        role: .primary, nodeName: "alpha", resourceName: "r0", volumeSizeBytes: 1 << 30,
        generations: WireGenerations(current: 5, bitmap: 0, history: [4, 3, 0, 0]), promotionNumber: 3)
}
