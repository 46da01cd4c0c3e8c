// ChildProcess: posix_spawn with a clean signal mask and default signal dispositions, output
// to a file, and an exit awaited by a thread blocked in waitpid.
//
// Not Foundation's Process: on Linux it spawns children with the runner's blocked signals
// (a daemon that inherits a blocked SIGTERM never stops) and it waits for an inherited pipe
// to close (so a tool that forks a server into the background, like nbdkit, never "exits").
import Foundation

final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    let command: [String]
    private let exited = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var rawStatus: Int32?

    /// Spawns `executable` with `arguments`; stdin is /dev/null, stdout and stderr go to
    /// `outputPath` (and stderr to `errorPath` when given).
    init(
        executable: String, arguments: [String], environment: [String: String]? = nil,
        outputPath: String, errorPath: String? = nil
    ) throws {
        command = [executable] + arguments
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        if let errorPath {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let environment = environment ?? ProcessInfo.processInfo.environment
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard status == 0 else { throw HarnessError("posix_spawn \(executable): errno \(status)") }
        self.pid = pid
        Thread.detachNewThread { [self] in reap() }
    }

    private func reap() {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        lock.lock()
        rawStatus = status
        lock.unlock()
        exited.signal()
    }

    var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return rawStatus == nil
    }

    /// Exit code (0…255), or 128+signal when a signal ended it; nil while running.
    var exitStatus: Int32? {
        lock.lock()
        defer { lock.unlock() }
        guard let status = rawStatus else { return nil }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Waits up to `timeoutSeconds` for the exit; true when it exited.
    func wait(timeoutSeconds: Double) -> Bool {
        if !isRunning { return true }
        guard exited.wait(timeout: .now() + timeoutSeconds) == .success else { return false }
        exited.signal()  // keep the semaphore signalled for later waiters
        return true
    }

    func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }
}
