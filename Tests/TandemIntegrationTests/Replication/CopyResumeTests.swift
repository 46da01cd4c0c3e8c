// A primary killed with kill -9 in the middle of a full copy resumes the copy at its next start
// (issue 13 §4: a restart never copies the whole volume where its progress is provable;
// PrimaryNode+CopyCheckpoint, docs/replication.md *Crash restarts*). The copy writes every
// bitmap page once, all set, before its activity-log transactions count them with the copy's
// session as their base, and writes the pages of the chunks beta confirmed every
// `copyCheckpointBytes` (16 MiB here: a 64th of the volume, at least 16 MiB). The restart
// catches up what the durable pages still mark (and the log's extents, none here); beta takes it
// because its own record holds the copy's session, and stays Inconsistent until it is done. The
// LinkProxy counts what alpha sends after the restart; the volumes end identical. On the code
// before, the restart's newest transaction named no base: `session_start` was `full-copy` and
// the whole 128 MiB went again.
import Foundation
import Testing

extension Replication {
@Suite struct CopyResumeTests {
    static let volumeBytes = 128 << 20
    /// The copy's cap: 8 s for the volume, so that the kill lands in its middle.
    static let rateBytesPerSecond = 16 << 20
    /// What a restart may copy again beyond what was unread at the kill: the confirmed bytes
    /// since the last checkpoint (16 MiB), the chunks the peer had not confirmed, and the
    /// status's lag behind the kill (one heartbeat of the copy at its cap).
    static let slackBytes = 16 << 20 + 4 << 20 + rateBytesPerSecond

    @Test func aPrimaryKilledMidFullCopyResumesTheCopyInsteadOfCopyingTheVolumeAgain() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.volumeBytes, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try VolumeFiles.makeRandom(pair.volume(pair.alpha), sizeBytes: pair.sizeBytes)
        try pair.createAndEnable(mode: "sync", initialSync: "full", alphaSettings: ["resync_rate": Self.rateBytesPerSecond])
        let halfway = try pair.waitFor(pair.alpha, "half the volume copied") {
            ($0["out_of_sync_bytes"] as? Int ?? Int.max) <= Self.volumeBytes / 2
        }
        let unreadAtKill = try #require(halfway["out_of_sync_bytes"] as? Int)
        pair.alpha.crash()

        // The link stays cut until the restarted alpha's dirty set has been read.
        proxy.cut()
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        #expect(restarted["session_start"] as? String == "catch-up", "a resumed copy, not a full one: \(restarted)")
        #expect((restarted["session_start_reason"] as? String ?? "").contains("crash-recovery"), "\(restarted)")
        let left = try #require(restarted["out_of_sync_bytes"] as? Int)
        #expect(left >= unreadAtKill - Self.rateBytesPerSecond, "what was unread at the kill is still to copy: \(left)")
        #expect(left <= unreadAtKill + Self.slackBytes && left < Self.volumeBytes * 3 / 4,
                "\(left) bytes to copy after the restart (\(unreadAtKill) were unread at the kill)")
        proxy.resetCounters()
        proxy.heal()

        // Beta takes the resumed copy in place: it has no consistent image to keep.
        let target = try pair.waitFor(pair.beta, "beta a target of the resumed copy") {
            $0["replication_state"] as? String == "SyncTarget"
        }
        #expect(target["disk_state"] as? String == "Inconsistent", "\(target)")
        try pair.expectOK(try pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "resync_rate": 0]))
        try CatchUpTests.waitCaughtUp(pair)
        try CatchUpTests.expectOnlyDirtyRegionsMoved(proxy, dirtyBytes: left, pair: pair)
        FileHandle.standardError.write(Data(
            "copy resume: \(unreadAtKill) bytes unread at the kill, \(left) copied after the restart of \(Self.volumeBytes)\n".utf8))
        try CatchUpTests.expectIdenticalVolumes(pair)
    }
}
}
