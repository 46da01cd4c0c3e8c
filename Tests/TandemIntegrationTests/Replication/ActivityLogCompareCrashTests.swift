// A crash restart's digest compare interrupted (issue 13 §4; docs/replication.md, *Checksum
// resync of the extents*, "A crash during the compare"), on a real pair through a LinkProxy:
// 16 extents (64 MiB) of acknowledged sync writes, alpha killed with -9, its restart comparing
// them at a capped `resync_rate`; then, mid-compare, alpha killed again (its next start
// compares what was left, the regions found the same are not moved again) or beta killed and
// restarted (alpha's compare goes on), or the compare ended early by a clean stop (SIGTERM,
// `disable`) or a link cut (what it still owed is compared, not copied). And a failed flush
// before the compare: alpha's volume a block device whose flushes fail (FlushFailingDisk) at
// the restart — the disk fails.
import Foundation
import Testing

extension Replication {
@Suite struct ActivityLogCompareCrashTests {
    /// The geometry of ActivityLogChecksumTests: 16 extents of 4 MiB on a 256 MiB volume.
    typealias Plain = ActivityLogChecksumTests
    static let regionBytes = Plain.regionBytes
    static let extentsBytes = Plain.workloadExtents * Plain.extentBytes
    /// The compare's pace before the interruption: 64 MiB take 16 s.
    static let cappedRateBytesPerSecond = 4 << 20

    /// One acknowledged 4 KiB write in every 128 KiB region of the 16 extents (512 blocks).
    static let blocks = (0..<(extentsBytes / regionBytes)).map { $0 * (regionBytes / 4096) + $0 % 31 }

    /// A pair in sync (`resync_rate` capped) whose alpha wrote `blocks` and was killed (-9),
    /// the link then cut.
    static func crashedAfterWrites() throws -> (ReplicatedPair, LinkProxy) {
        let pair = try ReplicatedPair(sizeBytes: Plain.volumeBytes, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try pair.createAndEnable(mode: "sync", initialSync: "none")
        try pair.waitInSync()
        try pair.expectOK(try pair.alpha.control().request(
            "set", ["name": ReplicatedPair.resource, "resync_rate": cappedRateBytesPerSecond]))
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: ReplicatedPair.resource)
        for block in blocks { try client.write(offset: UInt64(block) * 4096, data: AcknowledgedWriter.pattern(block)) }
        client.disconnect()
        pair.alpha.crash()
        proxy.cut()
        return (pair, proxy)
    }

    /// `crashedAfterWrites`, alpha restarted; returns the pair once the compare has compared a
    /// quarter of the extents (the link healed meanwhile), with alpha's status then.
    static func compareUnderWay() throws -> (ReplicatedPair, LinkProxy, JSONObject) {
        let (pair, proxy) = try crashedAfterWrites()
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        #expect(restarted["out_of_sync_bytes"] as? Int == extentsBytes, "the 16 extents: \(restarted)")
        proxy.heal()
        let midway = try pair.waitFor(pair.alpha, timeoutSeconds: 60, "a quarter of the extents compared") { status in
            let compare = status["checksum_resync"] as? JSONObject ?? [:]
            return (compare["checked_bytes"] as? Int ?? 0) >= extentsBytes / 4 && compare["running"] as? Bool == true
        }
        let compare = midway["checksum_resync"] as? JSONObject ?? [:]
        let progress = compare["progress"] as? Double ?? -1
        #expect(compare["total_bytes"] as? Int == extentsBytes && progress >= 0.25 && progress < 1,
                "status shows the compare's progress: \(compare)")
        return (pair, proxy, midway)
    }

    /// Every acknowledged block on both copies, and the copies identical.
    static func expectEveryWriteAndIdentical(_ pair: ReplicatedPair) throws {
        try CatchUpTests.expectIdenticalVolumes(pair)
        let missing = try blocks.filter { block in
            try VolumeFiles.bytes(pair.volume(pair.beta), offset: UInt64(block) * 4096, count: 4096)
                != AcknowledgedWriter.pattern(block)
        }
        #expect(missing.isEmpty, "acknowledged blocks missing on beta: \(missing.prefix(20))")
    }

    /// alpha killed (-9) again while its restart compares: the next start compares only what
    /// the pages still mark of the interrupted compare's regions (those found the same were
    /// written clear as it went), and the wire carries digests, not the extents. On the build
    /// before, the second restart's ring named no extent and its pages marked all 64 MiB: they
    /// were copied whole.
    @Test func aPrimaryKilledDuringItsRestartsCompareResumesTheCompare() throws {
        let (pair, proxy, midway) = try Self.compareUnderWay()
        let checkedBeforeKill = (midway["checksum_resync"] as? JSONObject)?["checked_bytes"] as? Int ?? -1
        pair.alpha.crash()
        proxy.cut()
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        proxy.resetCounters()
        try pair.expectOK(try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "resync_rate": 0]))
        proxy.heal()
        #expect((restarted["session_start_reason"] as? String ?? "").contains("crash-recovery"), "\(restarted)")
        let resumed = restarted["checksum_resync"] as? JSONObject ?? [:]
        let resumedBytes = resumed["total_bytes"] as? Int ?? -1
        // What was found the same is on the pages in steps of 4 MiB (ChecksumResync.checkpointBytesDefault).
        #expect(resumedBytes > 0 && resumedBytes <= Self.extentsBytes - checkedBeforeKill + (4 << 20)
                    && resumedBytes < Self.extentsBytes,
                "the second restart compares what was left (\(checkedBeforeKill) compared before the kill): \(resumed)")
        #expect(restarted["out_of_sync_bytes"] as? Int == resumedBytes, "nothing else is marked: \(restarted)")

        try CatchUpTests.waitCaughtUp(pair)
        let done = try pair.status(pair.alpha)["checksum_resync"] as? JSONObject ?? [:]
        let sentBytes = proxy.forwardedBytes(.toTarget)
        FileHandle.standardError.write(Data(("compare interrupted by kill -9: \(checkedBeforeKill) of \(Self.extentsBytes) "
            + "compared before, \(resumedBytes) compared after the restart, \(sentBytes) bytes alpha→beta after it\n").utf8))
        #expect(done["checked_bytes"] as? Int == resumedBytes && done["running"] as? Bool == false, "\(done)")
        #expect(sentBytes < Self.extentsBytes / 16, "alpha sent \(sentBytes) bytes for \(Self.extentsBytes) of extents")
        try Self.expectEveryWriteAndIdentical(pair)
    }

    /// beta killed (-9) and restarted while alpha's restart compares: alpha's session goes on,
    /// asks again what was in flight, and finishes the compare; the wire after beta's restart
    /// carries digests, not the extents.
    @Test func aSecondaryKilledDuringThePrimarysCompareLeavesTheCompareToFinish() throws {
        let (pair, proxy, midway) = try Self.compareUnderWay()
        let checkedBeforeKill = (midway["checksum_resync"] as? JSONObject)?["checked_bytes"] as? Int ?? -1
        pair.beta.crash()
        try pair.waitFor(pair.alpha, "alpha alone") { $0["connection_state"] as? String != "Connected" }
        proxy.resetCounters()
        try pair.beta.start()
        try CatchUpTests.waitCaughtUp(pair)
        let done = try pair.status(pair.alpha)["checksum_resync"] as? JSONObject ?? [:]
        let sentBytes = proxy.forwardedBytes(.toTarget)
        FileHandle.standardError.write(Data(("compare interrupted by beta's kill -9: \(checkedBeforeKill) compared before, "
            + "\(done) at the end, \(sentBytes) bytes alpha→beta after beta's restart\n").utf8))
        #expect(done["checked_bytes"] as? Int == Self.extentsBytes && done["abandoned"] == nil, "\(done)")
        #expect(sentBytes < Self.extentsBytes / 16, "alpha sent \(sentBytes) bytes for \(Self.extentsBytes) of extents")
        try Self.expectEveryWriteAndIdentical(pair)
    }

    /// alpha killed (-9) again right after its crash restart recorded the session's start,
    /// before the node wrote a transaction of its own (the test hook TANDEM_TEST_START_CRASH):
    /// the next start catches up the same 16 extents from the pages the start wrote, and
    /// compares them by digest. On the build before, the ring's newest transaction (the start's)
    /// named no bases: the whole volume was copied.
    @Test func aCrashRightAfterTheRestartsStartCatchesUpTheSameExtents() throws {
        let (pair, proxy) = try Self.crashedAfterWrites()
        pair.alpha.extraEnvironment = ["TANDEM_TEST_START_CRASH": "start-recorded"]
        _ = try? pair.alpha.start()  // killed by the hook, before or after READY=1
        #expect(pair.alpha.waitExited(timeoutSeconds: 30), "the hook did not kill alpha\n\(pair.alpha.logTail())")
        pair.alpha.extraEnvironment = [:]
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        let compare = restarted["checksum_resync"] as? JSONObject ?? [:]
        #expect(restarted["out_of_sync_bytes"] as? Int == Self.extentsBytes && compare["total_bytes"] as? Int == Self.extentsBytes,
                "the 16 extents again, compared, not the volume: \(restarted)")
        proxy.resetCounters()
        try pair.expectOK(try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "resync_rate": 0]))
        proxy.heal()
        try CatchUpTests.waitCaughtUp(pair)
        let sentBytes = proxy.forwardedBytes(.toTarget)
        FileHandle.standardError.write(Data("killed right after the restart's start: \(sentBytes) bytes alpha→beta after\n".utf8))
        #expect(sentBytes < Self.extentsBytes / 16, "alpha sent \(sentBytes) bytes for \(Self.extentsBytes) of extents")
        try Self.expectEveryWriteAndIdentical(pair)
    }

    /// How a test ends alpha's session while its restart compares.
    enum Interruption: String, CaseIterable, CustomStringConvertible {
        /// SIGTERM: the daemon stops cleanly and is started again.
        case daemonStop
        /// `tandemctl disable`, then `enable`, in the same process.
        case disable
        /// The link cut and healed: the session goes on (the compare asks again what was in flight).
        case linkCut
        var description: String { rawValue }
    }

    /// alpha's compare ended early by a clean stop of any kind — the daemon's SIGTERM, a
    /// `disable` — or by a link cut: what the compare still owed is compared at the next start
    /// (or on the next link), not copied; only digests and what differs cross the link, and
    /// the copies end identical with every acknowledged write. States are read at each step.
    /// On the build before, the stop's seal marked the regions not compared yet and the next
    /// start copied them whole (its record was read only by a crash restart).
    @Test(arguments: Interruption.allCases)
    func aCompareEndedEarlyIsResumedNotCopied(_ interruption: Interruption) throws {
        let (pair, proxy, midway) = try Self.compareUnderWay()
        let resource = ["name": ReplicatedPair.resource]
        let checkedBefore = (midway["checksum_resync"] as? JSONObject)?["checked_bytes"] as? Int ?? -1
        #expect(midway["replication_state"] as? String == "SyncSource" && midway["peer_disk_state"] as? String != "UpToDate",
                "alpha compares, its peer is not called UpToDate: \(midway)")
        switch interruption {
        case .daemonStop:
            #expect(try pair.alpha.stop() == 0, "a clean shutdown")
            proxy.cut()
            try pair.alpha.start()
        case .disable:
            try pair.expectOK(try pair.alpha.control().request("disable", resource))
            let disabled = try pair.status(pair.alpha)
            #expect(disabled["enabled"] as? Bool == false && (disabled["out_of_sync_bytes"] as? Int ?? 0) > 0,
                    "disabled, the regions not compared still marked: \(disabled)")
            proxy.cut()
            try pair.expectOK(try pair.alpha.control().request("enable", resource))
        case .linkCut:
            proxy.cut()
            try pair.waitFor(pair.alpha, "alpha alone") { $0["connection_state"] as? String != "Connected" }
        }
        let resumed = try pair.status(pair.alpha)
        let beta = try pair.status(pair.beta)
        #expect(beta["disk_state"] as? String != "UpToDate", "beta cannot hold what alpha has not compared: \(beta)")
        let compare = resumed["checksum_resync"] as? JSONObject ?? [:]
        let resumedBytes = compare["total_bytes"] as? Int ?? -1
        if interruption != .linkCut {
            #expect((resumed["session_start_reason"] as? String ?? "").contains("compared by digest first")
                        && resumed["enabled"] as? Bool == true, "\(resumed)")
            #expect(resumedBytes > 0 && resumedBytes <= Self.extentsBytes - checkedBefore && compare["running"] as? Bool == true,
                    "the start compares what was left (\(checkedBefore) compared before the stop): \(compare)")
            #expect(resumed["out_of_sync_bytes"] as? Int == resumedBytes, "nothing else is marked: \(resumed)")
        }
        proxy.resetCounters()
        try pair.expectOK(try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "resync_rate": 0]))
        proxy.heal()

        try CatchUpTests.waitCaughtUp(pair)
        let caughtUp = try pair.status(pair.alpha)
        let done = caughtUp["checksum_resync"] as? JSONObject ?? [:]
        let sentBytes = proxy.forwardedBytes(.toTarget)
        FileHandle.standardError.write(Data(("compare ended early by \(interruption): \(checkedBefore) of \(Self.extentsBytes) "
            + "compared before, \(done) at the end, \(sentBytes) bytes alpha→beta after it\n").utf8))
        #expect(done["running"] as? Bool == false && done["abandoned"] == nil && (done["differing_bytes"] as? Int) == 0, "\(done)")
        let compared = interruption == .linkCut ? Self.extentsBytes : resumedBytes  // one session: all of it
        #expect(done["checked_bytes"] as? Int == compared, "\(done)")
        #expect(caughtUp["resync_rate_bytes_per_second"] as? Int == 0, "nothing moves once caught up: \(caughtUp)")
        #expect(sentBytes < Self.extentsBytes / 16, "alpha sent \(sentBytes) bytes for \(Self.extentsBytes) of extents")
        try Self.expectEveryWriteAndIdentical(pair)
    }

    /// The flush before the compare fails (fdatasync: EIO from the device): the disk fails as
    /// at any failed flush — disk_state Failed, `disk_error` naming the flush — and no compare
    /// or copy starts from it; beta keeps every acknowledged write. Re-enabled once the disk
    /// flushes again, the extents are copied whole (nothing is compared against a copy that
    /// may have lost them) and the copies end identical. On the build before, the compare was
    /// given up with a warning and the extents copied at once from the suspect copy.
    @Test func aFailedFlushBeforeTheCompareFailsTheDisk() throws {
        let sizeBytes = 16 << 20
        let disk = try FlushFailingDisk(sizeBytes: sizeBytes)
        let pair = try ReplicatedPair(sizeBytes: sizeBytes)
        try pair.useAsVolume(disk.volume, of: pair.alpha)
        try pair.createAndEnable(mode: "sync", initialSync: "none")
        try pair.waitInSync()
        try RawNBDClient.writePatterns(socketPath: pair.nbdSocket(pair.alpha), exportName: ReplicatedPair.resource, blocks: 0..<32)
        pair.alpha.crash()
        disk.flushesFail = true
        try pair.alpha.start()
        let failed = try pair.status(pair.alpha)
        let diskError = failed["disk_error"] as? JSONObject ?? [:]
        #expect(failed["disk_state"] as? String == "Failed" && diskError["operation"] as? String == "flush"
                    && (diskError["message"] as? String ?? "").contains("compare"), "\(failed)")
        #expect(failed["checksum_resync"] == nil && failed["connection_state"] as? String != "Connected", "\(failed)")
        for block in 0..<32 {
            #expect(try VolumeFiles.bytes(pair.volume(pair.beta), offset: UInt64(block) * 4096, count: 4096)
                == AcknowledgedWriter.pattern(block), "beta keeps acknowledged block \(block)")
        }

        disk.flushesFail = false
        _ = try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource])
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        try CatchUpTests.waitCaughtUp(pair)
        let repaired = try pair.status(pair.alpha)
        #expect(repaired["disk_state"] as? String == "UpToDate" && repaired["checksum_resync"] == nil, "\(repaired)")
        try CatchUpTests.expectIdenticalVolumes(pair)
        disk.detach()
    }
}
}
