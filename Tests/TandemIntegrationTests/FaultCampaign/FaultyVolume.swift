// FaultyVolume: a volume file that fails on demand and can be repaired, for the fault
// campaign's secondary-disk scenarios. `.full`: a file on a 64 MiB ext4 mounted from a loop
// device, with a filler file taking all but `headroomBytes` of its free space, so writes into
// the (sparse) volume's holes fail with ENOSPC; repaired by deleting the filler. `.failing`:
// an nbdfuse file served by nbdkit's memory plugin behind its error filter, whose writes fail
// with EIO while a trigger file exists; repaired by removing the trigger. Needs root (mount,
// FUSE), as DiskFailureTests do.
import Foundation

final class FaultyVolume {
    enum Kind: String, Sendable { case full = "ENOSPC", failing = "EIO" }

    static let filesystemBytes = 64 << 20
    static let headroomBytes = 2 << 20

    let kind: Kind
    let directory: TempDirectory
    /// The file the secondary uses as its volume.
    let path: String
    private var mountPoint: String?
    private var fuse: NBDKitFuseFile?
    private let marker: String

    init(_ kind: Kind, sizeBytes: Int) throws {
        self.kind = kind
        directory = try TempDirectory("faulty")
        switch kind {
        case .full:
            let image = directory.file("fs.img")
            let mountPoint = directory.file("mnt")
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
            try ExternalTool.check("truncate", ["-s", "\(Self.filesystemBytes)", image])
            try ExternalTool.check("mkfs.ext4", ["-q", "-F", image])
            try ExternalTool.check("mount", ["-o", "loop", image, mountPoint])
            self.mountPoint = mountPoint
            path = "\(mountPoint)/volume"
            marker = "\(mountPoint)/filler"
        case .failing:
            marker = directory.file("trigger")
            let file = try NBDKitFuseFile(directory: directory, nbdkitArguments: [
                "--filter=error", "memory", "size=\(sizeBytes)", "error=EIO",
                "error-pwrite-rate=100%", "error-pwrite-file=\(marker)",
            ])
            fuse = file
            path = file.path
        }
    }

    deinit { detach() }

    /// From now on the volume's writes fail (ENOSPC once the headroom is used up; EIO at once).
    func breakIt() throws {
        switch kind {
        case .full:
            var stats = statvfs()
            guard statvfs(mountPoint!, &stats) == 0 else { throw HarnessError("statvfs: errno \(errno)") }
            let freeBytes = Int(stats.f_bavail) * Int(stats.f_frsize)
            try ExternalTool.check("fallocate", ["-l", "\(max(freeBytes - Self.headroomBytes, 4096))", marker])
        case .failing:
            FileManager.default.createFile(atPath: marker, contents: nil)
        }
    }

    /// The volume works again: the filler deleted, or the trigger removed.
    func repair() throws {
        try FileManager.default.removeItem(atPath: marker)
    }

    func detach() {
        fuse?.detach(abruptly: false)
        fuse = nil
        if let mountPoint {
            self.mountPoint = nil
            if (try? ExternalTool.run("umount", [mountPoint]))?.succeeded != true {
                _ = try? ExternalTool.run("umount", ["-l", mountPoint])
            }
        }
    }
}
