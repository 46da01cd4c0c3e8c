// A split brain's survivor killed (kill -9) after the resolve and before the loser's regions
// (BitmapChunk / BitmapDone) arrived: its session checkpointed its own side of the union when
// it started (the `.union-resync` file says the loser's set is still to come), so the restart
// resumes that side with the activity log's extents (an acknowledged write made meanwhile)
// and asks the loser for its set again, instead of copying the whole volume. Two real daemons
// behind LinkProxies (SplitBrainResyncTests' split brain: a 256 MiB volume, a union of 6 MiB);
// the survivor's link to the loser is cut from before the resolve until after the restart, so
// no region of the loser's can arrive.
import Foundation
import Testing

extension Replication {
@Suite(.serialized) struct SplitBrainSurvivorCrashTests {
    typealias Resync = SplitBrainResyncTests

    @Test func aSurvivorKilledBeforeTheLosersRegionsCameResumesTheUnion() throws {
        let p = try Resync.splitBrainWithWritesOnBoth()
        p.heal()
        for daemon in [p.pair.alpha, p.pair.beta] {
            try p.pair.waitFor(daemon, "split brain reported") { $0["split_brain"] as? Bool == true }
        }
        p.toBeta.cut()  // alpha dials beta through it: nothing of beta's reaches alpha
        try p.pair.expectOK(try p.pair.beta.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "local"]))
        try p.pair.expectOK(try p.pair.alpha.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "peer"]))
        let unionFile = "\(p.pair.alpha.stateDir)/\(ReplicatedPair.resource).union-resync"
        try p.pair.waitFor(p.pair.alpha, "the survivor's session started, its peer away") {
            $0["split_brain"] as? Bool != true && $0["session_start"] != nil && $0["connection_state"] as? String != "Connected"
        }
        // Its first checkpoint was taken as the session started: its side, the loser's to come.
        #expect(FileManager.default.fileExists(atPath: unionFile))
        // An acknowledged write of the survivor after its session's first checkpoint, outside
        // the union (256 KiB in one 4 MiB activity-log extent): only the log names it.
        let written = 60_000..<60_064
        try Resync.write(p.pair.nbdSocket(p.pair.alpha), written) { Resync.pattern(0xC3, $0) }
        p.pair.alpha.crash()
        p.toBeta.heal()
        p.toBeta.resetCounters()
        p.toAlpha.resetCounters()
        try p.pair.alpha.start()

        let settled = try Resync.settled(p, survivor: p.pair.alpha, loser: p.pair.beta)
        let report = settled["split_brain_resync"] as? JSONObject
        #expect(report?["plan"] as? String == "split-brain-union", "\(settled)")
        #expect(report?["after_crash"] as? Bool == true, "\(settled)")
        #expect(report?["peer_set_asked_again"] as? Bool == true, "\(settled)")
        #expect(settled["session_start"] as? String == "split-brain-union", "\(settled)")
        // Resumed with alpha's side (its 4 MiB since parting) and the write's one extent.
        let alphaSide = (Resync.alphaOnly.count + Resync.overlap.count) * Resync.blockBytes
        let extentBytes = 4 << 20
        let resumedLeft = report?["resumed_left_bytes"] as? Int ?? -1
        #expect(resumedLeft >= alphaSide + written.count * Resync.blockBytes && resumedLeft <= alphaSide + extentBytes,
                "\(settled)")
        // The union of that with beta's side, not the 256 MiB volume, crossed the proxies.
        let unionBytes = report?["union_bytes"] as? Int ?? -1
        let betaOnlyBytes = Resync.betaOnly.count * Resync.blockBytes
        #expect(resumedLeft > 0 && unionBytes >= resumedLeft + betaOnlyBytes
                    && unionBytes <= resumedLeft + betaOnlyBytes + extentBytes, "\(settled)")
        #expect(report?["moved_bytes"] as? Int == unionBytes, "\(settled)")
        let moved = Resync.forwardedBytes(p)
        print("survivor killed before the loser's regions: resumed_left_bytes \(resumedLeft), union_bytes \(unionBytes), "
            + "moved_bytes \(report?["moved_bytes"] as? Int ?? -1), \(moved) bytes on the proxies")
        #expect(Double(moved) <= 1.1 * Double(max(unionBytes, 0)) + Double(Resync.overheadBytesMax),
                "\(moved) bytes crossed the proxies after the kill for a union of \(unionBytes) (the volume: \(Resync.sizeBytes))")
        try Resync.expectOnBothAndIdentical(p, written: written, side: 0xC3)
    }
}
}
