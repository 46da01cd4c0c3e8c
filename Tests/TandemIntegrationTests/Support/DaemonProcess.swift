// DaemonProcess: one tandemd as a real child process, in its own temporary directory.
// Start-up is awaited through the systemd READY=1 notification; stop is SIGTERM and a
// bounded wait; crash is SIGKILL. Output is kept in a file and quoted in failures.
import Foundation

final class DaemonProcess {
    static let readyTimeoutSeconds: Double = 30
    static let stopTimeoutSeconds: Double = 30

    let directory: TempDirectory
    let stateDir: String
    let controlSocket: String
    var extraArguments: [String]
    var nodeName = "test"
    /// RLIMIT_NOFILE for the daemon (soft and hard), set by a shell's `ulimit -n` that then
    /// execs tandemd; nil: inherited.
    var openFilesLimit: Int?
    /// A program (and its arguments) tandemd runs under, e.g. strace injecting faults;
    /// empty: tandemd runs directly.
    var launchPrefix: [String] = []
    /// More environment for the next `start` (test-only hooks such as
    /// TANDEM_TEST_STAGING_CRASH_AFTER_APPLY_BYTES).
    var extraEnvironment: [String: String] = [:]
    private(set) var child: ChildProcess?
    private var starts = 0

    var pid: Int32 { child?.pid ?? 0 }
    var logPath: String { directory.file("tandemd.\(starts).log") }

    /// A daemon in `directory` (a fresh one by default); not started yet.
    init(directory: TempDirectory? = nil, extraArguments: [String] = []) throws {
        self.directory = try directory ?? TempDirectory("daemon")
        stateDir = self.directory.file("state")
        controlSocket = self.directory.file("control.sock")
        self.extraArguments = extraArguments
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
    }

    /// Convenience: a started daemon.
    static func started(extraArguments: [String] = []) throws -> DaemonProcess {
        let daemon = try DaemonProcess(extraArguments: extraArguments)
        try daemon.start()
        return daemon
    }

    deinit { child?.signal(SIGKILL) }

    var arguments: [String] {
        ["--node-name", nodeName, "--state-dir", stateDir, "--control-socket", controlSocket]
            + extraArguments
    }

    /// Spawns tandemd and returns once it has sent READY=1; throws with its output when it
    /// exits first or stays silent past the timeout.
    func start() throws {
        precondition(child?.isRunning != true, "daemon already running")
        starts += 1
        let notify = try NotifySocket(path: directory.file("notify.\(starts).sock"))
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = notify.path
        environment.merge(extraEnvironment) { $1 }
        let tandemd = try Binaries.tandemd()
        var executable = launchPrefix.first ?? tandemd
        var arguments = launchPrefix.isEmpty ? self.arguments : Array(launchPrefix.dropFirst()) + [tandemd] + self.arguments
        if let openFilesLimit {
            arguments = ["-c", "ulimit -n \(openFilesLimit) && exec \"$0\" \"$@\"", executable] + arguments
            executable = "/bin/sh"
        }
        let child = try ChildProcess(
            executable: executable, arguments: arguments, environment: environment, outputPath: logPath)
        self.child = child
        let deadline = Date().addingTimeInterval(Self.readyTimeoutSeconds)
        while Date() < deadline {
            // Each receive blocks until a datagram arrives or 100 ms pass, so an early exit
            // is noticed promptly as well.
            if let message = notify.receive(timeoutMs: 100),
                message.split(separator: "\n").contains("READY=1")
            {
                return
            }
            if let status = child.exitStatus {
                throw HarnessError("tandemd exited with status \(status) before READY=1\n" + logTail())
            }
        }
        child.signal(SIGKILL)
        throw HarnessError("tandemd sent no READY=1 within \(Self.readyTimeoutSeconds) s\n" + logTail())
    }

    var isRunning: Bool { child?.isRunning ?? false }

    /// After a SIGSTOP: waits until every thread of the daemon is stopped (`T` in
    /// /proc/PID/task/*/stat). The signal is delivered asynchronously; a thread running on
    /// the other CPU may still finish a step after `kill` returned.
    func waitUntilStopped(timeoutSeconds: Double = 10) throws {
        let tasks = "/proc/\(pid)/task"
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            let threads = (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? []
            let states = threads.map { thread -> Character? in
                guard let stat = try? String(contentsOfFile: "\(tasks)/\(thread)/stat", encoding: .utf8),
                      let close = stat.lastIndex(of: ")") else { return nil }
                return stat[stat.index(after: close)...].first { $0 != " " }
            }
            if !states.isEmpty && states.allSatisfy({ $0 == "T" || $0 == "t" }) { return }
            guard Date() < deadline else {
                throw HarnessError("pid \(pid) not stopped after \(timeoutSeconds) s: thread states \(states)")
            }
            usleep(1_000)
        }
    }

    /// SIGTERM and wait for the exit; returns the exit status (0 for a clean shutdown).
    @discardableResult
    func stop() throws -> Int32 {
        guard let child else { return 0 }
        child.signal(SIGTERM)
        guard child.wait(timeoutSeconds: Self.stopTimeoutSeconds) else {
            child.signal(SIGKILL)
            _ = child.wait(timeoutSeconds: 10)
            throw HarnessError("tandemd did not exit within \(Self.stopTimeoutSeconds) s of SIGTERM\n" + logTail())
        }
        return child.exitStatus ?? -1
    }

    /// Waits for a daemon that is to end by itself (a test hook's exit): true once it has.
    func waitExited(timeoutSeconds: Double) -> Bool { child?.wait(timeoutSeconds: timeoutSeconds) ?? true }

    /// SIGKILL and wait: a crash, as far as the daemon can tell.
    func crash() {
        guard let child else { return }
        child.signal(SIGKILL)
        _ = child.wait(timeoutSeconds: 10)
    }

    func logTail() -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return "--- tandemd output (\(logPath))\n" + String(text.suffix(4000))
    }

    /// A connected control client.
    func control() throws -> ControlClient { try ControlClient(path: controlSocket) }

    /// Peak resident memory (VmHWM) in bytes, from /proc.
    func peakResidentBytes() -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kib = UInt64(fields[1]) { return kib * 1024 }
        }
        return nil
    }
}
