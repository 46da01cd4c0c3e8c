// ReorderingVolume: a volume file whose disk completes writes out of submission order, by a
// rule and whatever filesystem the test runs on. nbdkit's sh plugin serves a backing file
// through a small script (written here, run per request, thread model parallel), and nbdfuse
// serves that as a file (NBDKitFuseFile). A write request of `slowBytesMin` or more waits
// `slowDelayMs` before it is written; smaller writes, zeroes and reads go at once. Two
// writes in flight together, a large one first, therefore complete small first: a daemon
// that issues overlapping writes concurrently ends with the older bytes on top. nbdfuse hands
// each write to nbdkit as one request (its max_write is above 1 MiB here), so the rule sees
// the application's own lengths.
import Foundation

final class ReorderingVolume {
    static let slowBytesMin = 64 << 10
    static let slowDelayMs = 50

    let directory: TempDirectory
    let backingPath: String
    /// The file the daemon uses as its volume.
    let path: String
    private var file: NBDKitFuseFile?

    init(sizeBytes: Int) throws {
        directory = try TempDirectory("reorder")
        backingPath = directory.file("backing.img")
        try VolumeFiles.makeZero(backingPath, sizeBytes: sizeBytes)
        let script = directory.file("disk.sh")
        try Self.script(backing: backingPath).write(toFile: script, atomically: true, encoding: .utf8)
        guard chmod(script, 0o755) == 0 else { throw HarnessError("chmod \(script): errno \(errno)") }
        let served = try NBDKitFuseFile(directory: directory, name: "disk", nbdkitArguments: ["sh", script])
        file = served
        path = served.path
    }

    deinit { detach() }

    func detach() {
        file?.detach(abruptly: false)
        file = nil
    }

    /// The plugin script (nbdkit-sh-plugin(3)): `$1` is the method, then handle, count,
    /// offset. Zeroes are written as zeroes (no fallocate mode the backing filesystem might lack).
    /// FUA is emulated by nbdkit with a flush, which syncs the backing file.
    private static func script(backing: String) -> String {
        let seconds = String(format: "%.3f", Double(slowDelayMs) / 1000)
        return """
            #!/bin/sh
            backing='\(backing)'
            case "$1" in
              thread_model) echo parallel ;;
              get_size) stat -c %s "$backing" ;;
              can_write|can_flush|can_zero|can_trim) exit 0 ;;
              can_fua) echo emulate ;;
              pread) exec dd if="$backing" bs=1M iflag=skip_bytes,count_bytes skip="$4" count="$3" status=none ;;
              pwrite)
                if [ "$3" -ge \(slowBytesMin) ]; then sleep \(seconds); fi
                exec dd of="$backing" bs=1M oflag=seek_bytes conv=notrunc seek="$4" status=none ;;
              zero|trim)
                dd if=/dev/zero bs=1M iflag=count_bytes count="$3" status=none \\
                  | dd of="$backing" bs=1M oflag=seek_bytes conv=notrunc seek="$4" status=none ;;
              flush) exec sync "$backing" ;;
              *) exit 2 ;;
            esac

            """
    }
}
