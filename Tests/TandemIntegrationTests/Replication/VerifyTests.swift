// Online verify on real daemons: a block changed behind the secondary daemon's back is found,
// reported and copied back; a pair that is in sync verifies clean; verify is refused where it
// cannot run.
import Foundation
import Testing

extension Replication {
@Suite(.serialized) struct VerifyTests {
    @Test func verifyFindsAndRepairsABlockCorruptedBehindTheSecondarysBack() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        try pair.createAndEnable()
        try pair.waitInSync()
        try RawNBDClient.writePatterns(socketPath: pair.nbdSocket(pair.alpha), blocks: 1000..<1400, flush: true)
        try pair.waitInSync()
        // 4 KiB at 5 MiB + 8 KiB changes on beta's disk without beta knowing.
        let corruptAt: UInt64 = (5 << 20) + 8192
        try VolumeFiles.overwrite(pair.volume(pair.beta), offset: corruptAt, bytes: [UInt8](repeating: 0xC3, count: 4096))
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) != VolumeFiles.sha256(pair.volume(pair.beta)))
        let events = try EventWatch(pair.alpha)
        let started = try pair.expectOK(try pair.alpha.control().request("verify", ["name": ReplicatedPair.resource]))
        #expect((started["verify"] as? [String: Any])?["running"] as? Bool == true, "\(started)")
        let done = try pair.waitFor(pair.alpha, "the verify to end") {
            ($0["verify"] as? [String: Any])?["running"] as? Bool == false
        }
        let verify = done["verify"] as? [String: Any] ?? [:]
        #expect(verify["checked_bytes"] as? Int == 16 << 20, "\(verify)")
        #expect(verify["mismatched_bytes"] as? Int == 1 << 20, "only the 1 MiB region holding the change: \(verify)")
        #expect(verify["aborted"] == nil, "\(verify)")
        #expect(events.saw("verify-mismatch", timeoutSeconds: 10))
        #expect(events.saw("verify-repair-done", timeoutSeconds: 60))
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)),
                "the region that differed was copied back")
    }

    @Test func aPairInSyncVerifiesCleanWhileTheApplicationWrites() throws {
        let pair = try ReplicatedPair(sizeBytes: 32 << 20)
        try pair.createAndEnable(mode: "async")
        try pair.waitInSync()
        // A writer rewrites the volume while it is compared: every region is compared only once
        // the writes to it are on both copies, so nothing may be reported.
        let writes = AcknowledgedWriter(socket: pair.nbdSocket(pair.alpha), blocks: 6000)
        writes.start()
        try pair.expectOK(try pair.alpha.control().request("verify", ["name": ReplicatedPair.resource]))
        let done = try pair.waitFor(pair.alpha, "the verify to end") {
            ($0["verify"] as? [String: Any])?["running"] as? Bool == false
        }
        writes.join()
        let verify = done["verify"] as? [String: Any] ?? [:]
        #expect(verify["checked_bytes"] as? Int == 32 << 20 && verify["mismatched_bytes"] as? Int == 0, "\(verify)")
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
    }

    @Test func verifyIsRefusedOnTheSecondaryAndWithoutAPeer() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.createAndEnable()
        try pair.waitInSync()
        let onSecondary = try pair.beta.control().request("verify", ["name": ReplicatedPair.resource])
        #expect(onSecondary["error"] as? String == "wrong-state", "\(onSecondary)")
        pair.beta.crash()
        try pair.waitFor(pair.alpha, "alpha to notice") { $0["connection_state"] as? String != "Connected" }
        let alone = try pair.alpha.control().request("verify", ["name": ReplicatedPair.resource])
        #expect(alone["error"] as? String == "wrong-state", "\(alone)")
        #expect((alone["message"] as? String ?? "").contains("not connected"), "\(alone)")
    }
}
}
