// A volume for the disk-failure tests (disk failures, read balancing, the diskless primary):
// nbdkit's memory plugin behind its error filter, triggered by files, attached as a file with
// nbdfuse (NBDKitFuseFile). Writes fail with EIO while `failing` is on, reads while
// `readsFailing` is; `fail()` and `repair()` switch both.
import Foundation

final class FailingDisk {
    let directory: TempDirectory
    private let writeTrigger: String
    private let readTrigger: String
    private let file: NBDKitFuseFile

    init(sizeBytes: Int) throws {
        directory = try TempDirectory("failingdisk")
        writeTrigger = directory.file("write-trigger")
        readTrigger = directory.file("read-trigger")
        file = try NBDKitFuseFile(directory: directory, nbdkitArguments: [
            "--filter=error", "memory", "size=\(sizeBytes)", "error=EIO",
            "error-pwrite-rate=100%", "error-pwrite-file=\(writeTrigger)",
            "error-pread-rate=100%", "error-pread-file=\(readTrigger)",
        ])
    }

    var volume: String { file.path }

    var failing: Bool {
        get { FileManager.default.fileExists(atPath: writeTrigger) }
        set { Self.set(writeTrigger, newValue) }
    }

    var readsFailing: Bool {
        get { FileManager.default.fileExists(atPath: readTrigger) }
        set { Self.set(readTrigger, newValue) }
    }

    func fail() {
        failing = true
        readsFailing = true
    }

    func repair() {
        failing = false
        readsFailing = false
    }

    func detach() { file.detach(abruptly: false) }

    private static func set(_ trigger: String, _ on: Bool) {
        if on { FileManager.default.createFile(atPath: trigger, contents: nil) }
        else { try? FileManager.default.removeItem(atPath: trigger) }
    }
}
