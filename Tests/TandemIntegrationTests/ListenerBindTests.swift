// ListenerBindTests: a start whose listening address is still held — as a daemon killed -9 a
// moment ago holds its own until the kernel has cancelled its ring's accept — tries it again
// for a while (Daemon.bindPatienceNs), says so, and serves once the address is free. (An
// address held for good still fails the start: MetricsHTTPTests' address-in-use test.)
import Foundation
import Testing

@Suite struct ListenerBindTests {
    /// A socket bound to `port` without SO_REUSEADDR, as a listener of another process: a
    /// daemon's bind (with SO_REUSEADDR) finds the address in use while it is open.
    private final class PortHolder: @unchecked Sendable {
        private var fd: Int32

        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = LinkProxy.Engine.loopback(port: port)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0, listen(fd, 1) == 0 else {
                close(fd)
                throw HarnessError("holding port \(port): errno \(errno)")
            }
        }

        deinit { release() }

        func release() {
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    private static let waitLine = "address in use; trying again"

    /// True once the daemon's current log holds `line` (polled; false after the timeout).
    private static func logShows(_ daemon: DaemonProcess, _ line: String, timeoutSeconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: daemon.logPath, encoding: .utf8), text.contains(line) { return true }
            usleep(20_000)
        }
        return false
    }

    @Test func aStartWaitsForItsAddressAndServesOnceItIsFree() throws {
        let address = "127.0.0.1:\(try ReplicatedPair.freePort())"
        let holder = try PortHolder(port: Int(address.split(separator: ":").last!)!)
        let daemon = try DaemonProcess(extraArguments: ["--metrics-listen", address])
        defer { try? daemon.stop() }
        // The start blocks until READY=1; this thread only reads the log until it returns.
        nonisolated(unsafe) let starting = daemon
        let started = AsyncReply {
            try starting.start()
            return [:]
        }
        // The start says it waits for the address before the holder lets it go.
        #expect(Self.logShows(daemon, Self.waitLine, timeoutSeconds: 30), "\(daemon.logTail())")
        holder.release()
        _ = try started.wait(timeoutSeconds: 30)
        let answer = HTTPProbe.parse(try HTTPProbe.exchange(address, Array("GET /metrics HTTP/1.0\r\n\r\n".utf8)))
        #expect(answer?.status == 200)
        #expect(daemon.isRunning)
    }
}
