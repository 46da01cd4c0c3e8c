// Data written through NBD by real clients is what a reader gets back and what lands in the
// volume file — at any alignment, through any number of connections.
import Foundation
import Testing

/// One pattern write: `length` bytes of `pattern` at `offset`.
struct PatternWrite: CustomStringConvertible, Sendable {
    var offset: Int
    var length: Int
    var pattern: UInt8

    var description: String { "write -P 0x\(String(pattern, radix: 16)) \(offset) \(length)" }
    var writeCommand: String { description }
    var readCommand: String { "read -P 0x\(String(pattern, radix: 16)) \(offset) \(length)" }
}

/// Aligned, 512-aligned, unaligned and boundary-crossing writes, none overlapping, each with
/// untouched bytes around it so that a read of its neighbours can prove they are unchanged.
let patternWrites: [PatternWrite] = [
    PatternWrite(offset: 0, length: 64 << 10, pattern: 0xab),  // aligned, 64 KiB
    PatternWrite(offset: 1 << 20, length: 4096, pattern: 0x11),  // one aligned block
    PatternWrite(offset: (2 << 20) + 1000, length: 3000, pattern: 0x22),  // unaligned inside a block
    PatternWrite(offset: (3 << 20) + 512, length: 1024, pattern: 0x33),  // sector aligned
    PatternWrite(offset: (4 << 20) + 4096 - 100, length: 200, pattern: 0x44),  // crosses a 4 KiB boundary
    PatternWrite(offset: (5 << 20) + 7, length: 3 * 4096 + 11, pattern: 0x55),  // spans 4 blocks, both ends ragged
    PatternWrite(offset: (6 << 20) + 1, length: 1, pattern: 0x66),  // a single byte
    PatternWrite(offset: (8 << 20) - 4096, length: 4096 + 1 << 20, pattern: 0x77),  // 1 MiB + 4 KiB, unaligned end … aligned start
    PatternWrite(offset: (64 << 20) - 3000, length: 3000, pattern: 0x88),  // the last bytes of the volume
]

/// Reads proving the bytes just before and after `write` still hold zero.
func neighbourReads(_ write: PatternWrite, volumeBytes: Int) -> [String] {
    var commands: [String] = []
    let before = min(write.offset, 4096)
    if before > 0 { commands.append("read -P 0 \(write.offset - before) \(before)") }
    let end = write.offset + write.length
    let after = min(volumeBytes - end, 4096)
    if after > 0 { commands.append("read -P 0 \(end) \(after)") }
    return commands
}

/// qemu-io exits 0 on some failures in older versions; also scan its output.
func expectQemuIOSucceeded(_ result: ToolResult, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(result.succeeded, "\(result)", sourceLocation: sourceLocation)
    #expect(!result.stdout.contains("Pattern verification failed"), "\(result)", sourceLocation: sourceLocation)
    #expect(!result.stderr.contains("failed"), "\(result)", sourceLocation: sourceLocation)
}

extension Integration {
    @Suite struct NBDDataPath {
        static let volumeBytes = 64 << 20

        @Test("qemu-io pattern writes read back, neighbours untouched", arguments: patternWrites)
        func patternWriteReadsBackAndLeavesNeighboursUnchanged(_ write: PatternWrite) throws {
            let export = try NBDExport(sizeBytes: Self.volumeBytes)
            expectQemuIOSucceeded(try export.qemuIO([write.writeCommand]))
            // A second connection (a second qemu-io) sees the write and the untouched neighbours.
            expectQemuIOSucceeded(try export.qemuIO([write.readCommand] + neighbourReads(write, volumeBytes: Self.volumeBytes)))
            // And the bytes are in the volume file.
            let landed = try VolumeFiles.bytes(export.volumePath, offset: UInt64(write.offset), count: write.length)
            #expect(landed == [UInt8](repeating: write.pattern, count: write.length))
        }

        @Test func volumeMatchesAReferenceImageAfterMixedWrites() throws {
            let export = try NBDExport(sizeBytes: Self.volumeBytes)
            let reference = export.directory.file("reference.raw")
            try VolumeFiles.makeZero(reference, sizeBytes: Self.volumeBytes)
            let writes = patternWrites.map(\.writeCommand)
            // Overlapping rewrites on top, also unaligned, so ordering within a connection matters.
            let overwrites = ["write -P 0xcd 2000 10000", "write -P 0xef 4095 2", "write -z 60000 8192"]
            expectQemuIOSucceeded(try export.qemuIO(writes + overwrites + ["flush"], timeoutSeconds: 120))
            try ExternalTool.check("qemu-io", ["-f", "raw"] + (writes + overwrites).flatMap { ["-c", $0] } + [reference])

            let compare = try ExternalTool.run("qemu-img", ["compare", "-f", "raw", "-F", "raw", reference, export.uri])
            #expect(compare.status == 0, "qemu-img compare: images differ or failed: \(compare)")
            #expect(try VolumeFiles.sha256(export.volumePath) == VolumeFiles.sha256(reference))
        }

        @Test func nbdcopyInAndOutIsLossless() throws {
            let export = try NBDExport(sizeBytes: Self.volumeBytes)
            let source = export.directory.file("source.raw")
            let copy = export.directory.file("copy.raw")
            try VolumeFiles.makeRandom(source, sizeBytes: Self.volumeBytes)
            try ExternalTool.check("nbdcopy", ["--flush", source, export.uri], timeoutSeconds: 120)
            try ExternalTool.check("nbdcopy", [export.uri, copy], timeoutSeconds: 120)
            let sourceDigest = try VolumeFiles.sha256(source)
            #expect(try VolumeFiles.sha256(copy) == sourceDigest, "what nbdcopy read back differs from what it wrote")
            #expect(try VolumeFiles.sha256(export.volumePath) == sourceDigest, "the volume file differs from what was written")
        }

        @Test func trimAndWriteZeroesReadBackAsZero() throws {
            let export = try NBDExport(sizeBytes: Self.volumeBytes, content: .random)
            // qemu-io: discard (TRIM) is advisory, so only write -z is checked for content;
            // the discard must still succeed and leave the neighbours alone.
            let before = try VolumeFiles.bytes(export.volumePath, offset: (1 << 20) - 4096, count: 4096)
            expectQemuIOSucceeded(try export.qemuIO([
                "write -z 1048576 1048576", "write -z -u 4194304 65536", "discard 8388608 1048576",
                "read -P 0 1048576 1048576", "read -P 0 4194304 65536",
            ]))
            let after = try VolumeFiles.bytes(export.volumePath, offset: (1 << 20) - 4096, count: 4096)
            #expect(before == after, "the block before a WRITE_ZEROES changed")
            #expect(try VolumeFiles.bytes(export.volumePath, offset: 1 << 20, count: 1 << 20) == [UInt8](repeating: 0, count: 1 << 20))
        }

        @Test func fioRandomWritesOverFourConnectionsVerify() throws {
            let export = try NBDExport(sizeBytes: Self.volumeBytes)
            // Four jobs, four NBD connections, each its own 16 MiB region so verification is exact.
            let common = [
                "--name=randwrite", "--ioengine=nbd", "--uri=\(export.uri)", "--rw=randwrite", "--bs=4k",
                "--iodepth=32", "--numjobs=4", "--size=16m", "--offset_increment=16m", "--verify=crc32c",
                "--verify_fatal=1", "--randrepeat=1", "--group_reporting",
            ]
            let write = try ExternalTool.run("fio", common, timeoutSeconds: 300)
            #expect(write.succeeded, "fio write+verify: \(write)")
            #expect(!write.stdout.contains("verify: bad"), "\(write)")
            // A second, read-only pass over the same layout checks what stayed on the volume.
            let verify = try ExternalTool.run("fio", common + ["--verify_only"], timeoutSeconds: 300)
            #expect(verify.succeeded, "fio verify_only: \(verify)")
            #expect(!verify.stdout.contains("verify: bad"), "\(verify)")
            #expect(export.serverIsAlive)
        }
    }
}
