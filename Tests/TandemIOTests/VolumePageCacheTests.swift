// VolumePageCacheTests: a volume opened with O_DIRECT leaves none of its clean pages in the
// page cache (Volume.dropCachedPages): a cached page turns every O_DIRECT write over it into
// an io-wq punt (docs/benchmarks.md, *Where a request's time goes*).
import CShims
import Glibc
import Logging
import Testing
@testable import TandemIO

struct VolumePageCacheTests {
    static let fileBytes = 1 << 20

    /// Pages of the first `bytes` of `path` resident in the page cache (mmap + mincore).
    func residentPages(_ path: String, bytes: Int) throws -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        let map = try #require(mmap(nil, bytes, PROT_READ, MAP_SHARED, fd, 0))
        try #require(map != MAP_FAILED)
        defer { munmap(map, bytes) }
        let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))
        var vector = [UInt8](repeating: 0, count: (bytes + pageBytes - 1) / pageBytes)
        try #require(mincore(map, bytes, &vector) == 0)
        return vector.reduce(0) { $0 + Int($1 & 1) }
    }

    /// A file written through the page cache (as `cp` writes a copied volume), made clean.
    func cachedFile() throws -> String {
        let path = VolumeIOTests().scratchPath()
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        let block = [UInt8](repeating: 0xA5, count: 65536)
        for _ in 0..<(Self.fileBytes / block.count) {
            try #require(write(fd, block, block.count) == block.count)
        }
        try #require(fsync(fd) == 0)
        return path
    }

    @Test func openingADirectVolumeEvictsItsCachedPages() throws {
        let path = try cachedFile()
        defer { unlink(path) }
        // The premise: buffered writes left the file's pages cached (not so on a filesystem
        // that refuses O_DIRECT, where the volume is buffered and keeps its cache).
        #expect(try residentPages(path, bytes: Self.fileBytes) > 0)
        let volume = try Volume(path: path, createSizeBytes: nil, logger: Logger(label: "test"))
        try #require(volume.direct, "/var/tmp must accept O_DIRECT for this test")
        #expect(try residentPages(path, bytes: Self.fileBytes) == 0)
    }
}
