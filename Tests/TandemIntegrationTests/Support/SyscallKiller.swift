// SyscallKiller: strace attached to a running daemon, killing it (SIGKILL) at the n-th call
// of one system call from the moment it attached: a crash at an exact point of an
// operation that starts after the daemon did (a resize's metadata syncs).
import Foundation

/// strace attached to a running process, killing it at the `when`-th call of `syscall`.
final class SyscallKiller {
    private let child: ChildProcess
    private let directory: TempDirectory
    private let target: Int32

    init(pid: Int32, syscall: String, when: Int) throws {
        target = pid
        directory = try TempDirectory("strace")
        let log = directory.file("strace.log")
        child = try ChildProcess(
            executable: "/usr/bin/strace",
            arguments: ["-f", "-p", "\(pid)", "-o", "/dev/null", "-e", "trace=\(syscall)",
                        "-e", "inject=\(syscall):signal=KILL:when=\(when)"],
            outputPath: log)
        // strace says "Process N attached" on stderr (into the log) once every thread is held.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if text.contains("attached") { return }
            guard child.isRunning else { throw HarnessError("strace exited: \(text)") }
            usleep(10_000)
        }
        throw HarnessError("strace did not attach to \(pid)")
    }

    /// Whether the traced process died (strace exits with it) within the timeout.
    func waitForKill(timeoutSeconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if kill(target, 0) != 0 && errno == ESRCH { return true }
            if let text = try? String(contentsOfFile: "/proc/\(target)/stat", encoding: .utf8),
                text.split(separator: " ").dropFirst(2).first == "Z" { return true }
            usleep(10_000)
        }
        return false
    }

    func stop() {
        if child.isRunning { child.signal(SIGTERM) }
        _ = child.wait(timeoutSeconds: 10)
    }
}
