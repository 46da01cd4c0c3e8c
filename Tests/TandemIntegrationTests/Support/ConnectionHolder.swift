// ConnectionHolder: control connections held by another process (python3): the daemon
// limits connections per client process, so many clients must be other processes.
// (TandemControlTests has the same helper: test targets share no code.)
import Foundation

final class ConnectionHolder {
    let process = Process()
    private let input = Pipe()
    /// One line per connection, in order: "ok" when it answered ping, "busy: MESSAGE" when it
    /// was refused busy, anything else as the reply said.
    private(set) var replies: [String] = []

    /// Opens `connections` connections to `socketPath`, sends ping on each and keeps them
    /// open until `close()`.
    init(socketPath: String, connections: Int) throws {
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.script, socketPath, String(connections)]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var text = ""
        while text.split(separator: "\n").count < connections + 1 {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        let lines = text.split(separator: "\n").map(String.init)
        replies = Array(lines.prefix(connections))
    }

    /// Closes the connections and waits for the process.
    func close() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    private static let script = """
        import json, socket, sys
        held = []
        for _ in range(int(sys.argv[2])):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(sys.argv[1])
                sock.sendall(b'{"id":1,"cmd":"ping"}\\n')
                line = sock.makefile("rb").readline()
            except OSError as error:
                line = json.dumps({"error": "failed", "message": str(error)}).encode()
            reply = json.loads(line) if line else {"error": "closed", "message": ""}
            if reply.get("ok"):
                print("ok")
            elif reply.get("error") == "busy":
                print("busy: " + reply["message"])
            else:
                print(json.dumps(reply))
            held.append(sock)
        print("held", flush=True)
        sys.stdin.read()
        """
}
