// ListenerBindTests: a start whose listening address is still held — as a daemon killed -9 a
// moment ago holds its own until the kernel has cancelled its ring's accept — tries it again
// for a while (Daemon.bindPatienceNs), says so, and serves once the address is free. (An
// address held for good still fails the start: MetricsHTTPTests' address-in-use test.)
import Foundation
import Testing

@Suite struct ListenerBindTests {
    private static let waitLine = "address in use; trying again"

    /// True once the log at `path` holds `line` (polled; false after the timeout).
    private static func logShows(_ path: String, _ line: String, timeoutSeconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), text.contains(line) { return true }
            usleep(20_000)
        }
        return false
    }

    @Test func aStartWaitsForItsAddressAndServesOnceItIsFree() throws {
        // A listener of the test's own, bound without SO_REUSEADDR: the daemon's bind finds
        // the address in use while it is open.
        var holder: TCPEnd? = try TCPEnd.listening()
        let address = holder!.address
        let daemon = try DaemonProcess(extraArguments: ["--metrics-listen", address])
        defer { try? daemon.stop() }
        // The start blocks until READY=1; this thread only reads the log until it returns.
        nonisolated(unsafe) let starting = daemon
        let started = AsyncReply {
            try starting.start()
            return [:]
        }
        // The start says it waits for the address before the holder lets it go.
        // The first start's log (DaemonProcess.logPath once `start` has begun).
        let log = daemon.directory.file("tandemd.1.log")
        #expect(Self.logShows(log, Self.waitLine, timeoutSeconds: 30), "\(daemon.logTail())")
        holder = nil  // closes it
        _ = try started.wait(timeoutSeconds: 30)
        let answer = HTTPProbe.parse(try HTTPProbe.exchange(address, Array("GET /metrics HTTP/1.0\r\n\r\n".utf8)))
        #expect(answer?.status == 200)
        #expect(daemon.isRunning)
    }
}
