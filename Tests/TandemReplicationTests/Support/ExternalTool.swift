// ExternalTool: runs a command-line program to completion with a timeout and returns its
// exit status and output. Output goes to files, not pipes, so a chatty tool can never
// deadlock against a test that has not read its pipe yet.
import Foundation

struct ToolResult: CustomStringConvertible {
    var command: [String]
    var status: Int32
    var timedOut: Bool
    var stdout: String
    var stderr: String

    var succeeded: Bool { status == 0 && !timedOut }

    var description: String {
        "`\(command.joined(separator: " "))` → status \(status)\(timedOut ? " (timed out)" : "")"
            + "\n--- stdout\n\(stdout.suffix(4000))\n--- stderr\n\(stderr.suffix(4000))"
    }
}

enum ExternalTool {
    static let defaultTimeoutSeconds: Double = 120

    /// Finds `name` on PATH or fails with a message saying how to install it.
    static func locate(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw HarnessError("\(name) not on PATH; run scripts/setup.sh to install the test tools")
    }

    static func run(
        _ name: String, _ arguments: [String], timeoutSeconds: Double = defaultTimeoutSeconds,
        environment: [String: String]? = nil
    ) throws -> ToolResult {
        let executable = name.hasPrefix("/") ? name : try locate(name)
        let scratch = try TempDirectory("tool")
        let outPath = scratch.file("stdout")
        let errPath = scratch.file("stderr")
        let child = try ChildProcess(
            executable: executable, arguments: arguments,
            environment: environment.map { ProcessInfo.processInfo.environment.merging($0) { $1 } },
            outputPath: outPath, errorPath: errPath)
        var timedOut = false
        if !child.wait(timeoutSeconds: timeoutSeconds) {
            timedOut = true
            child.signal(SIGKILL)
            _ = child.wait(timeoutSeconds: 10)
        }
        let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return ToolResult(
            command: [name] + arguments, status: timedOut ? -1 : child.exitStatus ?? -1,
            timedOut: timedOut, stdout: stdout, stderr: stderr)
    }

    /// Runs a tool that must succeed; a failure throws with its full output.
    @discardableResult
    static func check(
        _ name: String, _ arguments: [String], timeoutSeconds: Double = defaultTimeoutSeconds
    ) throws -> ToolResult {
        let result = try run(name, arguments, timeoutSeconds: timeoutSeconds)
        guard result.succeeded else { throw HarnessError("tool failed: \(result)") }
        return result
    }
}
