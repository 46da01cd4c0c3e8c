// A block device whose flushes fail with EIO on demand (the failed flush before a crash
// restart's compare): nbdkit's eval plugin over a file (reads and writes with dd; its flush
// fails while a trigger file exists — nbdkit 1.32's error filter cannot fail flushes), served
// by nbdfuse (NBDKitFuseFile) and attached with losetup (LoopDevice), so that fdatasync on the
// device reaches nbdkit as an NBD flush through the loop driver and FUSE. Slow (a process per
// request): for small volumes and few writes.
import Foundation

final class FlushFailingDisk {
    let directory: TempDirectory
    private let trigger: String
    private let file: NBDKitFuseFile
    private let loop: LoopDevice

    init(sizeBytes: Int) throws {
        directory = try TempDirectory("flushfailing")
        trigger = directory.file("flush-trigger")
        let backing = directory.file("backing.img")
        try VolumeFiles.makeZero(backing, sizeBytes: sizeBytes)
        file = try NBDKitFuseFile(directory: directory, nbdkitArguments: [
            "eval", "get_size=echo \(sizeBytes)", "can_write=exit 0", "can_flush=exit 0", "can_fua=echo emulate",
            "pread=dd if=\(backing) skip=$4 count=$3 iflag=skip_bytes,count_bytes status=none",
            "pwrite=dd of=\(backing) seek=$4 conv=notrunc oflag=seek_bytes status=none",
            "flush=if test -e \(trigger); then echo 'EIO flush fails' >&2; exit 1; fi; exit 0",
        ])
        loop = try LoopDevice(attaching: file.path)
    }

    /// The block device the daemon uses as its volume.
    var volume: String { loop.path }

    var flushesFail: Bool {
        get { FileManager.default.fileExists(atPath: trigger) }
        set {
            if newValue { FileManager.default.createFile(atPath: trigger, contents: nil) }
            else { try? FileManager.default.removeItem(atPath: trigger) }
        }
    }

    func detach() {
        loop.detach()
        file.detach(abruptly: false)
    }

    deinit { detach() }
}
