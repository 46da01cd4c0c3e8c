// Read balancing and the diskless primary on real processes (issue 16 §4): a sync pair whose
// primary sends reads to its UpToDate peer (ReadRequest/ReadReply), checked with fio's verify
// and qemu-io's patterns; the peer's own counter of reads it served proves they went there.
// With the peer away, reads fall back to the primary's disk. A read right after an answered
// write of the same block, on several connections at once, never returns the old data. A
// primary whose volume fails (nbdkit's error filter behind nbdfuse, as in DiskFailureTests)
// keeps serving reads through its peer.
import Foundation
import Testing

/// What the concurrent qemu-io workers saw go wrong.
private final class FailureLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String] = []
    func add(_ entry: String) { lock.withLock { entries.append(entry) } }
    var all: [String] { lock.withLock { entries } }
}

extension Replication {
@Suite struct ReadBalancingTests {
    static let volumeBytes = 32 << 20

    /// A sync pair with `read_balancing` on alpha, no initial copy (both volumes zero), in sync.
    static func makePair(_ policy: String, alphaVolume: String? = nil) throws -> ReplicatedPair {
        let pair = try ReplicatedPair(sizeBytes: volumeBytes)
        if let alphaVolume { try pair.useAsVolume(alphaVolume, of: pair.alpha) }
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddress), mode: "sync",
                        initialSync: "none", compression: "none", settings: ["read_balancing": policy])
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.waitInSync()
        return pair
    }

    static func reads(_ status: JSONObject) -> JSONObject { status["read_routing"] as? JSONObject ?? [:] }
    static func servedByPeer(_ status: JSONObject) -> Int { reads(status)["reads_served_by_peer"] as? Int ?? -1 }

    static func qemuIO(_ pair: ReplicatedPair, _ commands: [String]) throws -> ToolResult {
        let uri = "nbd+unix:///\(ReplicatedPair.resource)?socket=\(pair.nbdSocket(pair.alpha))"
        return try ExternalTool.run("qemu-io", ["-f", "raw"] + commands.flatMap { ["-c", $0] } + [uri], timeoutSeconds: 120)
    }

    /// qemu-io must succeed and every pattern it read must match.
    static func expectQemuIO(_ pair: ReplicatedPair, _ commands: [String]) throws {
        let result = try qemuIO(pair, commands)
        let output = result.stdout + result.stderr
        guard result.succeeded, !output.contains("failed"), !output.contains("error") else {
            throw HarnessError("qemu-io \(commands.prefix(4)) failed: \(result)\n\(output.prefix(2000))\n" + pair.alpha.logTail())
        }
    }

    /// qemu-io reads of `pattern` over `length` bytes at `offset` in 64 KiB requests (a read of
    /// more than WireFormat.readBytesMax, 128 KiB, is always served locally).
    static func chunkedReads(_ pattern: String, offset: Int, length: Int) -> [String] {
        stride(from: offset, to: offset + length, by: 65536).map { "read -P \(pattern) \($0) 64k" }
    }

    @Test func roundRobinReadsUnderFioVerifyReturnTheWrittenDataAndThePeerServesThem() throws {
        let pair = try Self.makePair("round-robin")
        let start = try pair.status(pair.alpha)
        #expect(Self.reads(start)["policy"] as? String == "round-robin" && Self.reads(start)["active"] as? Bool == true, "\(start)")
        let uri = "nbd+unix:///r0?socket=\(pair.nbdSocket(pair.alpha))"
        // Writes, then every block read back and checked (crc32c and the block's own header).
        try ExternalTool.check("fio", [
            "--name=readbalance", "--ioengine=nbd", "--uri=\(uri)", "--rw=randwrite", "--bs=4k", "--size=16m",
            "--iodepth=16", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--randseed=11",
            "--verify_state_save=0",
        ])
        // Mixed: reads beside writes of other blocks, each block checked as fio reads it.
        try ExternalTool.check("fio", [
            "--name=mixed", "--ioengine=nbd", "--uri=\(uri)", "--rw=randrw", "--bs=16k", "--size=8m", "--offset=16m",
            "--iodepth=8", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--randseed=12",
            "--verify_state_save=0",
        ])
        let alpha = try pair.status(pair.alpha)
        let beta = try pair.status(pair.beta)
        let served = Self.servedByPeer(alpha)
        // 4096 verify reads of the first job alone, every other one to the peer.
        #expect(served >= 1500, "alpha's peer served \(served) reads: \(Self.reads(alpha))")
        #expect(beta["reads_served_for_peer"] as? Int ?? 0 >= served, "beta's own count: \(beta)")
        #expect(Self.reads(alpha)["peer_reads_in_flight"] as? Int == 0)
        let metrics = try pair.alpha.control().request("status", ["name": ReplicatedPair.resource])
        #expect(Self.servedByPeer(metrics) >= served)
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
    }

    @Test func preferRemoteWithThePeerAwayReadsLocallyAndSetChangesThePolicyLive() throws {
        let pair = try Self.makePair("prefer-local")
        try Self.expectQemuIO(pair, ["write -P 0x3c 0 1M", "read -P 0x3c 0 1M"])
        #expect(Self.servedByPeer(try pair.status(pair.alpha)) == 0, "prefer-local reads nothing from the peer")
        let set = try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "read_balancing": "prefer-remote"])
        #expect(set["ok"] as? Bool == true, "\(set)")
        try Self.expectQemuIO(pair, Self.chunkedReads("0x3c", offset: 0, length: 1 << 20))
        let remote = try pair.status(pair.alpha)
        #expect(Self.servedByPeer(remote) == 16, "1 MiB in 64 KiB reads, all to the peer: \(Self.reads(remote))")
        let before = Self.servedByPeer(remote)

        _ = try pair.beta.stop()
        let away = try pair.waitFor(pair.alpha, timeoutSeconds: 30, "alpha without its peer") {
            $0["connection_state"] as? String != "Connected"
        }
        #expect(Self.reads(away)["active"] as? Bool == false, "\(away)")
        #expect((Self.reads(away)["inactive_reason"] as? String)?.contains("not connected") == true, "\(Self.reads(away))")
        try Self.expectQemuIO(pair, Self.chunkedReads("0x3c", offset: 0, length: 1 << 20)
                                  + ["write -P 0x4d 1M 1M"] + Self.chunkedReads("0x4d", offset: 1 << 20, length: 1 << 20))
        #expect(Self.servedByPeer(try pair.status(pair.alpha)) == before, "no read went to a peer that is away")
    }

    @Test func aReadRightAfterAnAnsweredWriteOfTheSameBlockNeverReturnsOldData() throws {
        let pair = try Self.makePair("prefer-remote")
        // Eight connections at once, each on blocks of its own: write a new pattern, read it
        // back at once, 60 times per block; the reads go to the peer whenever no write is in
        // flight there, so an answered write the peer had not applied would show as old data.
        let failures = FailureLog()
        let uri = "nbd+unix:///\(ReplicatedPair.resource)?socket=\(pair.nbdSocket(pair.alpha))"
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            var commands: [String] = []
            for round in 0..<60 {
                let pattern = String(format: "0x%02x", (worker * 60 + round) % 255 + 1)
                // Blocks 16w ... 16w + 3 and 16w + 8 ... 16w + 11: no two workers share one.
                let offset = (worker * 16 + round % 4) * 4096
                commands += ["write -P \(pattern) \(offset) 4k", "read -P \(pattern) \(offset) 4k",
                             "aio_write -P \(pattern) \(offset + 32768) 4k", "aio_flush", "read -P \(pattern) \(offset + 32768) 4k"]
            }
            do {
                let result = try ExternalTool.run("qemu-io", ["-f", "raw"] + commands.flatMap { ["-c", $0] } + [uri],
                                                  timeoutSeconds: 120)
                let output = result.stdout + result.stderr
                if !result.succeeded || output.contains("failed") || output.contains("error") {
                    failures.add("worker \(worker): \(result)\n\(output.prefix(1500))")
                }
            } catch {
                failures.add("worker \(worker): \(error)")
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all.joined(separator: "\n").prefix(3000))\n\(pair.alpha.logTail())")
        let status = try pair.status(pair.alpha)
        #expect(Self.servedByPeer(status) > 0, "the reads went to the peer: \(Self.reads(status))")
    }

    @Test func readsThroughThePeerCountAgainstTheBandwidthCap() throws {
        let pair = try Self.makePair("prefer-remote")
        try Self.expectQemuIO(pair, ["write -P 0x2a 0 32M"])
        // 4 MiB/s with a burst of one largest request (32 MiB): reading the volume twice
        // through the peer (64 MiB, each ReadRequest costing the bytes it asks for) takes at
        // least (64 - 32) / 4 = 8 s; uncapped, a second or two.
        let rate = 4 << 20
        try pair.expectOK(try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "bandwidth": rate]))
        let reads = (0..<2).flatMap { _ in stride(from: 0, to: Self.volumeBytes, by: 131_072).map { "read -P 0x2a \($0) 128k" } }
        let start = Date()
        try Self.expectQemuIO(pair, reads)
        let seconds = Date().timeIntervalSince(start)
        let status = try pair.status(pair.alpha)
        #expect(Self.servedByPeer(status) >= 512, "the reads went to the peer: \(Self.reads(status))")
        FileHandle.standardError.write(Data("bandwidth: 64 MiB of peer reads in \(seconds) s at 4 MiB/s\n".utf8))
        #expect(seconds >= 7, "64 MiB of peer reads at 4 MiB/s beyond a 32 MiB burst took only \(seconds) s")
    }

    @Test func aPrimaryWhoseDiskFailedServesReadsThroughItsPeer() throws {
        let disk = try FailingDisk(sizeBytes: Self.volumeBytes)
        defer { disk.detach() }
        let pair = try Self.makePair("prefer-local", alphaVolume: disk.volume)
        try Self.expectQemuIO(pair, ["write -P 0x6e 0 4M", "write -P 0x7f 4M 4M", "flush"])
        try pair.waitInSync()
        disk.fail()
        // The first read meets the failed disk, which fails; that read and every later one
        // comes from the peer.
        try Self.expectQemuIO(pair, Self.chunkedReads("0x6e", offset: 0, length: 4 << 20)
                                  + Self.chunkedReads("0x7f", offset: 4 << 20, length: 4 << 20))
        let status = try pair.status(pair.alpha)
        #expect(status["disk_state"] as? String == "Failed" && status["disk_error"] != nil, "\(status)")
        #expect(status["serving_from"] as? String == "peer", "\(status)")
        #expect(Self.servedByPeer(status) >= 64, "8 MiB through the peer: \(Self.reads(status))")
        let beta = try pair.status(pair.beta)
        #expect(beta["reads_served_for_peer"] as? Int ?? 0 >= 64, "\(beta)")
        // Writes go through the peer too (DisklessPrimaryTests).
        try Self.expectQemuIO(pair, ["write -P 0x5d 8M 64k", "read -P 0x5d 8M 64k"])
        try Self.expectQemuIO(pair, Self.chunkedReads("0x6e", offset: 0, length: 1 << 20))
    }
}
}
