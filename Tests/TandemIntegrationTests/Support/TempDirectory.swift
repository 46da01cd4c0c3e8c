// TempDirectory: a private directory per test, short enough for Unix socket paths
// (sun_path holds 107 bytes), removed when the test ends unless TANDEM_TEST_KEEP is set.
import Foundation

final class TempDirectory {
    let path: String

    init(_ label: String) throws {
        // Volumes live here too: /var/tmp, not a tmpfs, so O_DIRECT and flushes are real.
        let base = ProcessInfo.processInfo.environment["TANDEM_TEST_DIR"] ?? "/var/tmp"
        var template = Array("\(base)/tnd-\(label.prefix(12))-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw HarnessError("mkdtemp in \(base) failed: errno \(errno)") }
        path = String(cString: template)
        precondition(path.utf8.count < 60, "temporary directory path too long for sockets")
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    deinit {
        if ProcessInfo.processInfo.environment["TANDEM_TEST_KEEP"] == nil {
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}
