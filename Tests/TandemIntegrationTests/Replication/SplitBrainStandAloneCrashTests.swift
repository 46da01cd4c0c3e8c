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
    static func writeAloneAndKill(_ p: Resync.PartitionedPair, writer: DaemonProcess, sideBytes: Int,
                                  disabled: Bool = false) throws {
        try healIntoStandAlone(p)
        if disabled {
            try p.pair.expectOK(try writer.control().request("disable", ["name": ReplicatedPair.resource]))
        }
        try Resync.write(p.pair.nbdSocket(writer), written) { Resync.pattern(side, $0) }
        writer.crash()
        try writer.start()
        let status = try p.pair.status(writer)
        #expect(status["split_brain"] as? Bool == true, "\(status)")
        #expect(status["parted_bytes"] as? Int == sideBytes + extentBytes, "\(status)")
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
        let report = settled["split_brain_resync"] as? JSONObject
        let unionBytes = Resync.unionBlocks * Resync.blockBytes + Self.extentBytes
        #expect(settled["session_start"] as? String == "split-brain-union", "\(settled)")
        #expect(report?["plan"] as? String == "split-brain-union", "\(settled)")
        #expect(report?["union_bytes"] as? Int == unionBytes, "\(settled)")
        #expect(report?["moved_bytes"] as? Int == unionBytes, "\(settled)")
        let exchange = report?["bitmap_exchange_bytes"] as? Int ?? 0
        let moved = Resync.forwardedBytes(p)
        print("\(writerIs) killed after a StandAlone write: union_bytes \(report?["union_bytes"] as? Int ?? -1), "
            + "\(moved) bytes on the proxies (the volume: \(Resync.sizeBytes))")
        #expect(Double(moved) <= 1.1 * Double(unionBytes) + Double(exchange + Resync.overheadBytesMax),
                "\(moved) bytes crossed the proxies for a union of \(unionBytes) (the volume: \(Resync.sizeBytes))")
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
}
}
