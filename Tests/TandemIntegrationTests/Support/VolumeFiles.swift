// VolumeFiles: making, checksumming and comparing the files behind volumes.
import COpenSSL
import Foundation

enum VolumeFiles {
    /// A file of `sizeBytes` random bytes (from /dev/urandom), written in 1 MiB chunks.
    static func makeRandom(_ path: String, sizeBytes: Int) throws {
        let chunkBytes = 1 << 20
        precondition(sizeBytes % chunkBytes == 0, "random files are whole MiB")
        guard let source = FileHandle(forReadingAtPath: "/dev/urandom") else {
            throw HarnessError("cannot open /dev/urandom")
        }
        defer { try? source.close() }
        FileManager.default.createFile(atPath: path, contents: nil)
        let sink = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? sink.close() }
        for _ in 0..<(sizeBytes / chunkBytes) {
            guard let chunk = try source.read(upToCount: chunkBytes), chunk.count == chunkBytes else {
                throw HarnessError("short read from /dev/urandom")
            }
            try sink.write(contentsOf: chunk)
        }
    }

    /// A sparse, all-zero file of `sizeBytes`.
    static func makeZero(_ path: String, sizeBytes: Int) throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        guard truncate(path, off_t(sizeBytes)) == 0 else { throw HarnessError("truncate \(path): errno \(errno)") }
    }

    /// The file's SHA-256 in hex, computed in this process by OpenSSL (the CPU's SHA
    /// instructions) over 1 MiB reads. The tests digest two volumes at the end of most of them:
    /// an `openssl dgst` process for each cost more to start than to hash (a tenth of the
    /// fault campaign's CPU time; coreutils' sha256sum, before it, five times that).
    static func sha256(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HarnessError("open \(path): errno \(errno)") }
        defer { close(fd) }
        guard let context = EVP_MD_CTX_new() else { throw HarnessError("EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else { throw HarnessError("SHA-256 init failed") }
        let chunkBytes = 1 << 20
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: chunkBytes, alignment: 4096)
        defer { chunk.deallocate() }
        while true {
            let count = read(fd, chunk, chunkBytes)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw HarnessError("read \(path): errno \(errno)") }
            if count == 0 { break }
            guard EVP_DigestUpdate(context, chunk, count) == 1 else { throw HarnessError("SHA-256 update failed") }
        }
        var digest = [UInt8](repeating: 0, count: 32)
        var size: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &digest, &size) == 1, size == 32 else {
            throw HarnessError("SHA-256 final failed")
        }
        let hex = Array("0123456789abcdef".utf8)
        return String(decoding: digest.flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] }, as: UTF8.self)
    }

    static func sizeBytes(_ path: String) throws -> UInt64 {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.size] as? NSNumber)?.uint64Value ?? 0
    }

    /// Bytes `offset..<offset+count` of a file.
    static func bytes(_ path: String, offset: UInt64, count: Int) throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw HarnessError("cannot open \(path)") }
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        return Array(try handle.read(upToCount: count) ?? Data())
    }

    /// Writes `bytes` at `offset` of a file and makes them durable, as a disk that changed
    /// behind a daemon's back would.
    static func overwrite(_ path: String, offset: UInt64, bytes: [UInt8]) throws {
        guard let handle = FileHandle(forUpdatingAtPath: path) else { throw HarnessError("cannot open \(path)") }
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: bytes)
        try handle.synchronize()
    }

    /// True when `path` is the same file as `other`, byte for byte (cmp).
    static func identical(_ path: String, _ other: String) throws -> Bool {
        try ExternalTool.run("cmp", [path, other]).status == 0
    }
}
