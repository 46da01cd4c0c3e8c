// How a primary's first session starts, on real processes (the rules themselves are unit
// tested in ResourceRolesTests): `initial_sync: none` says the volumes are identical at
// creation, so writes the primary took alone before its first enable must still reach the
// peer, whether this daemon counted them or a restart lost the count.
import Foundation
import Testing

extension Replication {
@Suite struct SessionStartTests {
    /// Creates r0 on both nodes with `initial_sync: none`, without enabling it.
    private func createInSyncByWord(_ pair: ReplicatedPair) throws {
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
    }

    private func writeAlone(_ pair: ReplicatedPair) throws {
        let uri = "nbd+unix:///r0?socket=\(pair.nbdSocket(pair.alpha))"
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "write -P 0x5a 1M 2M", uri])
    }

    private func enableAndExpectACopy(_ pair: ReplicatedPair) throws {
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        let started = try pair.status(pair.alpha)
        #expect(started["session_start"] as? String == "full-copy", "\(started)")
        #expect((started["session_start_reason"] as? String)?.contains("written before replication first started")
                    == true, "\(started)")
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
    }

    @Test func writesBeforeTheFirstEnableReachThePeerDespiteInitialSyncNone() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        try createInSyncByWord(pair)
        try writeAlone(pair)
        try enableAndExpectACopy(pair)
    }

    @Test func aPrimaryRestartedBeforeItsFirstEnableCopiesDespiteInitialSyncNone() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        try createInSyncByWord(pair)
        try writeAlone(pair)
        // The restarted daemon cannot count the earlier run's writes.
        pair.alpha.crash()
        try pair.alpha.start()
        try enableAndExpectACopy(pair)
    }

    @Test func initialSyncNoneWithoutWritesStartsInSync() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        try pair.createAndEnable(initialSync: "none")
        let started = try pair.status(pair.alpha)
        #expect(started["session_start"] as? String == "assumed-in-sync", "\(started)")
        #expect(started["session_start_reason"] as? String
                    == "initial_sync none: the volumes are identical at creation", "\(started)")
        // No copy is due: nothing out of sync, progress complete (not "0, not started").
        #expect(started["out_of_sync_bytes"] as? Int == 0, "\(started)")
        #expect(started["resync_progress"] as? Double == 1, "\(started)")
        try pair.waitInSync()
    }
}
}
