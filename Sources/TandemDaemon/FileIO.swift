// FileIO: the few blocking file operations the control plane needs (state files, not volume
// data, which goes through io_uring): durable whole-file writes, bounded reads, listings.
#if canImport(Glibc)
import Glibc
#endif

enum FileIO {
    static func failure(_ what: String) -> ResourceStoreError {
        ResourceStoreError("\(what): \(String(cString: strerror(errno)))", errno: errno)
    }

    /// Creates or truncates `path`, writes `bytes` and fsyncs before closing.
    static func writeDurably(_ bytes: [UInt8], to path: String) throws(ResourceStoreError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw failure("open \(path)") }
        defer { close(descriptor) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { throw failure("write \(path)") }
            offset += written
        }
        guard fsync(descriptor) == 0 else { throw failure("fsync \(path)") }
    }

    /// Makes a rename or unlink in `directory` durable.
    static func syncDirectory(_ directory: String) throws(ResourceStoreError) {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("open \(directory)") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw failure("fsync \(directory)") }
    }

    static func readAll(_ path: String, bytesMax: Int) throws(ResourceStoreError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("open \(path)") }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw failure("read \(path)") }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[..<count])
            guard bytes.count <= bytesMax else { throw ResourceStoreError("\(path): larger than \(bytesMax) bytes") }
        }
    }

    /// Entry names except "." and ".."; nil with errno set when the directory cannot be read.
    static func listDirectory(_ path: String) -> [String]? {
        guard let stream = opendir(path) else { return nil }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
