// The diskless primary's regions across a crash (issue 13 §4, docs/replication.md *Disk
// failures*): alpha's disk fails (FailingDisk), writes go through beta and their regions are
// kept in alpha's metadata file (its bitmap pages, marked as the local disk's), alpha is killed
// with SIGKILL, the disk repaired, alpha restarted: the resync from beta moves those regions
// (counted by the LinkProxy between them), not the whole volume, and both volumes end
// identical with every acknowledged write in place. A record whose pages cannot be proven
// pulls the whole volume and says why.
import Foundation
import Testing

extension Replication {
@Suite struct DisklessRegionsRestartTests {
    static let volumeBytes = 64 << 20
    typealias Diskless = DisklessPrimaryTests

    /// A synced pair whose alpha uses `alphaVolume` and dials beta through the proxy.
    static func makePair(alphaVolume: String) throws -> ReplicatedPair {
        let pair = try ReplicatedPair(sizeBytes: volumeBytes, throughProxy: true)
        try pair.useAsVolume(alphaVolume, of: pair.alpha)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.waitInSync()
        return pair
    }

    /// Alpha's disk fails under one write; then writes through beta: 2 MiB, 1 MiB, 1 MiB and
    /// fio's 8 MiB of 4 KiB random writes (verified). Returns the bytes written through beta.
    static func writeThroughPeer(_ pair: ReplicatedPair, _ disk: FailingDisk) throws -> Int {
        try Diskless.expectQemuIO(pair, ["write -P 0x6e 0 16M", "flush"])
        try pair.waitInSync()
        disk.fail()
        _ = try Diskless.qemuIO(pair, ["write -P 0x11 60M 4k"])  // meets the failure: EIO
        try Diskless.expectQemuIO(pair, ["write -P 0x5a 8M 2M", "write -P 0x5b 30M 1M", "write -P 0x5c 50M 1M", "flush"])
        try Diskless.fioVerify(pair, offset: 20 << 20, seed: 13)
        let status = try pair.status(pair.alpha)
        let diskless = Diskless.diskless(status)
        #expect(diskless["writes"] as? String == "through-peer", "\(status)")
        #expect(diskless["local_lacking_regions_recorded"] as? Bool == true, "\(status)")
        #expect(status["out_of_sync_bytes"] as? Int ?? 0 >= 12 << 20, "what alpha's disk lacks is out of sync: \(status)")
        return (2 + 1 + 1 + 8) << 20 + 4096
    }

    /// Kills alpha, repairs its disk, restarts it and waits until beta resynced it; returns the
    /// bytes beta sent alpha meanwhile and the restarted log.
    static func crashRepairRestart(_ pair: ReplicatedPair, _ disk: FailingDisk,
                                   beforeStart: () throws -> Void = {}) throws -> (bytes: Int, log: String) {
        pair.alpha.crash()
        disk.repair()
        try beforeStart()
        pair.proxy!.resetCounters()
        try pair.alpha.start()
        _ = try Diskless.waitResynced(pair)
        let bytes = pair.proxy!.forwardedBytes(.fromTarget)
        let log = (try? String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)) ?? ""
        return (bytes, log)
    }

    static func expectEveryWriteAndIdenticalVolumes(_ pair: ReplicatedPair) throws {
        try Diskless.expectQemuIO(pair, ["read -P 0x6e 0 8M", "read -P 0x5a 8M 2M", "read -P 0x5b 30M 1M",
                                         "read -P 0x5c 50M 1M"])
        try Diskless.expectIdenticalVolumes(pair)
    }

    @Test func aDisklessPrimaryKilledAndRestartedPullsOnlyTheRegionsItWroteThroughItsPeer() throws {
        let disk = try FailingDisk(sizeBytes: Self.volumeBytes)
        defer { disk.detach() }
        let pair = try Self.makePair(alphaVolume: disk.volume)
        let written = try Self.writeThroughPeer(pair, disk)
        let (moved, log) = try Self.crashRepairRestart(pair, disk)
        // Five regions (four writes and the failed one); fio's random writes cover theirs whole.
        let bound = written + written / 10 + 5 * 4096
        print("diskless regions: \(moved) bytes pulled after the restart, \(written) written through beta, bound \(bound)")
        #expect(moved <= bound, "beta sent \(moved) bytes to resync alpha, \(written) were written through it (bound \(bound)); log:\n\(log.suffix(3000))")
        #expect(moved >= written, "every region written through beta is pulled: \(moved) < \(written)")
        #expect(!log.contains("whole volume is pulled"), "\(log.suffix(3000))")
        try Self.expectEveryWriteAndIdenticalVolumes(pair)
    }

    @Test func aRecordWhosePagesCannotBeProvenPullsTheWholeVolumeAndSaysWhy() throws {
        let disk = try FailingDisk(sizeBytes: Self.volumeBytes)
        defer { disk.detach() }
        let pair = try Self.makePair(alphaVolume: disk.volume)
        _ = try Self.writeThroughPeer(pair, disk)
        // The first bitmap page (after two superblock slots and eight activity-log slots) is
        // zeroed while alpha is down: the regions cannot be proven.
        let (moved, log) = try Self.crashRepairRestart(pair, disk) {
            let metadata = try #require(FileHandle(forWritingAtPath: "\(pair.alpha.stateDir)/\(ReplicatedPair.resource).md"))
            try metadata.seek(toOffset: UInt64(10 * 4096))
            try metadata.write(contentsOf: Data(count: 4096))
            try metadata.close()
        }
        print("diskless regions, unproven pages: \(moved) bytes pulled after the restart (volume \(Self.volumeBytes))")
        #expect(moved >= Self.volumeBytes, "the whole volume is pulled: \(moved)")
        #expect(log.contains("regions cannot be proven"), "the log says why: \(log.suffix(3000))")
        try Self.expectEveryWriteAndIdenticalVolumes(pair)
    }

    @Test func aReplacedDiskEnabledWithWholeVolumePullsTheWholeVolume() throws {
        let disk = try FailingDisk(sizeBytes: Self.volumeBytes)
        defer { disk.detach() }
        let pair = try Self.makePair(alphaVolume: disk.volume)
        _ = try Self.writeThroughPeer(pair, disk)
        let refused = try pair.beta.control().request("enable", ["name": ReplicatedPair.resource, "whole_volume": true])
        #expect(refused["ok"] as? Bool != true && refused["error"] as? String == "wrong-state", "\(refused)")
        // The operator disables alpha, stops it and puts a new disk in place (here: the old
        // one's first 16 MiB zeroed, outside every region written through beta).
        try pair.expectOK(try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource]))
        _ = try pair.alpha.stop()
        disk.repair()
        let volume = try #require(FileHandle(forWritingAtPath: disk.volume))
        try volume.write(contentsOf: Data(count: 16 << 20))
        try volume.synchronize()
        try volume.close()
        pair.proxy!.resetCounters()
        try pair.alpha.start()
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource, "whole_volume": true]))
        _ = try Diskless.waitResynced(pair)
        let moved = pair.proxy!.forwardedBytes(.fromTarget)
        print("diskless regions, replaced disk: \(moved) bytes pulled after enable --whole-volume (volume \(Self.volumeBytes))")
        #expect(moved >= Self.volumeBytes, "the whole volume is pulled: \(moved)")
        try Self.expectEveryWriteAndIdenticalVolumes(pair)
    }
}
}
