// A volume for the disk-failure tests of the read path and the diskless primary: nbdkit's
// memory plugin behind its error filter, attached as a file with nbdfuse (NBDKitFuseFile).
// Every read and write fails with EIO while `fail()` holds, until `repair()`.
import Foundation

final class FailingDisk {
    let directory: TempDirectory
    private let readTrigger: String
    private let writeTrigger: String
    private let file: NBDKitFuseFile

    init(sizeBytes: Int) throws {
        directory = try TempDirectory("failingdisk")
        readTrigger = directory.file("read-trigger")
        writeTrigger = directory.file("write-trigger")
        file = try NBDKitFuseFile(directory: directory, nbdkitArguments: [
            "--filter=error", "memory", "size=\(sizeBytes)", "error=EIO",
            "error-pread-rate=100%", "error-pread-file=\(readTrigger)",
            "error-pwrite-rate=100%", "error-pwrite-file=\(writeTrigger)",
        ])
    }

    var volume: String { file.path }

    func fail() {
        FileManager.default.createFile(atPath: readTrigger, contents: nil)
        FileManager.default.createFile(atPath: writeTrigger, contents: nil)
    }

    func repair() {
        try? FileManager.default.removeItem(atPath: readTrigger)
        try? FileManager.default.removeItem(atPath: writeTrigger)
    }

    func detach() { file.detach(abruptly: false) }
}
