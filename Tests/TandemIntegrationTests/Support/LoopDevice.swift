// LoopDevice: a real block device (losetup) over a file, for tests that need a volume the
// daemon cannot extend itself, and one that grows as an operator's lvextend would leave it.
import Foundation

/// A loop block device over a file in a temporary directory (the test runs as root). Detached
/// by its own device name, never by a pattern.
final class LoopDevice {
    let backing: String
    let path: String
    private let directory: TempDirectory
    private var attached = true

    init(sizeBytes: Int) throws {
        directory = try TempDirectory("loop")
        backing = directory.file("backing.img")
        try VolumeFiles.makeZero(backing, sizeBytes: sizeBytes)
        let result = try ExternalTool.run("losetup", ["--find", "--show", backing], timeoutSeconds: 30)
        guard result.succeeded else { throw HarnessError("losetup: \(result)") }
        path = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A loop device over an existing file (a FUSE file served by nbdfuse: FlushFailingDisk).
    init(attaching file: String) throws {
        directory = try TempDirectory("loop")
        backing = file
        let result = try ExternalTool.run("losetup", ["--find", "--show", file], timeoutSeconds: 30)
        guard result.succeeded else { throw HarnessError("losetup: \(result)") }
        path = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Grows the backing file, fills the new area with `byte`, and tells the loop driver
    /// (losetup -c), as an operator's lvextend would leave a device: larger, its new blocks
    /// holding whatever the disk held.
    func grow(to sizeBytes: Int, fillingNewAreaWith byte: UInt8) throws {
        let old = Int(try VolumeFiles.sizeBytes(backing))
        try VolumeFiles.overwrite(backing, offset: UInt64(old), bytes: [UInt8](repeating: byte, count: sizeBytes - old))
        try ExternalTool.check("losetup", ["-c", path])
    }

    func detach() {
        guard attached else { return }
        attached = false
        _ = try? ExternalTool.run("losetup", ["-d", path], timeoutSeconds: 30)
    }

    deinit { detach() }
}
