// NBDKitFuseFile: a file served by nbdfuse from an nbdkit that nbdfuse itself spawns
// (`nbdkit -s`, over a pipe: no socket, so no race between nbdkit listening and nbdfuse
// connecting). The tests use it for volumes with real faults: nbdkit's error filter (EIO on
// demand) and its cache filter in writeback mode (writes lost at a power cut).
import Foundation

final class NBDKitFuseFile {
    let mountPoint: String
    /// The file tandemd uses as its volume.
    let path: String
    private let directory: TempDirectory
    private var fuse: ChildProcess?

    /// Serves `nbdkitArguments` (plugin, filters, parameters) at `directory/mnt/<name>`.
    init(directory: TempDirectory, name: String = "volume", nbdkitArguments: [String]) throws {
        self.directory = directory
        mountPoint = directory.file("mnt")
        path = "\(mountPoint)/\(name)"
        if !FileManager.default.fileExists(atPath: mountPoint) {
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        }
        let pidFile = directory.file("nbdfuse.pid")
        unlink(pidFile)
        fuse = try ChildProcess(
            executable: try ExternalTool.locate("nbdfuse"),
            arguments: ["-P", pidFile, path, "--command", try ExternalTool.locate("nbdkit"), "-s"] + nbdkitArguments,
            outputPath: directory.file("nbdfuse.log"))
        // nbdfuse writes its pid file once the file is served; it offers no other readiness
        // signal, so wait for that file (bounded).
        for _ in 0..<1000 where !FileManager.default.fileExists(atPath: pidFile) && fuse!.isRunning { usleep(10_000) }
        guard FileManager.default.fileExists(atPath: pidFile) else {
            let log = (try? String(contentsOfFile: directory.file("nbdfuse.log"), encoding: .utf8)) ?? ""
            detach(abruptly: true)
            throw HarnessError("nbdfuse did not attach \(path): \(log)")
        }
    }

    deinit { detach(abruptly: true) }

    var isAttached: Bool { fuse != nil }

    /// Ends the file. `abruptly`: nbdkit dies by SIGKILL first, so whatever it held (a
    /// writeback cache) is lost, then nbdfuse; otherwise an orderly unmount.
    func detach(abruptly: Bool) {
        guard let fuse else { return }
        self.fuse = nil
        if abruptly {
            let children = (try? String(contentsOfFile: "/proc/\(fuse.pid)/task/\(fuse.pid)/children", encoding: .utf8)) ?? ""
            for child in children.split(separator: " ").compactMap({ pid_t($0) }) { kill(child, SIGKILL) }
            fuse.signal(SIGKILL)
            _ = fuse.wait(timeoutSeconds: 10)
            _ = try? ExternalTool.run("umount", ["-l", mountPoint], timeoutSeconds: 30)
            return
        }
        if (try? ExternalTool.run("umount", [mountPoint]))?.succeeded != true {
            _ = try? ExternalTool.run("umount", ["-l", mountPoint])
        }
        if !fuse.wait(timeoutSeconds: 10) { fuse.signal(SIGKILL) }
    }
}
