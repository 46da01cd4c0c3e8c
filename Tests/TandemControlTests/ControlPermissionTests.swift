import Foundation
import Testing
import TandemControl
import TandemDaemon

/// Connects as an unprivileged user (needs root, setpriv and python3; skipped otherwise).
@Suite struct ControlPermissionTests {
    static let canSwitchUser = getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0
        && access("/usr/bin/python3", X_OK) == 0

    @Test(.enabled(if: canSwitchUser))
    func aUserOutsideTheControlGroupGetsPermissionDeniedAndIsDisconnected() throws {
        let running = try RunningServer()
        defer { running.close() }
        // Open the file-system path so that only the SO_PEERCRED check can refuse.
        chmod(running.directory, 0o755)
        chmod(running.directory + "/run", 0o755)
        chmod(running.path, 0o666)
        let script = """
            import socket
            s = socket.socket(socket.AF_UNIX)
            s.connect("\(running.path)")
            s.sendall(b'{"id":1,"cmd":"ping"}\\n')
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk: break
                data += chunk
            print(data.decode(), end="")
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let reply = try ControlCodec.decodeReply(line: Array(data).filter { $0 != 0x0A }).get()
        guard case .failure(let error) = reply.result else {
            Issue.record("an unprivileged user was served")
            return
        }
        #expect(error.code == .permissionDenied)
        #expect(reply.id == .int(1))
    }
}
