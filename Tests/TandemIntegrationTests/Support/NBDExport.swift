// NBDExport: one volume served over NBD on a Unix socket, by tandemd (the default) or by
// `nbdkit file` when TANDEM_TEST_NBD_SERVER=nbdkit — the same protocol, used to check the
// client-side logic of these tests while the daemon is being written.
import Foundation

final class NBDExport {
    enum Server: String { case tandemd, nbdkit }
    enum Content { case zero, random }

    static var server: Server {
        Server(rawValue: ProcessInfo.processInfo.environment["TANDEM_TEST_NBD_SERVER"] ?? "") ?? .tandemd
    }

    let name = "r0"
    let sizeBytes: Int
    let directory: TempDirectory
    let volumePath: String
    let socketPath: String
    let daemon: DaemonProcess?
    private var nbdkitPID: Int32?

    var uri: String { "nbd+unix:///\(name)?socket=\(socketPath)" }

    /// Starts a server exporting a fresh `sizeBytes` volume as `r0`.
    init(sizeBytes: Int = 64 << 20, content: Content = .zero, server: Server = NBDExport.server) throws {
        self.sizeBytes = sizeBytes
        switch server {
        case .tandemd:
            let daemon = try DaemonProcess.started()
            self.daemon = daemon
            directory = daemon.directory
        case .nbdkit:
            daemon = nil
            directory = try TempDirectory("nbdkit")
        }
        volumePath = directory.file("r0.img")
        socketPath = directory.file("r0.sock")
        if content == .random { try VolumeFiles.makeRandom(volumePath, sizeBytes: sizeBytes) }
        if let daemon {
            try Self.create(on: daemon, name: name, volume: volumePath, socket: socketPath,
                            sizeBytes: content == .random ? nil : sizeBytes)
        } else {
            if content == .zero { try VolumeFiles.makeZero(volumePath, sizeBytes: sizeBytes) }
            nbdkitPID = try startNBDKit()
        }
    }

    deinit { stop() }

    static func create(on daemon: DaemonProcess, name: String, volume: String, socket: String, sizeBytes: Int?) throws {
        var args: JSONObject = ["name": name, "volume": volume, "nbd": ["socket": socket]]
        if let sizeBytes { args["size_bytes"] = sizeBytes }
        let reply = try daemon.control().request("create", args)
        guard reply.ok == true else { throw HarnessError("create \(name) refused: \(reply)\n\(daemon.logTail())") }
    }

    /// nbdkit forks into the background once its socket listens; the pid file says whom to stop.
    private func startNBDKit() throws -> Int32 {
        let pidFile = directory.file("nbdkit.pid")
        try ExternalTool.check("nbdkit", ["-U", socketPath, "-P", pidFile, "file", volumePath, "cache=none"], timeoutSeconds: 30)
        // The background server writes its pid file just after the foreground one exits;
        // nbdkit offers no other readiness signal, so wait for the file (bounded).
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: pidFile) { usleep(10_000) }
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else { throw HarnessError("nbdkit wrote no pid file") }
        return pid
    }

    /// True while the serving process exists and has not exited.
    var serverIsAlive: Bool {
        if let daemon { return daemon.isRunning }
        guard let nbdkitPID else { return false }
        return Self.processExists(nbdkitPID)
    }

    /// nbdkit runs in the background, reparented away from us: a zombie counts as gone.
    private static func processExists(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return !stat[close...].hasPrefix(") Z")
    }

    func stop() {
        if let daemon { _ = try? daemon.stop() }
        if let pid = nbdkitPID {
            kill(pid, SIGTERM)
            nbdkitPID = nil
            // nbdkit is not our child; wait (bounded) for it to go so the volume is quiet.
            for _ in 0..<200 where Self.processExists(pid) { usleep(10_000) }
            if Self.processExists(pid) { kill(pid, SIGKILL) }
        }
    }

    func volumeSHA256() throws -> String { try VolumeFiles.sha256(volumePath) }

    func qemuIO(_ commands: [String], timeoutSeconds: Double = 60) throws -> ToolResult {
        try ExternalTool.run("qemu-io", ["-f", "raw"] + commands.flatMap { ["-c", $0] } + [uri], timeoutSeconds: timeoutSeconds)
    }
}
