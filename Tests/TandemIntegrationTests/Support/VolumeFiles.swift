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
    /// A regular file's holes (SEEK_DATA, SEEK_HOLE) are hashed as zeros from memory, not read:
    /// reading a hole makes the kernel allocate and zero a page-cache page for each 4 KiB of it,
    /// and the tests' volumes are mostly holes (perf of CatchUpTests: that memset under ext4's
    /// readahead was 9% of the test process's samples). The bytes hashed are the same
    /// (VolumeFilesTests checks a sparse file's digest against a dense copy's).
    static func sha256(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HarnessError("open \(path): errno \(errno)") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw HarnessError("fstat \(path): errno \(errno)") }
        let digest = try Digest()
        if status.st_mode & S_IFMT == S_IFREG {
            try digest.addRegularFile(fd, sizeBytes: off_t(status.st_size), path)
        } else {
            try digest.addRead(fd, from: 0, to: nil, path)  // a block device: no holes to ask for
        }
        return try digest.hex()
    }

    /// A SHA-256 under way, and the 1 MiB buffers it reads into and hashes zeros from.
    private final class Digest {
        static let chunkBytes = 1 << 20
        /// lseek's SEEK_DATA and SEEK_HOLE on Linux (glibc declares them only under _GNU_SOURCE,
        /// which Swift's Glibc module does not set).
        static let seekData: Int32 = 3, seekHole: Int32 = 4
        let context: OpaquePointer
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: chunkBytes, alignment: 4096)
        let zeros = UnsafeMutableRawPointer.allocate(byteCount: chunkBytes, alignment: 4096)

        init() throws {
            guard let context = EVP_MD_CTX_new() else { throw HarnessError("EVP_MD_CTX_new failed") }
            self.context = context
            zeros.initializeMemory(as: UInt8.self, repeating: 0, count: Self.chunkBytes)
            guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else { throw HarnessError("SHA-256 init failed") }
        }

        deinit {
            EVP_MD_CTX_free(context)
            chunk.deallocate()
            zeros.deallocate()
        }

        func add(_ bytes: UnsafeRawPointer, _ count: Int) throws {
            guard EVP_DigestUpdate(context, bytes, count) == 1 else { throw HarnessError("SHA-256 update failed") }
        }

        /// The file's data extents read, its holes added as zeros. Where the filesystem cannot
        /// say (lseek fails with anything but ENXIO), the rest is read.
        func addRegularFile(_ fd: Int32, sizeBytes: off_t, _ path: String) throws {
            var offset: off_t = 0
            while offset < sizeBytes {
                var data = lseek(fd, offset, Self.seekData)
                if data < 0 {
                    guard errno == ENXIO else { return try addRead(fd, from: offset, to: nil, path) }
                    data = sizeBytes  // a hole up to the end
                }
                var zerosLeft = Int(min(data, sizeBytes) - offset)
                while zerosLeft > 0 {
                    let count = min(zerosLeft, Self.chunkBytes)
                    try add(zeros, count)
                    zerosLeft -= count
                }
                guard data < sizeBytes else { return }
                let hole = lseek(fd, data, Self.seekHole)
                guard hole > data else { return try addRead(fd, from: data, to: nil, path) }
                try addRead(fd, from: data, to: min(hole, sizeBytes), path)
                offset = min(hole, sizeBytes)
            }
        }

        /// Bytes `from..<to` of the file (to its end when `to` is nil), read 1 MiB at a time.
        func addRead(_ fd: Int32, from: off_t, to: off_t?, _ path: String) throws {
            var offset = from
            while to.map({ offset < $0 }) ?? true {
                let want = to.map { Int(min(off_t(Self.chunkBytes), $0 - offset)) } ?? Self.chunkBytes
                let count = pread(fd, chunk, want, offset)
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { throw HarnessError("read \(path): errno \(errno)") }
                if count == 0 { break }
                try add(chunk, count)
                offset += off_t(count)
            }
        }

        func hex() throws -> String {
            var digest = [UInt8](repeating: 0, count: 32)
            var size: UInt32 = 0
            guard EVP_DigestFinal_ex(context, &digest, &size) == 1, size == 32 else {
                throw HarnessError("SHA-256 final failed")
            }
            let hex = Array("0123456789abcdef".utf8)
            return String(decoding: digest.flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] }, as: UTF8.self)
        }
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
