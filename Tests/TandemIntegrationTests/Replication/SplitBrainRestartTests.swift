// A split brain's union resync interrupted by a restart of either side resumes: what was
// copied before the restart is not sent again. Two real daemons behind LinkProxies
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

    /// Resolved with alpha the survivor, its copy slowed, stopped once `movedAtLeast` moved.
    static func resolvingSlowly(movedAtLeast: Int) throws -> (SplitBrainTests.PartitionedPair, Int) {
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
        try p.pair.waitFor(p.pair.beta, "the loser secondary and UpToDate") {
            $0["role"] as? String == "secondary" && $0["disk_state"] as? String == "UpToDate"
        }
        let settled = try p.pair.waitFor(p.pair.alpha, "the survivor's peer UpToDate") {
            $0["connection_state"] as? String == "Connected" && $0["peer_disk_state"] as? String == "UpToDate"
                && $0["out_of_sync_bytes"] as? Int == 0 && $0["unconfirmed_bytes"] as? Int == 0
        }
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
    /// what the loser had made durable is not sent again.
    @Test func aLoserKilledInTheMiddleOfTheUnionResyncResumesIt() throws {
        let (p, moved) = try Self.resolvingSlowly(movedAtLeast: 2 << 20)
        p.pair.beta.crash()
        p.toBeta.resetCounters()
        p.toAlpha.resetCounters()
        try p.pair.beta.start()
        try Self.expectResumed(p, movedBefore: moved)
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
