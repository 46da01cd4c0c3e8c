// Binaries: where tandemd and tandemctl are. `swift test` puts the test executable in the
// same build directory as the package's executables, so they are found next to it.
import Foundation

enum Binaries {
    /// The build directory holding this test binary (e.g. `.build/x86_64-unknown-linux-gnu/debug`).
    static let buildDirectory: URL = {
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: exe).deletingLastPathComponent()
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }()

    static func path(_ name: String) throws -> String {
        let candidate = buildDirectory.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw HarnessError(
                "\(name) not found at \(candidate); run `swift build` before `swift test`")
        }
        return candidate
    }

    static func tandemd() throws -> String { try path("tandemd") }
    static func tandemctl() throws -> String { try path("tandemctl") }
}
