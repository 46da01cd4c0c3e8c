// The fault campaign, the secondary's disk: beta's volume fills up (ENOSPC) or fails (EIO)
// under a running writer, in sync and in async mode. beta fails the resource and says why;
// alpha detaches, reports its peer's disk Failed and not redundant, and keeps serving the
// application from its own disk (sync too); once the disk is repaired and both sides are
// enabled again, alpha catches up from its bitmap (not a full copy) and the volumes end
// byte-identical with every acknowledged write.
import Foundation
import Testing

extension Integration.FaultCampaign {
@Suite struct DiskScenarios {
    struct Row: Sendable, CustomTestStringConvertible {
        let mode: String
        let kind: FaultyVolume.Kind
        var testDescription: String { "secondary volume \(kind.rawValue) under a \(mode) writer" }
    }

    static let rows = ["sync", "async"].flatMap { mode in [Row(mode: mode, kind: .full), Row(mode: mode, kind: .failing)] }
    static let sizeBytes = 32 << 20

    @Test(arguments: CampaignRun.selected(rows)) func secondaryDiskFaultDegradesThePrimaryThenItCatchesUpFromItsBitmap(_ row: Row) throws {
        let volume = try FaultyVolume(row.kind, sizeBytes: Self.sizeBytes)
        defer { volume.detach() }
        var setup = CampaignRun.Setup()
        setup.mode = row.mode
        setup.betaVolume = volume.path
        let run = try CampaignRun(setup)
        try run.enableBothInSync()
        let alphaEvents = try EventWatch(run.pair.alpha)
        let betaEvents = try EventWatch(run.pair.beta)
        defer {
            alphaEvents.stop()
            betaEvents.stop()
        }
        run.startWriter(blocks: PairState.writerBlocks)
        try run.waitForAcknowledged(300)
        try volume.breakIt()
        #expect(betaEvents.saw("disk-failed", timeoutSeconds: 30), "beta: \(betaEvents.names)")
        #expect(alphaEvents.saw("peer-disk-failed", timeoutSeconds: 30), "alpha: \(alphaEvents.names)")
        try expectDegraded(run, errno: row.kind == .full ? ENOSPC : EIO)
        // The application is served on: the writer ends with every block acknowledged.
        try run.waitForAcknowledged(PairState.writerBlocks)

        try volume.repair()
        var enabled: JSONObject = [:]
        for daemon in [run.pair.beta, run.pair.alpha] {
            try run.pair.expectOK(try daemon.control().request("disable", ["name": ReplicatedPair.resource]))
            enabled = try run.pair.expectOK(try daemon.control().request("enable", ["name": ReplicatedPair.resource]))
        }
        run.observe("both re-enabled on the repaired disk")
        #expect(enabled["session_start"] as? String == "catch-up", "\(enabled)\n\(run.trailText)")
        let lacking = enabled["out_of_sync_bytes"] as? Int ?? 0
        #expect(lacking > 0 && lacking <= PairState.writerBlocks * CampaignRun.blockBytes,
                "a catch-up of what beta lacks, not the volume: \(enabled)")
        run.trail.append("catch-up of \(lacking) bytes")
        try run.converge()
        try run.expectIdenticalWithEveryAcknowledgedWrite(row.testDescription)
    }

    private func expectDegraded(_ run: CampaignRun, errno: Int32) throws {
        let (alpha, beta) = run.observe("beta's disk failed")
        let failed = try #require(beta)
        #expect(failed["disk_state"] as? String == "Failed", "\(failed)")
        #expect((failed["disk_error"] as? JSONObject)?["errno"] as? Int == Int(errno), "\(failed)")
        #expect(failed["redundant"] as? Bool != true)
        let primary = try #require(alpha)
        #expect(primary["peer_disk_state"] as? String == "Failed", "\(primary)")
        #expect(primary["redundant"] as? Bool == false, "\(primary)")
        #expect(primary["disk_state"] as? String == "UpToDate", "\(primary)")
        #expect((primary["last_error"] as? String)?.isEmpty == false, "alpha says why: \(primary)")
    }
}
}
