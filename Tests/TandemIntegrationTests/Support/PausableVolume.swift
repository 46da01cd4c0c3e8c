// PausableVolume: a volume file whose I/O a test can hold: nbdkit's file plugin over a
// backing file behind nbdkit's pause filter, served as a file by nbdfuse (NBDKitFuseFile).
// While paused, every request the daemon makes of the volume hangs until `resume`, so the
// backing file holds exactly what had completed when `pause` returned, and a daemon that
// received writes for it cannot have applied them: a moment that stays still for as long as
// the test looks at both the daemon's status and the bytes.
import Foundation

final class PausableVolume {
    let directory: TempDirectory
    let sizeBytes: Int
    let backingPath: String
    private let controlPath: String
    private var file: NBDKitFuseFile?
    private var paused = false
    /// The file the daemon uses as its volume.
    let path: String

    init(sizeBytes: Int) throws {
        directory = try TempDirectory("pausable")
        self.sizeBytes = sizeBytes
        backingPath = directory.file("backing.img")
        controlPath = directory.file("pause.sock")
        try VolumeFiles.makeZero(backingPath, sizeBytes: sizeBytes)
        let served = try NBDKitFuseFile(directory: directory, name: "disk", nbdkitArguments: [
            "--filter=pause", "file", backingPath, "pause-control=\(controlPath)",
        ])
        file = served
        path = served.path
    }

    deinit { detach() }

    /// Holds every request from now on; returns once the requests already in nbdkit are done.
    func pause() throws {
        try command("p", expecting: "P")
        paused = true
    }

    /// Lets the held requests and every later one through.
    func resume() throws {
        try command("r", expecting: "R")
        paused = false
    }

    /// `count` bytes of the backing file at `offset`: what the volume holds, without asking
    /// nbdkit (which does not answer while paused).
    func backingBytes(offset: UInt64, count: Int) throws -> [UInt8] {
        try VolumeFiles.bytes(backingPath, offset: offset, count: count)
    }

    /// Resumes (so that nothing stays blocked on the file) and unmounts.
    func detach() {
        if paused { try? resume() }
        file?.detach(abruptly: false)
        file = nil
    }

    /// The filter answers each command character with its upper case once it took effect.
    private func command(_ letter: Character, expecting answer: Character) throws {
        let control = try UnixStream(path: controlPath, timeoutSeconds: 30)
        defer { control.closeNow() }
        try control.sendAll(Array(String(letter).utf8))
        let (outcome, bytes) = control.readExact(1)
        guard outcome == .data, bytes == Array(String(answer).utf8) else {
            throw HarnessError("nbdkit's pause filter answered \(outcome) \(bytes) to '\(letter)'")
        }
    }
}
