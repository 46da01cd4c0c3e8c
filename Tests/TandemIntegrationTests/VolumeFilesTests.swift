// VolumeFiles' digest against its definition: the SHA-256 of every byte of the file. The
// digest skips a regular file's holes (hashing zeros for them instead of reading them); if it
// skipped or misplaced data, two volumes that differ could digest alike and every identity
// check of the integration suite would pass for the wrong reason. Files only, no daemon.
import Foundation
import Testing

@Suite struct VolumeFilesTests {
    /// A sparse file (data at its start, in its middle across a MiB boundary, at its very end;
    /// holes between) digests as a dense copy of the same bytes, and a byte changed in the
    /// sparse file's data, or written into one of its holes, changes its digest.
    @Test func aSparseFileDigestsAsItsDenseCopy() throws {
        let scratch = try TempDirectory("volume-files")
        let sizeBytes = 8 << 20
        let sparse = scratch.file("sparse")
        try VolumeFiles.makeZero(sparse, sizeBytes: sizeBytes)
        let writes: [(offset: UInt64, count: Int)] = [(0, 4096), ((3 << 20) - 8192, 20_000), (UInt64(sizeBytes) - 4096, 4096)]
        var dense = [UInt8](repeating: 0, count: sizeBytes)
        for (index, write) in writes.enumerated() {
            let bytes = (0..<write.count).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ index &+ 1) }
            try VolumeFiles.overwrite(sparse, offset: write.offset, bytes: bytes)
            dense.replaceSubrange(Int(write.offset)..<Int(write.offset) + write.count, with: bytes)
        }
        let densePath = scratch.file("dense")
        try Data(dense).write(to: URL(fileURLWithPath: densePath))
        let digest = try VolumeFiles.sha256(sparse)
        #expect(digest == (try VolumeFiles.sha256(densePath)), "a sparse file and its dense copy")
        #expect(digest == (try ExternalTool.run("/usr/bin/openssl", ["dgst", "-sha256", "-r", densePath]).stdout.prefix(64)),
                "the dense copy as openssl digests it")

        try VolumeFiles.overwrite(sparse, offset: (3 << 20) + 100, bytes: [0xFF])
        let changedData = try VolumeFiles.sha256(sparse)
        #expect(changedData != digest, "a byte changed in the data")
        try VolumeFiles.overwrite(sparse, offset: 5 << 20, bytes: [0x01])
        #expect(try VolumeFiles.sha256(sparse) != changedData, "a byte written into a hole")
    }
}
