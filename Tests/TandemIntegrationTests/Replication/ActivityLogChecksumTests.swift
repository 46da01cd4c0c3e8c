// Checksum-based resync of the activity log's extents after a primary crash (issue 13 §4;
// docs/replication.md, *Crash restarts*), on a real pair: the restarted primary asks the
// secondary for digests of its extents' regions and ships only the regions that differ. The
// link runs through a LinkProxy that counts what alpha sends after the restart. A sync
// workload leaves the secondary with (nearly) every write the extents hold, so the bytes
// moved are far below the extents' size; a block corrupted on the secondary's file while
// both daemons were down is found by its digest, its region shipped, and the volumes end
// identical.
import Foundation
import Testing

extension Replication {
@Suite struct ActivityLogChecksumTests {
    /// 256 MiB: the workload's 16 extents (64 MiB) are a quarter of it.
    static let volumeBytes = 256 << 20
    static let extentBytes = 4 << 20
    static let workloadExtents = 16
    static let regionBytes = 128 << 10

    /// issue 13 §4 (a): fio's sync random writes over 16 extents, alpha killed with -9 in the
    /// middle. Restarted (link cut until its dirty set is read) it compares the 64 MiB of
    /// extents by digest; after the heal alpha sends a small fraction of them (the regions of
    /// the writes in flight at the kill, the digest requests, the handshake), and the volumes
    /// end identical. Before the compare existed the same run sent the whole 64 MiB.
    @Test func aSyncPrimaryKilledMidWorkloadShipsOnlyTheRegionsWhoseDigestsDiffer() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.volumeBytes, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try pair.createAndEnable(mode: "sync", initialSync: "none")
        try pair.waitInSync()
        let fio = try FioJob(socket: pair.nbdSocket(pair.alpha), regionBytes: Self.workloadExtents * Self.extentBytes,
                             runtimeSeconds: 30, rateIOPS: 2000)
        #expect(proxy.waitForForwarded(.toTarget, atLeast: 4 << 20, timeoutSeconds: 30), "no workload crossed the link")
        pair.alpha.crash()
        _ = try? fio.finish()  // its export died with alpha: fio reports errors
        proxy.cut()
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        proxy.resetCounters()
        proxy.heal()
        #expect((restarted["session_start_reason"] as? String ?? "").contains("crash-recovery"), "\(restarted)")
        let extentsBytes = restarted["out_of_sync_bytes"] as? Int ?? -1
        #expect(extentsBytes == Self.workloadExtents * Self.extentBytes, "the extents fio wrote: \(restarted)")
        let planned = restarted["checksum_resync"] as? JSONObject ?? [:]
        #expect(planned["total_bytes"] as? Int == extentsBytes && planned["running"] as? Bool == true,
                "every region of the extents is to be compared (in sync, the pages do not count): \(restarted)")

        try CatchUpTests.waitCaughtUp(pair)
        let done = try pair.status(pair.alpha)["checksum_resync"] as? JSONObject ?? [:]
        let differing = done["differing_bytes"] as? Int ?? -1
        #expect(done["checked_bytes"] as? Int == extentsBytes && done["running"] as? Bool == false, "\(done)")
        let sentBytes = proxy.forwardedBytes(.toTarget)
        FileHandle.standardError.write(Data(
            "checksum resync: \(extentsBytes) bytes of extents, \(differing) differing, \(sentBytes) bytes alpha→beta\n".utf8))
        // fio's queue depth is 4: at most a few regions can hold a write one copy lacks.
        #expect(differing >= 0 && differing <= 8 * Self.regionBytes, "\(done)")
        // Each region costs a DigestRequest frame (64 bytes with its header) on top.
        let requestBytes = extentsBytes / Self.regionBytes * 64
        let bound = differing + differing / 10 + requestBytes + CatchUpTests.handshakeAllowanceBytes + Self.regionBytes
        #expect(sentBytes <= bound && sentBytes < extentsBytes / 16,
                "alpha sent \(sentBytes) bytes for \(extentsBytes) bytes of extents (\(differing) differing; bound \(bound))")
        try CatchUpTests.expectIdenticalVolumes(pair)
    }

    /// issue 13 §4 (b): a block the pair wrote in sync is changed on beta's file while both
    /// daemons are down, inside an extent alpha's activity log names (alpha was killed). The
    /// compare finds that region, and only it, differing: it is shipped and the volumes end
    /// identical, the corrupted block repaired.
    @Test func aBlockThatDiffersInsideAnExtentIsFoundByItsDigestAndShipped() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.volumeBytes, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try pair.createAndEnable(mode: "sync", initialSync: "none")
        try pair.waitInSync()
        // 300 blocks from block 0: extent 0 in the log, both copies hold them (sync).
        let writer = AcknowledgedWriter(socket: pair.nbdSocket(pair.alpha), blocks: 300)
        writer.start()
        try writer.waitForAcknowledged(300, timeoutSeconds: 60)
        writer.join()
        pair.alpha.crash()
        _ = try pair.beta.stop()
        let victimOffset = UInt64(600 << 10)  // block 150, in the fifth 128 KiB region
        let before = try VolumeFiles.bytes(pair.volume(pair.beta), offset: victimOffset, count: 4096)
        #expect(before == AcknowledgedWriter.pattern(150), "beta held the acknowledged block")
        try VolumeFiles.overwrite(pair.volume(pair.beta), offset: victimOffset, bytes: [UInt8](repeating: 0xEE, count: 4096))

        proxy.cut()
        try pair.beta.start()
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        proxy.resetCounters()
        proxy.heal()
        #expect((restarted["session_start_reason"] as? String ?? "").contains("crash-recovery"), "\(restarted)")
        #expect(restarted["out_of_sync_bytes"] as? Int == Self.extentBytes, "extent 0: \(restarted)")
        try CatchUpTests.waitCaughtUp(pair)
        let done = try pair.status(pair.alpha)["checksum_resync"] as? JSONObject ?? [:]
        #expect(done["checked_bytes"] as? Int == Self.extentBytes && done["differing_bytes"] as? Int == Self.regionBytes,
                "exactly the corrupted block's region differs: \(done)")
        let sentBytes = proxy.forwardedBytes(.toTarget)
        FileHandle.standardError.write(Data("checksum resync: one corrupted block, \(sentBytes) bytes alpha→beta\n".utf8))
        #expect(sentBytes >= Self.regionBytes && sentBytes <= Self.regionBytes + CatchUpTests.handshakeAllowanceBytes + 8192,
                "the region and little else: \(sentBytes)")
        try CatchUpTests.expectIdenticalVolumes(pair)
        let repaired = try VolumeFiles.bytes(pair.volume(pair.beta), offset: victimOffset, count: 4096)
        #expect(repaired == AcknowledgedWriter.pattern(150), "beta's block is repaired")
    }
}
}
