// PowerLossVolume: a volume file that forgets every write not yet flushed when its power is
// cut, as a disk's volatile cache does. nbdkit's cache filter in writeback mode keeps writes
// in its own cache and writes them to the backing file only on a flush (or FUA); nbdfuse
// serves that as a file that tandemd opens like any other volume. Cutting the power kills
// nbdkit with SIGKILL (its cache is gone), then nbdfuse, and detaches the mount; powering on
// again serves the backing file as it was left. kill -9 of tandemd alone keeps the page cache
// and cannot show a missing flush; this can.
import Foundation

final class PowerLossVolume {
    let directory: TempDirectory
    let sizeBytes: Int
    var backingPath: String { directory.file("backing.img") }
    var mountPoint: String { directory.file("mnt") }
    /// The file tandemd uses as its volume.
    var path: String { "\(mountPoint)/disk" }
    private var fuse: ChildProcess?

    init(sizeBytes: Int) throws {
        directory = try TempDirectory("powerloss")
        self.sizeBytes = sizeBytes
        guard truncate(backingPath, off_t(0)) == 0 || errno == ENOENT else { throw HarnessError("truncate: errno \(errno)") }
        FileManager.default.createFile(atPath: backingPath, contents: nil)
        guard truncate(backingPath, off_t(sizeBytes)) == 0 else { throw HarnessError("truncate backing: errno \(errno)") }
        guard mkdir(mountPoint, 0o700) == 0 else { throw HarnessError("mkdir \(mountPoint): errno \(errno)") }
        try powerOn()
    }

    deinit { cutPower() }

    /// Serves the backing file through a fresh, empty writeback cache.
    func powerOn() throws {
        precondition(fuse == nil, "the volume is already powered")
        let pidFile = directory.file("nbdfuse.pid")
        unlink(pidFile)
        let nbdkit = try ExternalTool.locate("nbdkit")
        fuse = try ChildProcess(
            executable: try ExternalTool.locate("nbdfuse"),
            arguments: ["-P", pidFile, path, "--command", nbdkit, "-s", "--filter=cache", "file", backingPath,
                        "cache=writeback"],
            outputPath: directory.file("nbdfuse.log"))
        // nbdfuse writes its pid file once the file is being served; it offers no other
        // readiness signal, so wait for that file (bounded).
        for _ in 0..<1000 where !FileManager.default.fileExists(atPath: pidFile) && fuse!.isRunning { usleep(10_000) }
        guard FileManager.default.fileExists(atPath: pidFile) else {
            let log = (try? String(contentsOfFile: directory.file("nbdfuse.log"), encoding: .utf8)) ?? ""
            cutPower()
            throw HarnessError("nbdfuse did not start serving \(path): \(log)")
        }
    }

    /// Drops everything unflushed: nbdkit's cache dies first, then nbdfuse and the mount.
    func cutPower() {
        guard let fuse else { return }
        self.fuse = nil
        let children = (try? String(contentsOfFile: "/proc/\(fuse.pid)/task/\(fuse.pid)/children", encoding: .utf8)) ?? ""
        for child in children.split(separator: " ").compactMap({ pid_t($0) }) { kill(child, SIGKILL) }
        fuse.signal(SIGKILL)
        _ = fuse.wait(timeoutSeconds: 10)
        _ = try? ExternalTool.run("umount", ["-l", mountPoint], timeoutSeconds: 30)
    }

    /// `count` bytes of the backing file at `offset`: what survived the last power cut.
    func backingBytes(offset: Int, count: Int) throws -> [UInt8] {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: backingPath))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        return Array(try handle.read(upToCount: count) ?? Data())
    }
}
