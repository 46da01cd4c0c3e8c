// NBDTarget: where a daemon-served resource's volume and NBD socket are, for tests that
// manage the daemon themselves (restarts, several resources on one daemon).
import Foundation

/// Paths and client helpers for a resource served by a daemon that a test restarts itself.
struct NBDTarget {
    let name: String
    let volumePath: String
    let socketPath: String
    init(directory: TempDirectory, name: String = "r0") {
        self.name = name
        volumePath = directory.file("\(name).img")
        socketPath = directory.file("\(name).sock")
    }
    var uri: String { "nbd+unix:///\(name)?socket=\(socketPath)" }
    func qemuIO(_ commands: [String]) throws -> ToolResult {
        try ExternalTool.run("qemu-io", ["-f", "raw"] + commands.flatMap { ["-c", $0] } + [uri], timeoutSeconds: 60)
    }
}
