// A split brain's union resync interrupted by a restart or a kill -9 of either side resumes:
// what was copied before is not sent again (a killed survivor resumes from its last
// checkpoint of what was left, with its activity log's extents). Two real daemons behind LinkProxies
// (SplitBrainResyncTests' split brain: a 256 MiB volume, a union of 6 MiB); the survivor's
// copy is slowed to 1 MiB/s so that the restart lands in its middle, then let go; the proxies
// count every byte after the restart, which must stay within 1.1 × what was left of the
// union (plus the handshakes and the bitmap exchange), and the volumes end identical.
import Foundation
import Testing

extension Replication {
@Suite(.serialized) struct SplitBrainRestartTests {
    typealias Resync = SplitBrainResyncTests
    static let slowRateBytesPerSecond = 1 << 20
    static let heldRateBytesPerSecond = 4096

    /// Resolved with alpha the survivor, its copy slowed, stopped once `movedAtLeast` moved
    /// (`holdStill` false: left running at 1 MiB/s, chunks in flight).
    static func resolvingSlowly(movedAtLeast: Int, holdStill: Bool = true) throws -> (SplitBrainTests.PartitionedPair, Int) {
        let p = try Resync.splitBrainWithWritesOnBoth()
        p.heal()
        for daemon in [p.pair.alpha, p.pair.beta] {
            try p.pair.waitFor(daemon, "split brain reported") { $0["split_brain"] as? Bool == true }
        }
        try p.pair.expectOK(try p.pair.alpha.control().request(
            "set", ["name": ReplicatedPair.resource, "resync_rate": slowRateBytesPerSecond]))
        try p.pair.expectOK(try p.pair.beta.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "local"]))
        try p.pair.expectOK(try p.pair.alpha.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "peer"]))
        try p.pair.waitFor(p.pair.alpha, "the union resync under way") {
            let report = $0["split_brain_resync"] as? JSONObject
            return report?["plan"] as? String == "split-brain-union" && (report?["moved_bytes"] as? Int ?? 0) >= movedAtLeast
        }
        guard holdStill else { return (p, 0) }
        // Held still (a chunk of the copy takes minutes at 4 KiB/s) until the peer confirmed
        // every chunk sent: what was moved is then what the loser holds, and the rest is left.
        try p.pair.expectOK(try p.pair.alpha.control().request(
            "set", ["name": ReplicatedPair.resource, "resync_rate": heldRateBytesPerSecond]))
        let held = try p.pair.waitFor(p.pair.alpha, "the copy's chunks confirmed") { $0["unconfirmed_bytes"] as? Int == 0 }
        let moved = (held["split_brain_resync"] as? JSONObject)?["moved_bytes"] as? Int ?? 0
        return (p, moved)
    }

    static func expectResumed(_ p: SplitBrainTests.PartitionedPair, movedBefore: Int, survivorRestarted: Bool = false) throws {
        try p.pair.expectOK(try p.pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "resync_rate": 0]))
        let settled = try Resync.settled(p, survivor: p.pair.alpha, loser: p.pair.beta)
        let unionBytes = Resync.unionBlocks * Resync.blockBytes
        let left = unionBytes - movedBefore
        let moved = Resync.forwardedBytes(p)
        if survivorRestarted {
            // The restarted survivor says it resumed, and with what.
            let report = settled["split_brain_resync"] as? JSONObject
            #expect(report?["plan"] as? String == "split-brain-union", "\(settled)")
            #expect(report?["resumed_left_bytes"] as? Int == left, "\(settled)")
            #expect(report?["moved_bytes"] as? Int == left, "\(settled)")
        }
        #expect(Double(moved) <= 1.1 * Double(left) + Double(Resync.overheadBytesMax),
                "\(moved) bytes crossed the proxies after the restart, with \(left) of the union's \(unionBytes) left: \(settled)")
        try p.pair.alpha.stop()
        try p.pair.beta.stop()
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == VolumeFiles.sha256(p.pair.volume(p.pair.beta)))
    }

    @Test func aLoserRestartedInTheMiddleOfTheUnionResyncResumesIt() throws {
        let (p, moved) = try Self.resolvingSlowly(movedAtLeast: 2 << 20)
        try p.pair.beta.stop()
        p.toBeta.resetCounters()
        p.toAlpha.resetCounters()
        try p.pair.beta.start()
        try Self.expectResumed(p, movedBefore: moved)
    }

    /// kill -9 of the loser: its copy is Inconsistent, the survivor's session goes on, and
    /// what the loser had made durable is not sent again. The loser, restarted, still refuses
    /// promotion (its copy is half the survivor's, half its own).
    @Test func aLoserKilledInTheMiddleOfTheUnionResyncResumesIt() throws {
        let (p, moved) = try Self.resolvingSlowly(movedAtLeast: 2 << 20)
        p.pair.beta.crash()
        p.toBeta.resetCounters()
        p.toAlpha.resetCounters()
        try p.pair.beta.start()
        let restarted = try p.pair.status(p.pair.beta)
        #expect(restarted["role"] as? String == "secondary" && restarted["disk_state"] as? String == "Inconsistent",
                "\(restarted)")
        let refused = try p.pair.beta.control().request("failover", ["name": ReplicatedPair.resource])
        #expect(refused["ok"] as? Bool == false, "\(refused)")
        #expect(try p.pair.status(p.pair.beta)["role"] as? String == "secondary")
        try Self.expectResumed(p, movedBefore: moved)
    }

    /// kill -9 of the survivor once its checkpoint holds what is left (the copy held still,
    /// every chunk confirmed): the restart resumes with exactly that, not the union again nor
    /// the volume (before the checkpoint, this copied the whole 256 MiB volume).
    @Test func aSurvivorKilledInTheMiddleOfTheUnionResyncResumesIt() throws {
        let (p, moved) = try Self.resolvingSlowly(movedAtLeast: 2 << 20)
        let left = Resync.unionBlocks * Resync.blockBytes - moved
        try p.pair.waitFor(p.pair.alpha, "the checkpoint holds what is left") {
            ($0["split_brain_resync"] as? JSONObject)?["checkpoint_left_bytes"] as? Int == left
        }
        p.pair.alpha.crash()
        p.toBeta.resetCounters()
        p.toAlpha.resetCounters()
        try p.pair.alpha.start()
        let report = try p.pair.status(p.pair.alpha)["split_brain_resync"] as? JSONObject
        #expect(report?["after_crash"] as? Bool == true, "\(String(describing: report))")
        try Self.expectResumed(p, movedBefore: moved, survivorRestarted: true)
    }

    /// kill -9 of the survivor at a worse moment: the copy running at 1 MiB/s (chunks in
    /// flight, the checkpoint up to a second old) and an application write acknowledged just
    /// before. The restart copies at most what its last checkpoint left and the write's
    /// activity-log extent (4 MiB), not the volume; the write is on both copies, which end
    /// identical.
    @Test func aSurvivorKilledWhileCopyingAndWritingResumesAndKeepsItsWrites() throws {
        let (p, _) = try Self.resolvingSlowly(movedAtLeast: 2 << 20, holdStill: false)
        let unionBytes = Resync.unionBlocks * Resync.blockBytes
        let seen = try p.pair.waitFor(p.pair.alpha, "a checkpoint that saves part of the union") {
            (($0["split_brain_resync"] as? JSONObject)?["checkpoint_left_bytes"] as? Int ?? .max) < unionBytes
        }
        let checkpointLeft = (seen["split_brain_resync"] as? JSONObject)?["checkpoint_left_bytes"] as? Int ?? .max
        let written = 60_000..<60_064  // 256 KiB outside the union, in one 4 MiB extent
        try Resync.write(p.pair.nbdSocket(p.pair.alpha), written) { Resync.pattern(0xC3, $0) }
        p.pair.alpha.crash()
        p.toBeta.resetCounters()
        p.toAlpha.resetCounters()
        try p.pair.alpha.start()
        let report = try p.pair.status(p.pair.alpha)["split_brain_resync"] as? JSONObject
        #expect(report?["plan"] as? String == "split-brain-union", "\(String(describing: report))")
        #expect(report?["after_crash"] as? Bool == true, "\(String(describing: report))")
        let resumedLeft = report?["resumed_left_bytes"] as? Int ?? Int.max
        let extentBytes = 4 << 20
        #expect(resumedLeft <= checkpointLeft + extentBytes, "checkpoint \(checkpointLeft): \(String(describing: report))")
        try p.pair.expectOK(try p.pair.alpha.control().request("set", ["name": ReplicatedPair.resource, "resync_rate": 0]))
        try Resync.settled(p, survivor: p.pair.alpha, loser: p.pair.beta)
        let moved = Resync.forwardedBytes(p)
        let resumable = min(resumedLeft, checkpointLeft + extentBytes)
        #expect(Double(moved) <= 1.1 * Double(resumable) + Double(Resync.overheadBytesMax),
                "\(moved) bytes crossed the proxies after the kill, with \(resumedLeft) to resume")
        try Resync.expectOnBothAndIdentical(p, written: written, side: 0xC3)
    }

    @Test func aSurvivorRestartedInTheMiddleOfTheUnionResyncResumesIt() throws {
        let (p, moved) = try Self.resolvingSlowly(movedAtLeast: 2 << 20)
        try p.pair.alpha.stop()
        p.toBeta.resetCounters()
        p.toAlpha.resetCounters()
        try p.pair.alpha.start()
        try Self.expectResumed(p, movedBefore: moved, survivorRestarted: true)
    }
}
}
