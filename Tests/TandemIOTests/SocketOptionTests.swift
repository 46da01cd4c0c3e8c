import Glibc
import Logging
import Testing
@testable import TandemIO

/// A socket option that cannot be set is reported with its name and errno, and a peer
/// connection without its liveness options (keepalive, TCP_USER_TIMEOUT) is not used.
struct SocketOptionTests {
    @Test func aFailedOptionNamesItselfAndTheErrno() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { ends.forEach { close($0) } }
        #expect(throws: IOError(errno: ENOTSOCK, "setsockopt TCP_NODELAY")) { try Sockets.setNoDelay(ends[0]) }
        #expect(throws: IOError(errno: ENOTSOCK, "setsockopt SO_SNDBUFFORCE")) {
            try Sockets.setBufferSizes(ends[0], bytes: 1 << 20)
        }
    }

    @Test func everyFailedOptionIsCountedForTheMetrics() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { ends.forEach { close($0) } }
        // Other tests of this process may fail options meanwhile: at least ours are counted.
        let before = Sockets.optionFailureCount.load(ordering: .relaxed)
        #expect(throws: IOError.self) { try Sockets.setNoDelay(ends[0]) }
        #expect(throws: IOError.self) { try Sockets.setBufferSizes(ends[0], bytes: 1 << 20) }
        #expect(Sockets.optionFailureCount.load(ordering: .relaxed) >= before + 2)
    }

    @Test func onlyInternetSocketsAreTakenForTCP() throws {
        var ends: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
        defer { ends.forEach { close($0) } }
        #expect(!Sockets.isInternet(ends[0]))
        let listener = try Sockets.listenTCP(address: "127.0.0.1:0")
        defer { close(listener) }
        #expect(Sockets.isInternet(listener))
        var pipeEnds: [Int32] = [0, 0]
        #expect(pipe(&pipeEnds) == 0)
        defer { pipeEnds.forEach { close($0) } }
        #expect(!Sockets.isInternet(pipeEnds[0]))
    }

    @Test func aPeerSocketThatCannotBeConfiguredIsRefused() throws {
        // A Unix socket has no TCP options: TCP_NODELAY fails, so the socket is not adopted,
        // and the descriptor stays the caller's to close.
        var ends: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
        defer { ends.forEach { close($0) } }
        let loop = try EventLoop(ringEntries: 8, poolBytes: 1 << 16, logger: Logger(label: "test"))
        do {
            _ = try PeerSocket(loop: loop, connectedFD: ends[0])
            Issue.record("a socket without TCP options was adopted")
        } catch {
            #expect(error.operation == "setsockopt TCP_NODELAY", "\(error)")
        }
        #expect(fcntl(ends[0], F_GETFD) >= 0, "the descriptor was closed")
    }
}
