// An accepted NBD client's socket options (NBDListener.configure): a Unix client gets the
// large send buffer that lets a turn's read replies leave in one send, a TCP client gets
// TCP_NODELAY as well. Real sockets; no daemon needed.
import Foundation
import Logging
import Testing
@testable import TandemIO
@testable import TandemNBD

struct NBDClientSocketTests {
    /// What SO_SNDBUF reads back after asking for `NBDListener.clientBufferBytes`: the kernel
    /// doubles the request, capped at net.core.wmem_max unless SO_SNDBUFFORCE was allowed.
    static var expectedSendBufferBytes: Int32 {
        let wmemMax = (try? String(contentsOfFile: "/proc/sys/net/core/wmem_max", encoding: .utf8))
            .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        return 2 * min(NBDListener.clientBufferBytes, wmemMax)
    }

    static func intOption(_ fd: Int32, _ level: Int32, _ option: Int32) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        #expect(getsockopt(fd, level, option, &value, &length) == 0, "getsockopt errno \(errno)")
        return value
    }

    @Test func aUnixClientGetsTheLargeSendBuffer() throws {
        var ends: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
        defer { ends.forEach { close($0) } }
        let defaultBytes = Self.intOption(ends[0], SOL_SOCKET, SO_SNDBUF)
        NBDListener.configure(ends[0], logger: Logger(label: "test"), description: "socketpair")
        let configured = Self.intOption(ends[0], SOL_SOCKET, SO_SNDBUF)
        #expect(configured >= Self.expectedSendBufferBytes, "SO_SNDBUF \(configured)")
        #expect(configured > defaultBytes, "SO_SNDBUF stayed at the default \(defaultBytes)")
    }

    @Test func aTCPClientGetsNoDelayAndTheLargeSendBuffer() throws {
        let listener = try Sockets.listenTCP(address: "127.0.0.1:0")
        defer { close(listener) }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(client) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, length) }
        }
        #expect(connected == 0, "connect errno \(errno)")
        let accepted = accept(listener, nil, nil)
        #expect(accepted >= 0)
        defer { close(accepted) }
        NBDListener.configure(accepted, logger: Logger(label: "test"), description: "tcp")
        #expect(Self.intOption(accepted, Int32(IPPROTO_TCP), TCP_NODELAY) != 0)
        #expect(Self.intOption(accepted, SOL_SOCKET, SO_SNDBUF) >= Self.expectedSendBufferBytes)
    }
}
