// A primary killed with kill -9 right after a crash restart's catch-up ended restarts with a
// catch-up, not a full copy (issue 13 §4: "restarts never copy the whole volume"; the hostile
// run h13). Alpha is killed mid full copy; its restart resumes the copy as a catch-up
// (CopyResumeTests); once that ends, the activity log writes a transaction with the bases beta
// now holds and no extent (nothing was written in the session), and alpha is killed again as
// soon as that transaction is durable. The restart's tracked bitmap is empty: PrimaryStart makes
// it a catch-up of nothing from those bases (`crash-recovery`), which copies one block (a
// session ends with Data, then SyncComplete) and which beta takes from its own record. The
// LinkProxy counts what alpha sends after the second restart; the volumes end identical. On
// the code before, the second restart said `full-copy` ("unclean stop … the whole volume is
// copied") with all 128 MiB to copy.
import Foundation
import Testing

extension Replication {
@Suite struct CrashAfterCatchUpTests {
    static let volumeBytes = 128 << 20
    static let rateBytesPerSecond = 16 << 20
    /// What a catch-up of nothing copies: one bitmap block.
    static let oneBlockBytes = 4096

    @Test func aPrimaryKilledRightAfterItsCrashRestartsCatchUpEndedRestartsWithACatchUpNotAFullCopy() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.volumeBytes, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try VolumeFiles.makeRandom(pair.volume(pair.alpha), sizeBytes: pair.sizeBytes)
        try pair.createAndEnable(mode: "sync", initialSync: "full", alphaSettings: ["resync_rate": Self.rateBytesPerSecond])
        try pair.waitFor(pair.alpha, "half the volume copied") {
            ($0["out_of_sync_bytes"] as? Int ?? Int.max) <= Self.volumeBytes / 2
        }
        pair.alpha.crash()
        try pair.alpha.start()
        let resumed = try pair.status(pair.alpha)
        #expect(resumed["session_start"] as? String == "catch-up", "the copy resumed: \(resumed)")
        try pair.expectOK(try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "resync_rate": 0]))
        try CatchUpTests.waitCaughtUp(pair)
        // The catch-up's end wrote a transaction: the kill comes once none is in flight.
        try pair.waitFor(pair.alpha, "alpha's activity log with no transaction in flight") { status in
            let latency = status["activity_log_write_latency"] as? JSONObject
            return (status["activity_log_writes"] as? Int).map { $0 > 0 && $0 == latency?["count"] as? Int } ?? false
        }
        pair.alpha.crash()

        // The link stays cut until the restarted alpha's status was read.
        proxy.cut()
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        #expect(restarted["session_start"] as? String == "catch-up", "not a full copy: \(restarted)")
        let reason = restarted["session_start_reason"] as? String ?? ""
        #expect(reason.contains("crash-recovery") && reason.contains("nothing differs"), "\(reason)")
        let left = try #require(restarted["out_of_sync_bytes"] as? Int)
        #expect(left == Self.oneBlockBytes, "a catch-up of nothing copies one block: \(left)")
        proxy.resetCounters()
        proxy.heal()
        try CatchUpTests.waitCaughtUp(pair)
        try CatchUpTests.expectOnlyDirtyRegionsMoved(proxy, dirtyBytes: left, pair: pair)
        try CatchUpTests.expectIdenticalVolumes(pair)
    }
}
}
