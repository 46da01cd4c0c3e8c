// The diskless primary on real processes (issue 16 §4, docs/replication.md *Disk failures*):
// alpha's volume is nbdkit's memory plugin behind its error filter, attached with nbdfuse
// (NBDKitFuseFile); trigger files make every read and write of it fail with EIO, and removing
// them repairs it. With the disk failed, fio's verify traffic (writes and reads over NBD) is
// served through beta; once the disk is repaired and alpha re-enabled (or restarted), alpha's
// volume is resynced from beta and both volumes end identical. A restart while diskless never
// serves the failed disk's older content; a peer lost while diskless fails writes and reads
// with EIO instead of serving or acknowledging without it.
import Foundation
import Testing

extension Replication {
@Suite struct DisklessPrimaryTests {
    static let volumeBytes = 32 << 20

    static func makePair(alphaVolume: String) throws -> ReplicatedPair {
        let pair = try ReplicatedPair(sizeBytes: volumeBytes)
        try createAndEnable(pair, alphaVolume: alphaVolume)
        return pair
    }

    /// A sync pair in sync from the start on `pair`'s daemons, alpha's volume `alphaVolume`.
    static func createAndEnable(_ pair: ReplicatedPair, alphaVolume: String) throws {
        try pair.useAsVolume(alphaVolume, of: pair.alpha)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.waitInSync()
    }

    static func uri(_ pair: ReplicatedPair) -> String { "nbd+unix:///\(ReplicatedPair.resource)?socket=\(pair.nbdSocket(pair.alpha))" }

    static func qemuIO(_ pair: ReplicatedPair, _ commands: [String]) throws -> ToolResult {
        try ExternalTool.run("qemu-io", ["-f", "raw"] + commands.flatMap { ["-c", $0] } + [uri(pair)], timeoutSeconds: 120)
    }

    static func expectQemuIO(_ pair: ReplicatedPair, _ commands: [String]) throws {
        let result = try qemuIO(pair, commands)
        let output = result.stdout + result.stderr
        guard result.succeeded, !output.contains("failed"), !output.contains("error") else {
            throw HarnessError("qemu-io \(commands.prefix(4)) failed: \(result)\n\(output.prefix(2000))\n" + pair.alpha.logTail())
        }
    }

    /// fio over NBD: random writes of 4 KiB with crc32c headers, every block read back and
    /// checked (the reads go to the peer while diskless).
    static func fioVerify(_ pair: ReplicatedPair, offset: Int, seed: Int) throws {
        try ExternalTool.check("fio", [
            "--name=diskless", "--ioengine=nbd", "--uri=\(uri(pair))", "--rw=randwrite", "--bs=4k", "--size=8m",
            "--offset=\(offset)", "--iodepth=16", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
            "--randseed=\(seed)", "--verify_state_save=0",
        ])
    }

    /// The next event `name` on an `events` subscription (its fields, wherever the reply puts them).
    static func awaitEvent(_ events: ControlClient, _ name: String) throws -> JSONObject {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let reply = try events.readReply()
            guard reply["event"] as? String == name else { continue }
            return (reply["detail"] as? JSONObject ?? [:]).merging(reply) { first, _ in first }
        }
        throw HarnessError("no \(name) event within 60 s")
    }

    static func diskless(_ status: JSONObject) -> JSONObject { status["diskless"] as? JSONObject ?? [:] }

    /// Waits until alpha's disk was resynced from beta and serves again.
    static func waitResynced(_ pair: ReplicatedPair) throws -> JSONObject {
        try pair.waitFor(pair.alpha, timeoutSeconds: 90, "alpha resynced from beta") {
            $0["diskless"] == nil && $0["disk_state"] as? String == "UpToDate" && $0["serving_from"] as? String == "local"
        }
    }

    static func expectIdenticalVolumes(_ pair: ReplicatedPair) throws {
        try pair.waitInSync()
        _ = try pair.alpha.stop()
        _ = try pair.beta.stop()
        let alpha = try VolumeFiles.sha256(pair.volume(pair.alpha))
        let beta = try VolumeFiles.sha256(pair.volume(pair.beta))
        #expect(alpha == beta, "alpha's resynced volume differs from beta's")
    }

    @Test func aDisklessPrimaryServesFioVerifyThroughItsPeerAndIsResyncedFromItOnceRepaired() throws {
        let disk = try FailingDisk(sizeBytes: Self.volumeBytes)
        defer { disk.detach() }
        let pair = try Self.makePair(alphaVolume: disk.volume)
        try Self.expectQemuIO(pair, ["write -P 0x6e 0 4M", "flush"])
        try pair.waitInSync()
        disk.fail()
        // The first write meets the failed disk and fails; from then on the record says the
        // disk lacks writes and they go to beta only.
        _ = try Self.qemuIO(pair, ["write -P 0x11 16M 4k"])
        try Self.fioVerify(pair, offset: 8 << 20, seed: 21)
        try Self.expectQemuIO(pair, ["write -P 0x5d 24M 1M", "flush", "read -P 0x5d 24M 64k", "read -P 0x6e 0 64k"])
        let status = try pair.status(pair.alpha)
        #expect(status["disk_state"] as? String == "Failed" && status["disk_error"] != nil, "\(status)")
        #expect(status["serving_from"] as? String == "peer", "\(status)")
        #expect(Self.diskless(status)["writes"] as? String == "through-peer", "\(status)")
        #expect(Self.diskless(status)["local_lacks_writes"] as? Bool == true, "\(status)")
        #expect(Self.diskless(status)["bytes_through_peer"] as? Int ?? 0 >= 8 << 20, "\(status)")

        // The operator repairs the disk and re-enables alpha: it is resynced from beta, only
        // the regions written through beta (and the failed write's). While disabled, alpha's
        // export serves nothing from a disk that lacks writes.
        disk.repair()
        try pair.expectOK(try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource]))
        let stale = try Self.qemuIO(pair, ["read -P 0x5d 24M 64k"])
        #expect(!stale.succeeded && (stale.stdout + stale.stderr).contains("Input/output error"), "\(stale)")
        let events = try pair.alpha.control()
        try events.sendLine(Array(#"{"id": 0, "cmd": "events"}"#.utf8))
        _ = try events.readReply()  // subscribed: the enable's events cannot come before it (CI lost one)
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        let started = try Self.awaitEvent(events, "local-resync-started")
        let resyncBytes = started["bytes"] as? Int ?? -1
        #expect(started["whole_volume"] as? Bool == false, "\(started)")
        #expect(resyncBytes >= 9 << 20 && resyncBytes < 12 << 20, "8 MiB of fio, 1 MiB, two 4 KiB writes: \(started)")
        let resynced = try Self.waitResynced(pair)
        #expect(resynced["disk_error"] == nil, "\(resynced)")
        try Self.expectQemuIO(pair, ["read -P 0x5d 24M 1M", "read -P 0x6e 0 4M"])
        try Self.expectIdenticalVolumes(pair)
    }

    @Test func aRestartWhileDisklessNeverServesTheDisksOlderContent() throws {
        let disk = try FailingDisk(sizeBytes: Self.volumeBytes)
        defer { disk.detach() }
        let pair = try Self.makePair(alphaVolume: disk.volume)
        try Self.expectQemuIO(pair, ["write -P 0x21 0 1M", "flush"])
        try pair.waitInSync()
        disk.fail()
        _ = try Self.qemuIO(pair, ["write -P 0x22 4M 4k"])
        try Self.expectQemuIO(pair, ["write -P 0x33 0 1M", "flush"])  // through beta only
        #expect(Self.diskless(try pair.status(pair.alpha))["writes"] as? String == "through-peer")
        // The disk answers again (the record still says it lacks writes) and alpha restarts:
        // it must not serve 0x21, which its disk still holds.
        disk.repair()
        _ = try pair.alpha.stop()
        try pair.alpha.start()
        let restarted = try pair.waitFor(pair.alpha, timeoutSeconds: 60, "alpha connected to beta again") {
            $0["peer_disk_state"] as? String == "UpToDate"
        }
        // Serving locally already only if the pull of the lacking regions (about 1 MiB) is done.
        #expect(restarted["serving_from"] as? String != "local" || restarted["diskless"] == nil, "\(restarted)")
        try Self.expectQemuIO(pair, ["read -P 0x33 0 1M", "write -P 0x44 2M 64k", "read -P 0x44 2M 64k"])
        let resynced = try Self.waitResynced(pair)
        #expect(resynced["disk_state"] as? String == "UpToDate", "\(resynced)")
        // This run pulled what the disk lacks (0x33's MiB and 0x22's block) before serving it.
        let log = (try? String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)) ?? ""
        let done = log.split(separator: "\n").first { $0.contains("event local-resync-done") }.map(String.init) ?? ""
        let pulled = done.components(separatedBy: "pulled_bytes=int(").dropFirst().first?.prefix { $0.isNumber }
        #expect(Int(pulled ?? "") ?? 0 >= (1 << 20) + 4096, "the restart pulled the regions: \(done)")
        try Self.expectQemuIO(pair, ["read -P 0x33 0 1M", "read -P 0x44 2M 64k"])
        try Self.expectIdenticalVolumes(pair)
    }

    @Test func aPeerLostWhileDisklessFailsWritesAndReadsWithEIO() throws {
        let disk = try FailingDisk(sizeBytes: Self.volumeBytes)
        defer { disk.detach() }
        let pair = try Self.makePair(alphaVolume: disk.volume)
        try Self.expectQemuIO(pair, ["write -P 0x31 0 1M", "flush"])
        try pair.waitInSync()
        disk.fail()
        _ = try Self.qemuIO(pair, ["write -P 0x32 4M 4k"])
        try Self.expectQemuIO(pair, ["write -P 0x41 0 64k", "read -P 0x41 0 64k"])
        _ = try pair.beta.stop()
        let away = try pair.waitFor(pair.alpha, timeoutSeconds: 30, "alpha without its peer") {
            $0["connection_state"] as? String != "Connected"
        }
        #expect(Self.diskless(away)["writes"] as? String == "refused", "\(away)")
        #expect((Self.diskless(away)["writes_refused_because"] as? String)?.contains("not connected") == true, "\(away)")
        #expect(away["serving_from"] as? String == "none", "\(away)")
        let write = try Self.qemuIO(pair, ["write -P 0x51 0 64k"])
        #expect(!write.succeeded && (write.stdout + write.stderr).contains("Input/output error"), "\(write)")
        let read = try Self.qemuIO(pair, ["read -P 0x41 0 64k"])
        #expect(!read.succeeded && (read.stdout + read.stderr).contains("Input/output error"), "\(read)")
        // Beta comes back: writes and reads go through it again, and nothing half-written shows.
        try pair.beta.start()
        _ = try pair.waitFor(pair.alpha, timeoutSeconds: 60, "alpha diskless through beta again") {
            $0["serving_from"] as? String == "peer"
        }
        try Self.expectQemuIO(pair, ["read -P 0x31 64k 64k", "write -P 0x52 0 64k", "read -P 0x52 0 64k"])
    }
}
}
