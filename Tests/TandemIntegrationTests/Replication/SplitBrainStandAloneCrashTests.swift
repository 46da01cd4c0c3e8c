// A split brain's primary that writes while StandAlone (found, before the resolve) and is then
// killed (kill -9) keeps its set since parting: the write's region went into its
// `.parted-bitmap` file, durably, before the write reached the volume (whole activity-log
// extents, PartedCover), so the restarted node still knows every region it changed and the
// resolve copies the union, not the volume. Once as the loser, once as the survivor. Two real
// daemons behind LinkProxies (SplitBrainResyncTests' split brain: a 256 MiB volume, a union of
// 6 MiB); the proxies count what crossed the wire after the restart.
import Foundation
import Testing

extension Replication {
@Suite(.serialized) struct SplitBrainStandAloneCrashTests {
    typealias Resync = SplitBrainResyncTests
    /// 256 KiB in one 4 MiB activity-log extent (blocks 59,392–60,415), outside both sides' sets.
    static let written = 60_000..<60_064
    static let extentBytes = 4 << 20
    static let side: UInt8 = 0xD4

    /// The split brain found on both; `writer` writes `written` while StandAlone, is killed and
    /// restarted: still in the split brain, with its set and the write's extent. `disabled`:
    /// the writer is disabled first (replication off by the operator too).
    /// Both nodes' status words say one thing before and after each one's kill -9: in the split
    /// brain, with no session running, `out_of_sync_bytes` and `lag_bytes` are the node's
    /// changes since parting, `parted_bytes` (exact while it ran; after the writer's crash its
    /// file's cover, the write's extent whole; the other's file held its set exactly).
    static func writeAloneAndKill(_ p: Resync.PartitionedPair, writer: DaemonProcess, sideBytes: Int,
                                  disabled: Bool = false) throws {
        let other = writer === p.pair.alpha ? p.pair.beta : p.pair.alpha
        let otherBytes = writer === p.pair.alpha ? betaSide : alphaSide
        try healIntoStandAlone(p)
        try expectApart(p, writer, sideBytes, "detected")
        try expectApart(p, other, otherBytes, "detected")
        if disabled {
            try p.pair.expectOK(try writer.control().request("disable", ["name": ReplicatedPair.resource]))
            try expectApart(p, writer, sideBytes, "disabled")
        }
        try Resync.write(p.pair.nbdSocket(writer), written) { Resync.pattern(side, $0) }
        try expectApart(p, writer, sideBytes + written.count * Resync.blockBytes, "written alone")
        writer.crash()
        try writer.start()
        try expectApart(p, writer, sideBytes + extentBytes, "the writer restarted after kill -9")
        try expectApart(p, other, otherBytes, "the writer restarted after kill -9")
        other.crash()
        try other.start()
        try expectApart(p, other, otherBytes, "the other restarted after kill -9")
        try expectApart(p, writer, sideBytes + extentBytes, "the other restarted after kill -9")
    }

    /// The survivor's settled status: a union resync of `unionBytes`, all of it moved, and
    /// no more than 1.1 × that (and the bitmap exchange, the links' overhead) on the proxies.
    static func expectUnionMoved(_ p: Resync.PartitionedPair, _ settled: JSONObject, unionBytes: Int, _ what: String) {
        // Resolved and in sync: nothing apart any more on either node.
        #expect(settled["split_brain"] as? Bool == false && settled["parted_bytes"] == nil, "\(settled)")
        let loser = try? p.pair.status(p.pair.beta)
        #expect(loser?["split_brain"] as? Bool == false && loser?["parted_bytes"] == nil
                    && loser?["out_of_sync_bytes"] as? Int == 0, "\(loser ?? [:])")
        let report = settled["split_brain_resync"] as? JSONObject
        #expect(settled["session_start"] as? String == "split-brain-union", "\(settled)")
        #expect(report?["plan"] as? String == "split-brain-union", "\(settled)")
        #expect(report?["union_bytes"] as? Int == unionBytes && report?["moved_bytes"] as? Int == unionBytes, "\(settled)")
        let exchange = report?["bitmap_exchange_bytes"] as? Int ?? 0
        let moved = Resync.forwardedBytes(p)
        print("\(what): union_bytes \(report?["union_bytes"] as? Int ?? -1), \(moved) bytes on the proxies "
            + "(the volume: \(Resync.sizeBytes))")
        #expect(Double(moved) <= 1.1 * Double(unionBytes) + Double(exchange + Resync.overheadBytesMax),
                "\(moved) bytes crossed the proxies for a union of \(unionBytes) (the volume: \(Resync.sizeBytes))")
    }

    /// `daemon` in the split brain, no session running: its changes since parting are
    /// `parted_bytes`, and what its peer lacks from it (`out_of_sync_bytes`, `lag_bytes`).
    static func expectApart(_ p: Resync.PartitionedPair, _ daemon: DaemonProcess, _ partedBytes: Int,
                            _ when: String) throws {
        let status = try p.pair.status(daemon)
        let name = daemon === p.pair.alpha ? "alpha" : "beta"
        #expect(status["split_brain"] as? Bool == true && status["connection_state"] as? String == "StandAlone",
                "\(name), \(when): \(status)")
        #expect(status["parted_bytes"] as? Int == partedBytes, "\(name), \(when): \(status)")
        #expect(status["out_of_sync_bytes"] as? Int == partedBytes, "\(name), \(when): \(status)")
        #expect(status["lag_bytes"] as? Int == partedBytes, "\(name), \(when): \(status)")
    }

    /// The partition heals: both report the split brain and have stopped replicating.
    static func healIntoStandAlone(_ p: Resync.PartitionedPair) throws {
        p.heal()
        for daemon in [p.pair.alpha, p.pair.beta] {
            try p.pair.waitFor(daemon, "split brain reported, replication stopped") {
                $0["split_brain"] as? Bool == true && $0["connection_state"] as? String == "StandAlone"
            }
        }
    }

    static let alphaSide = (Resync.alphaOnly.count + Resync.overlap.count) * Resync.blockBytes
    static let betaSide = (Resync.betaOnly.count + Resync.overlap.count) * Resync.blockBytes

    /// alpha survives; the writer is beta (the loser) or alpha, StandAlone after the split brain
    /// was found, or alpha disabled then (StandAlone and disabled).
    @Test(arguments: ["loser", "survivor", "disabled survivor"])
    func aPrimaryKilledAfterWritingWhileStandAloneIsResolvedByTheUnion(writerIs: String) throws {
        let p = try Resync.splitBrainWithWritesOnBoth()
        switch writerIs {
        case "loser": try Self.writeAloneAndKill(p, writer: p.pair.beta, sideBytes: Self.betaSide)
        case "survivor": try Self.writeAloneAndKill(p, writer: p.pair.alpha, sideBytes: Self.alphaSide)
        default: try Self.writeAloneAndKill(p, writer: p.pair.alpha, sideBytes: Self.alphaSide, disabled: true)
        }
        let settled = try Resync.resolvedWithAlphaSurviving(p, enableAlpha: writerIs == "disabled survivor")
        Self.expectUnionMoved(p, settled, unionBytes: Resync.unionBlocks * Resync.blockBytes + Self.extentBytes,
                              "\(writerIs) killed after a StandAlone write")
        if writerIs != "loser" {
            // The survivor's acknowledged write is on both copies.
            try Resync.expectOnBothAndIdentical(p, written: Self.written, side: Self.side)
        } else {
            // The loser's write is gone: the survivor's image (zeros there) on both.
            try p.pair.alpha.stop()
            try p.pair.beta.stop()
            let offset = UInt64(Self.written.lowerBound * Resync.blockBytes)
            #expect(try VolumeFiles.bytes(p.pair.volume(p.pair.beta), offset: offset, count: Self.written.count * Resync.blockBytes)
                        == [UInt8](repeating: 0, count: Self.written.count * Resync.blockBytes), "the loser's write survived")
            #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == VolumeFiles.sha256(p.pair.volume(p.pair.beta)))
        }
    }

    /// Issue 13: a primary disabled in no split brain (an ordinary `disable`, the peer in sync)
    /// writes alone: each write whose extent the parted-bitmap file does not cover waits for one
    /// durable rewrite of it per loop turn (PartedCover.hold / record). Killed (-9) and
    /// restarted, it keeps the set; the cut peer is promoted by force and writes; enabled, the
    /// two meet in a split brain, and the resolve moves the union (the write's 4 MiB extent and
    /// beta's 3 MiB), not the volume; the volumes end identical, with alpha's write.
    @Test func aDisabledPrimaryKilledAfterWritingAloneKeepsItsSetForALaterSplitBrain() throws {
        let p = try Resync.PartitionedPair(sizeBytes: Resync.sizeBytes)
        try p.pair.expectOK(try p.pair.alpha.control().request("disable", ["name": ReplicatedPair.resource]))
        try Resync.write(p.pair.nbdSocket(p.pair.alpha), Self.written) { Resync.pattern(Self.side, $0) }
        // Its first 64 KiB again: the extent is in the file, nothing more is recorded.
        try Resync.write(p.pair.nbdSocket(p.pair.alpha), Self.written.prefix(16)) { Resync.pattern(Self.side, $0) }
        let wrote = try p.pair.status(p.pair.alpha)
        #expect(wrote["parted_bytes"] as? Int == Self.written.count * Resync.blockBytes, "\(wrote)")
        // One 256 KiB request waited for the file's one rewrite; the 64 KiB one did not wait.
        #expect(wrote["parted_file_writes"] as? Int == 1 && wrote["parted_held_writes"] as? Int == 1, "\(wrote)")
        p.pair.alpha.crash()
        try p.pair.alpha.start()
        let restarted = try p.pair.status(p.pair.alpha)
        #expect(restarted["enabled"] as? Bool == false && restarted["parted_bytes"] as? Int == Self.extentBytes,
                "the file's cover (the write's extent) after kill -9: \(restarted)")
        #expect(restarted["parted_lost_reason"] == nil, "\(restarted)")

        p.cut()
        try p.pair.waitFor(p.pair.beta, "beta lost its peer") { $0["connection_state"] as? String != "Connected" }
        try p.pair.expectOK(try p.pair.beta.control().request("failover", ["name": ReplicatedPair.resource, "force": true]))
        try p.pair.expectOK(try p.pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        for range in [Resync.betaOnly, Resync.overlap] { try Resync.write(p.pair.nbdSocket(p.pair.beta), range, Resync.betaPattern) }
        try p.pair.expectOK(try p.pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        try Self.healIntoStandAlone(p)
        try Self.expectApart(p, p.pair.alpha, Self.extentBytes, "met as a split brain")
        try Self.expectApart(p, p.pair.beta, Self.betaSide, "met as a split brain")

        let settled = try Resync.resolvedWithAlphaSurviving(p)
        Self.expectUnionMoved(p, settled, unionBytes: Self.extentBytes + Self.betaSide,
                              "disabled primary killed after writing alone")
        try Resync.expectOnBothAndIdentical(p, written: Self.written, side: Self.side)
    }
}
}
