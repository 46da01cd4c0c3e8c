// Shared helpers for the control tests: temporary directories and a do-nothing logger.
import Logging
import TandemControl

#if canImport(Glibc)
import Glibc
#endif

func makeTemporaryDirectory() -> String {
    var template = Array("/tmp/tandem-test-XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { buffer in
        buffer.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) }
    }
    guard let path else { fatalError("mkdtemp failed: errno \(errno)") }
    return path
}

func removeTree(_ path: String) {
    precondition(path.hasPrefix("/tmp/tandem-test-"))
    _ = system("rm -rf '\(path)'")
}

let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

func parseJSON(_ text: String) -> JSONValue? {
    try? JSONCodec.parse(Array(text.utf8)).get()
}
