// Failover during a staged catch-up, judged by a filesystem (issue 13, *Tests*: "a filesystem on
// it passes e2fsck -fn"). An ext4 image A (mkfs.ext4 -d) is written through alpha's NBD export
// and replicated; the link is cut and alpha's image becomes B (A plus 12 MiB of files written
// with debugfs: more than alpha's 4 MiB buffer, so it goes Ahead); the catch-up is healed on a
// slow link, and once beta stages it the primary is lost and beta promoted with `failover
// --force`. beta's volume must be A exactly (the journal dropped) and pass `e2fsck -fn`; alpha's
// is B and passes too. Only the blocks that differ are written (RawNBDClient), so the volumes
// stay small and the test fast.
import Foundation
import Testing

extension Replication {
@Suite struct StagedFailoverFilesystemTests {
    static let blockBytes = 4096
    static let runBytesMax = 1 << 20

    @Test func aTargetPromotedMidCatchUpHoldsAFilesystemThatPassesE2fsck() throws {
        let pair = try CatchUpTests.makePair()
        let proxy = try #require(pair.proxy)
        try pair.createAndEnable(mode: "async", initialSync: "none", primaryBufferBytes: 4 << 20)
        try pair.waitInSync()
        let scratch = try TempDirectory("staged-fs")
        let (imageA, imageB) = try Self.makeImages(in: scratch, sizeBytes: CatchUpTests.volumeBytes)
        let a = try Self.bytes(imageA)
        let b = try Self.bytes(imageB)
        try Self.write(from: [UInt8](repeating: 0, count: a.count), to: a, pair)
        try pair.waitInSync()
        _ = try pair.waitFor(pair.beta, timeoutSeconds: 20, "beta idle") {
            $0["queued_writes"] as? Int == 0 && $0["writes_in_flight"] as? Int == 0
        }

        proxy.cut()
        let changed = try Self.write(from: a, to: b, pair)
        _ = try CatchUpTests.waitAhead(pair)
        proxy.capBytesPerSecond(StagedCatchUpTests.slowLinkBytesPerSecond)
        proxy.heal()
        _ = try pair.waitFor(pair.beta, timeoutSeconds: 30, "beta staging the catch-up") {
            $0["staging"] as? String == "staging" && ($0["staged_bytes"] as? Int ?? 0) > 0
        }
        proxy.cut()  // the primary is lost mid-catch-up
        try pair.expectOK(try pair.beta.control().request("failover", ["name": ReplicatedPair.resource, "force": true]))
        _ = try pair.waitFor(pair.beta, timeoutSeconds: 20, "beta primary") { $0["role"] as? String == "primary" }
        try pair.alpha.stop()
        try pair.beta.stop()

        let check = try ExternalTool.run("/usr/sbin/e2fsck", ["-fn", pair.volume(pair.beta)], timeoutSeconds: 120)
        print("staged failover: \(changed) bytes changed during the cut; e2fsck -fn of the promoted volume: status \(check.status)")
        #expect(check.status == 0, "e2fsck -fn of the promoted volume: \(check)")
        #expect(try VolumeFiles.sha256(pair.volume(pair.beta)) == VolumeFiles.sha256(imageA),
                "the promoted volume is not the filesystem from before the catch-up")
        #expect(try ExternalTool.run("/usr/sbin/e2fsck", ["-fn", pair.volume(pair.alpha)]).status == 0)
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(imageB))
    }

    // MARK: Steps

    /// A: an ext4 filesystem of `sizeBytes` holding a few small files; B: A plus three 4 MiB
    /// files of random bytes.
    static func makeImages(in scratch: TempDirectory, sizeBytes: Int) throws -> (String, String) {
        let content = scratch.file("content")
        try FileManager.default.createDirectory(atPath: content, withIntermediateDirectories: true)
        for index in 0..<8 {
            try Data("file \(index)\n".utf8).write(to: URL(fileURLWithPath: "\(content)/small\(index).txt"))
        }
        let imageA = scratch.file("a.img")
        try ExternalTool.check("/usr/sbin/mkfs.ext4", ["-q", "-F", "-b", "4096", "-d", content, imageA, "\(sizeBytes / 1024)k"])
        let imageB = scratch.file("b.img")
        try FileManager.default.copyItem(atPath: imageA, toPath: imageB)
        var commands = ""
        for index in 0..<3 {
            let path = scratch.file("big\(index)")
            try VolumeFiles.makeRandom(path, sizeBytes: 4 << 20)
            commands += "write \(path) big\(index).bin\n"
        }
        let script = scratch.file("debugfs.cmd")
        try Data(commands.utf8).write(to: URL(fileURLWithPath: script))
        try ExternalTool.check("/usr/sbin/debugfs", ["-w", "-f", script, imageB])
        return (imageA, imageB)
    }

    static func bytes(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Writes to alpha every 4 KiB block where `new` differs from `old`, adjacent ones together
    /// (up to 1 MiB: alpha's request limit); returns the bytes written.
    @discardableResult
    static func write(from old: [UInt8], to new: [UInt8], _ pair: ReplicatedPair) throws -> Int {
        precondition(old.count == new.count && new.count % blockBytes == 0)
        let differing = differingBlocks(old, new)
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: ReplicatedPair.resource)
        defer { client.disconnect() }
        var written = 0
        var runStart: Int?
        func flush(_ end: Int) throws {
            guard let start = runStart else { return }
            try client.write(offset: UInt64(start), data: Array(new[start..<end]))
            written += end - start
            runStart = nil
        }
        for offset in stride(from: 0, to: new.count, by: blockBytes) {
            if !differing[offset / blockBytes] {
                try flush(offset)
            } else if let start = runStart, offset - start >= runBytesMax {
                try flush(offset)
                runStart = offset
            } else if runStart == nil {
                runStart = offset
            }
        }
        try flush(new.count)
        return written
    }

    /// For each 4 KiB block, whether `old` and `new` differ in it: one memcmp a block. (A
    /// generic `ArraySlice` compare, unoptimised in the debug build, was 78% of this test's CPU
    /// time: 16 of 20 CPU-seconds over the two 128 MiB images.)
    static func differingBlocks(_ old: [UInt8], _ new: [UInt8]) -> [Bool] {
        old.withUnsafeBytes { one in
            new.withUnsafeBytes { other in
                stride(from: 0, to: other.count, by: blockBytes).map { offset in
                    let range = offset..<(offset + blockBytes)
                    return !BlockBytes.equal(UnsafeRawBufferPointer(rebasing: one[range]),
                                             UnsafeRawBufferPointer(rebasing: other[range]))
                }
            }
        }
    }
}
}
