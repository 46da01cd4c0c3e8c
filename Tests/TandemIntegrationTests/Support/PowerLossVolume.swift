// PowerLossVolume: a volume file that forgets every write not yet flushed when its power is
// cut, as a disk's volatile cache does. nbdkit's cache filter in writeback mode keeps writes
// in its own cache and writes them to the backing file only on a flush (or FUA); nbdfuse
// serves that as a file (NBDKitFuseFile) that tandemd opens like any other volume. Cutting
// the power kills nbdkit with SIGKILL (its cache is gone), then nbdfuse; powering on again
// serves the backing file as it was left. kill -9 of tandemd alone keeps the page cache and
// cannot show a missing flush; this can.
import Foundation

final class PowerLossVolume {
    let directory: TempDirectory
    let sizeBytes: Int
    var backingPath: String { directory.file("backing.img") }
    private var file: NBDKitFuseFile?
    /// The file tandemd uses as its volume.
    var path: String { directory.file("mnt/disk") }

    init(sizeBytes: Int) throws {
        directory = try TempDirectory("powerloss")
        self.sizeBytes = sizeBytes
        _ = FileManager.default.createFile(atPath: backingPath, contents: nil)
        guard truncate(backingPath, off_t(sizeBytes)) == 0 else { throw HarnessError("truncate backing: errno \(errno)") }
        try powerOn()
    }

    /// Serves the backing file through a fresh, empty writeback cache.
    func powerOn() throws {
        precondition(file == nil, "the volume is already powered")
        file = try NBDKitFuseFile(directory: directory, name: "disk",
                                  nbdkitArguments: ["--filter=cache", "file", backingPath, "cache=writeback"])
    }

    /// Drops everything unflushed.
    func cutPower() {
        file?.detach(abruptly: true)
        file = nil
    }

    /// `count` bytes of the backing file at `offset`: what survived the last power cut.
    func backingBytes(offset: Int, count: Int) throws -> [UInt8] {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: backingPath))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        return Array(try handle.read(upToCount: count) ?? Data())
    }
}
