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
        let output = try runUnprivileged(sending: #"b'{"id":1,"cmd":"ping"}\n'"#)
        try expectRefusal(output)
    }

    /// A refused client that sent more than its first request (pipelined requests) gets the
    /// answer and a clean end of stream, not a reset: closing with its bytes unread would
    /// make the kernel reset the connection, and the client would lose the reason.
    @Test(.enabled(if: canSwitchUser))
    func aRefusedClientThatSentMoreGetsTheAnswerAndACleanClose() throws {
        let output = try runUnprivileged(sending: #"b'{"id":1,"cmd":"ping"}\n' + b'{"cmd":"status"}\n' * 2000"#)
        #expect(!output.hasSuffix("RESET"), "the refused client's connection was reset: \(output)")
        try expectRefusal(output.hasSuffix("RESET") ? String(output.dropLast(5)) : output)
    }

    private func expectRefusal(_ output: String) throws {
        let reply = try ControlCodec.decodeReply(line: Array(output.utf8).filter { $0 != 0x0A }).get()
        guard case .failure(let error) = reply.result else {
            Issue.record("an unprivileged user was served")
            return
        }
        #expect(error.code == .permissionDenied)
        #expect(reply.id == .int(1))
    }

    /// Runs a Python client as nobody: it sends `payload` (a Python bytes expression), reads
    /// until the server ends the stream and prints what it got, then "RESET" if the stream
    /// ended with a reset instead of an end of file.
    private func runUnprivileged(sending payload: String) throws -> String {
        let running = try RunningServer()
        defer { running.close() }
        // Open the file-system path so that only the SO_PEERCRED check can refuse.
        chmod(running.directory, 0o755)
        chmod(running.directory + "/run", 0o755)
        chmod(running.path, 0o666)
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.connect("\(running.path)")
            s.sendall(\(payload))
            data = b""
            reset = False
            while True:
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:
                    reset = True
                    break
                if not chunk: break
                data += chunk
            print(data.decode() + ("RESET" if reset else ""), end="")
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return String(decoding: data, as: UTF8.self)
    }
}
