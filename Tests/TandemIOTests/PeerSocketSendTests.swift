// PeerSocket's send side: bytes leave straight from the loop thread while the socket buffer
// takes them (no ring operation, no turn for a completion), and what a full buffer refuses
// goes through the ring and arrives whole and in order. Real TCP on loopback.
import Glibc
import Logging
import Testing
@testable import TandemIO

struct PeerSocketSendTests {
    @Test func aSmallSendIsOnTheWireWhenKickReturns() throws {
        let pair = try LoopbackPair()
        defer { pair.closeClient() }
        let loop = try EventLoop(ringEntries: 16, poolBytes: 1 << 16, logger: Logger(label: "test"))
        let socket = try PeerSocket(loop: loop, connectedFD: pair.accepted)
        let output = PatternOutput(totalBytes: 100, chunkBytes: 100)
        socket.output = output
        socket.kick()
        // No loop turn has run, so nothing prepared on the ring was submitted: the bytes can
        // only be there if the send was made directly.
        var received = [UInt8](repeating: 0, count: 200)
        let count = recv(pair.client, &received, received.count, Int32(MSG_DONTWAIT))
        #expect(count == 100, "errno \(errno)")
        #expect(Array(received[0..<max(0, count)]) == (0..<max(0, count)).map { PatternOutput.byte(at: $0) })
        #expect(output.sentBytes == 100)
        #expect(socket.ringSendCount == 0)
        try close(socket, on: loop)
    }

    @Test func whatAFullSocketBufferRefusesGoesThroughTheRingInOrder() throws {
        let pair = try LoopbackPair()
        defer { pair.closeClient() }
        let loop = try EventLoop(ringEntries: 16, poolBytes: 1 << 16, logger: Logger(label: "test"))
        let socket = try PeerSocket(loop: loop, connectedFD: pair.accepted)
        // More than both sockets' buffers (4 MiB each, doubled by the kernel) hold while the
        // reader has not started: the direct sends must stop at EAGAIN.
        let totalBytes = 40 << 20
        let output = PatternOutput(totalBytes: totalBytes, chunkBytes: 1 << 20)
        socket.output = output
        socket.kick()
        #expect(output.sentBytes < totalBytes, "the socket buffers took everything; the test proves nothing")
        #expect(socket.ringSendCount == 1, "a full buffer did not hand over to the ring")
        let reader = PatternReader(fd: pair.client, expectedBytes: totalBytes)
        reader.start()
        loop.runWhile(deadlineNs: MonotonicClock.nowNs() + 30_000_000_000) { output.sentBytes < totalBytes }
        let result = reader.join()
        #expect(output.sentBytes == totalBytes)
        #expect(result.bytes == totalBytes)
        #expect(result.firstMismatch == nil, "byte \(result.firstMismatch ?? -1) out of order or wrong")
        #expect(socket.directSendCount > 1, "after the ring's send the socket did not send directly again")
        try close(socket, on: loop)
    }

    private func close(_ socket: PeerSocket, on loop: EventLoop) throws {
        let delegate = ClosedFlag()
        socket.delegate = delegate
        socket.close("test over")
        loop.runWhile(deadlineNs: MonotonicClock.nowNs() + 5_000_000_000) { !delegate.closed }
        #expect(delegate.closed)
    }
}

/// A connected TCP pair on 127.0.0.1: `client` is a plain blocking socket, `accepted` the
/// server side for a PeerSocket (which then owns and closes it).
private struct LoopbackPair {
    let client: Int32
    let accepted: Int32

    init() throws {
        let listener = try Sockets.listenTCP(address: "127.0.0.1:0")
        defer { Glibc.close(listener) }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let clientFD = try Sockets.streamSocket(family: AF_INET)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(clientFD, $0, length) }
        }
        guard connected == 0 else { Glibc.close(clientFD); throw IOError(errno: errno, "connect") }
        // A reader whose sender stalled gives up instead of hanging the test.
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(clientFD, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let acceptedFD = accept(listener, nil, nil)
        guard acceptedFD >= 0 else { Glibc.close(clientFD); throw IOError(errno: errno, "accept") }
        client = clientFD
        accepted = acceptedFD
    }

    func closeClient() { Glibc.close(client) }
}

/// `totalBytes` of a known pattern, offered `chunkBytes` at a time (as TLS offers records).
private final class PatternOutput: PeerSocketOutput {
    let bytes: UnsafeMutableRawBufferPointer
    let chunkBytes: Int
    private(set) var sentBytes = 0

    static func byte(at index: Int) -> UInt8 { UInt8(truncatingIfNeeded: index &* 7 &+ index >> 16) }

    init(totalBytes: Int, chunkBytes: Int) {
        bytes = .allocate(byteCount: totalBytes, alignment: 64)
        for index in 0..<totalBytes { bytes[index] = Self.byte(at: index) }
        self.chunkBytes = chunkBytes
    }

    deinit { bytes.deallocate() }

    func nextBytesToSend() -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[sentBytes..<min(bytes.count, sentBytes + chunkBytes)])
    }

    func sent(_ count: Int) { sentBytes += count }
}

/// Reads `expectedBytes` on its own thread and checks them against PatternOutput's pattern.
private final class PatternReader: @unchecked Sendable {
    let fd: Int32
    let expectedBytes: Int
    private var thread: pthread_t?
    private(set) var bytes = 0
    private(set) var firstMismatch: Int?

    init(fd: Int32, expectedBytes: Int) {
        self.fd = fd
        self.expectedBytes = expectedBytes
    }

    func start() {
        let unmanaged = Unmanaged.passRetained(self)
        var handle = pthread_t()
        pthread_create(&handle, nil, { context in
            let reader = Unmanaged<PatternReader>.fromOpaque(context!).takeRetainedValue()
            reader.run()
            return nil
        }, unmanaged.toOpaque())
        thread = handle
    }

    private func run() {
        var buffer = [UInt8](repeating: 0, count: 256 << 10)
        while bytes < expectedBytes {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { return }
            for index in 0..<count where firstMismatch == nil && buffer[index] != PatternOutput.byte(at: bytes + index) {
                firstMismatch = bytes + index
            }
            bytes += count
        }
    }

    func join() -> (bytes: Int, firstMismatch: Int?) {
        if let thread { pthread_join(thread, nil) }
        return (bytes, firstMismatch)
    }
}

private final class ClosedFlag: PeerSocketDelegate {
    var closed = false
    func peerSocketConnected(_ socket: PeerSocket) {}
    func peerSocket(_ socket: PeerSocket, received bytes: UnsafeRawBufferPointer) {}
    func peerSocketClosed(_ socket: PeerSocket, reason: String) { closed = true }
}
