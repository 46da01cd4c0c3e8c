// The fault campaign, failovers: a forced failover after the primary's kill -9 and the old
// primary's return without writes of its own (it yields to the promoted node, which resyncs
// its own changes ∪ the old primary's activity-log extents: docs/replication.md, *The old
// primary returns*), the same return after the old primary wrote (still a split brain), two
// forced failovers in a row,
// a planned failback, a planned failover asked for during a catch-up, and a forced failover
// to a secondary that was restarted while its primary was gone.
import Foundation
import Testing

extension Integration.FaultCampaign {
@Suite struct FailoverScenarios {
    /// Blocks the new primary writes after each failover: a region the first writer never
    /// touches, so that its writes are told apart from the old primary's.
    static let afterFirstFailover = 4096..<4352
    static let afterSecondFailover = 4352..<4608

    @Test(arguments: ["sync", "async"])
    func forcedFailoverThenTheOldPrimaryReturnsWithoutWritesAndIsCopiedAsSecondary(_ mode: String) throws {
        let run = try failOverFromAKilledAlpha(mode: mode)
        let yielded = try bringBack(run, run.pair.alpha, asSecondaryOf: run.pair.beta, mustYield: mode == "sync")
        try run.converge(primary: run.pair.beta)
        if yielded { try expectResyncBounded(run, by: run.pair.beta) }
        try run.expectIdenticalWithEveryAcknowledgedWrite("forced failover (\(mode)), old primary back", writerSurvives: mode == "sync")
    }

    /// The old primary returns, but takes writes before it meets the promoted node (which is
    /// away meanwhile): both changed since they parted, so it stays a split brain on both,
    /// and nothing of either volume is merged (guarantee 4).
    @Test func forcedFailoverThenTheOldPrimaryWritesBeforeItMeetsThePromotedOneIsStillASplitBrain() throws {
        let run = try failOverFromAKilledAlpha(mode: "sync")
        try run.pair.beta.stop()
        try run.pair.alpha.start()
        try run.waitFor(run.pair.alpha, "the old primary serving alone") {
            $0["role"] as? String == "primary" && $0["nbd_serving"] as? Bool == true
        }
        try run.writeBlocks(on: run.pair.alpha, Self.afterSecondFailover)
        let alphaVolume = try VolumeFiles.sha256(run.pair.volume(run.pair.alpha))
        try run.pair.beta.start()
        let alpha = try run.waitFor(run.pair.alpha, "the old primary in a split brain") { $0["split_brain"] as? Bool == true }
        let beta = try run.waitFor(run.pair.beta, "the promoted primary in a split brain") { $0["split_brain"] as? Bool == true }
        #expect(alpha["role"] as? String == "primary" && beta["role"] as? String == "primary", "\(alpha)\n\(beta)")
        #expect(alpha["connection_state"] as? String != "Connected", "\(alpha)")
        // Nothing merged: the old primary's volume is as it wrote it.
        try run.pair.alpha.stop()
        #expect(try VolumeFiles.sha256(run.pair.volume(run.pair.alpha)) == alphaVolume, "\(run.trailText)")
    }

    @Test func twoForcedFailoversInARowLoseNoAcknowledgedWrite() throws {
        let run = try failOverFromAKilledAlpha(mode: "sync")
        try bringBack(run, run.pair.alpha, asSecondaryOf: run.pair.beta)
        try run.converge(primary: run.pair.beta)
        try expectResyncBounded(run, by: run.pair.beta)
        // The second: beta killed, alpha promoted by force, beta returns as secondary.
        run.pair.beta.crash()
        try promoteByForce(run, run.pair.alpha)
        let missing = try run.missingBlocks(run.acknowledgedElsewhere, in: run.pair.volume(run.pair.alpha))
        #expect(missing.isEmpty, "writes the second primary acknowledged are missing: \(missing.prefix(20))")
        try run.writeBlocks(on: run.pair.alpha, Self.afterSecondFailover)
        try bringBack(run, run.pair.beta, asSecondaryOf: run.pair.alpha)
        try run.converge(primary: run.pair.alpha)
        // Beta was killed in the session that resynced alpha, which its activity log treats
        // as a full copy (no bases): its unconfirmed set is the whole volume, so this resync
        // is not bounded (docs/replication.md, *The old primary returns*).
        try expectResyncBounded(run, by: run.pair.alpha, boundedByExtents: false)
        try run.expectIdenticalWithEveryAcknowledgedWrite("two forced failovers in a row")
    }

    /// After a forced failover and the old primary's return, a planned failover back: the
    /// hand-over needs no copy, and nothing is lost.
    @Test func plannedFailbackAfterAForcedFailoverLosesNothing() throws {
        let run = try failOverFromAKilledAlpha(mode: "sync")
        try bringBack(run, run.pair.alpha, asSecondaryOf: run.pair.beta)
        try run.converge(primary: run.pair.beta)
        try run.pair.expectOK(try run.pair.alpha.control().request("failover", ["name": ReplicatedPair.resource]))
        try run.waitFor(run.pair.beta, "beta demoted") { $0["role"] as? String == "secondary" }
        let alpha = try run.waitFor(run.pair.alpha, "alpha primary again and connected") {
            $0["role"] as? String == "primary" && $0["connection_state"] as? String == "Connected"
        }
        #expect(alpha["session_start"] as? String != "full-copy", "a hand-over needs no copy: \(alpha)")
        run.trail.append("failback: session_start \(alpha["session_start"] as? String ?? "-")")
        try run.writeBlocks(on: run.pair.alpha, Self.afterSecondFailover)
        try run.converge(primary: run.pair.alpha)
        try run.expectIdenticalWithEveryAcknowledgedWrite("planned failback")
    }

    /// A planned failover asked of a catch-up target is refused (it lacks writes) and
    /// changes nothing: the catch-up ends, and the same request then succeeds.
    @Test func plannedFailoverDuringACatchUpIsRefusedThenSucceedsOnceCaughtUp() throws {
        let run = try PairState.catchingUp.reach()
        let refused = try run.pair.beta.control().request("failover", ["name": ReplicatedPair.resource])
        #expect(refused["ok"] as? Bool == false, "a failover to a catch-up target: \(refused)")
        #expect(refused["error"] as? String == "wrong-state", "\(refused)")
        // It says why: a staged target knows it is Outdated; otherwise the generations show the
        // primary went on without this copy (docs/replication.md, *Roles and transitions*: the
        // wrong direction).
        let message = refused["message"] as? String ?? ""
        #expect(message.contains("wrong direction: the primary 'alpha' went on without this node")
                    || message.localizedCaseInsensitiveContains("outdated"), "\(refused)")
        let (alpha, beta) = run.observe("failover refused")
        #expect(alpha?["role"] as? String == "primary" && beta?["role"] as? String == "secondary")
        #expect(alpha?["replication_state"] as? String == "SyncSource", "the catch-up goes on: \(alpha ?? [:])")
        try run.converge()
        try run.pair.expectOK(try run.pair.beta.control().request("failover", ["name": ReplicatedPair.resource]))
        try run.waitFor(run.pair.alpha, "alpha demoted") { $0["role"] as? String == "secondary" }
        try run.waitFor(run.pair.beta, "beta primary") { $0["role"] as? String == "primary" }
        try run.writeBlocks(on: run.pair.beta, Self.afterFirstFailover)
        try run.converge(primary: run.pair.beta)
        try run.expectIdenticalWithEveryAcknowledgedWrite("planned failover during a catch-up")
    }

    /// The primary dies; the secondary's node is restarted cleanly (say, a reboot) before the
    /// operator fails over. Its copy holds every acknowledged sync write and was stopped
    /// cleanly, so a forced failover must promote it.
    @Test func forcedFailoverToACleanlyRestartedSecondaryPromotesIt() throws {
        let (run, acknowledged) = try CampaignRun.alphaKilledBetaPromoted(mode: "sync", promote: false)
        try run.pair.beta.stop()
        try run.pair.beta.start()
        run.observe("secondary restarted, primary gone")
        // The clean stop flushed the volume and said so in the metadata (flag
        // secondary-clean-stop): the restarted copy is Consistent, not Inconsistent.
        let restarted = try run.pair.status(run.pair.beta)
        #expect(restarted["disk_state"] as? String == "Consistent", "\(restarted)\n\(run.trailText)")
        let reply = try run.pair.beta.control().request("failover", ["name": ReplicatedPair.resource, "force": true])
        #expect(reply["ok"] as? Bool == true, "forced failover refused: \(reply)\n\(run.trailText)")
        guard reply["ok"] as? Bool == true else { return }
        let promoted = try run.pair.status(run.pair.beta)
        #expect(promoted["disk_state"] as? String == "UpToDate" && promoted["promoted_inconsistent"] as? Bool == false,
                "\(promoted)")
        let missing = try run.missingBlocks(acknowledged, in: run.pair.volume(run.pair.beta))
        #expect(missing.isEmpty, "acknowledged writes missing: \(missing.prefix(20))")
    }

    // MARK: Steps

    /// A pair in sync under the writer; alpha killed, beta promoted by force; beta holds
    /// every acknowledged write (sync) or a prefix (async) and takes writes of its own.
    private func failOverFromAKilledAlpha(mode: String) throws -> CampaignRun {
        let (run, acknowledged) = try CampaignRun.alphaKilledBetaPromoted(mode: mode, promote: false)
        try promoteByForce(run, run.pair.beta)
        if mode == "sync" {
            let missing = try run.missingBlocks(acknowledged, in: run.betaVolume)
            #expect(missing.isEmpty, "acknowledged sync writes missing after failover: \(missing.prefix(20))")
        } else {
            try run.expectConsistentPrefix(run.betaVolume, acknowledged: acknowledged.count, written: PairState.writerBlocks)
        }
        try run.writeBlocks(on: run.pair.beta, Self.afterFirstFailover)
        return run
    }

    /// `force: true` on `survivor`, whose peer is dead: it is primary, serves, is alone.
    private func promoteByForce(_ run: CampaignRun, _ survivor: DaemonProcess) throws {
        let promoted = try run.pair.expectOK(try survivor.control().request(
            "failover", ["name": ReplicatedPair.resource, "force": true]))
        #expect(promoted["role"] as? String == "primary", "\(promoted)")
        let status = try run.waitFor(survivor, "the survivor primary and serving") {
            $0["role"] as? String == "primary" && $0["nbd_serving"] as? Bool == true
        }
        run.expectAlone(status, "the new primary")
        #expect(status["disk_state"] as? String == "UpToDate", "\(status)")
        // A forced promotion leaves replication off until the operator enables it again
        // (the old primary may still be about: DRBD's StandAlone).
        #expect(status["enabled"] as? Bool == false && status["connection_state"] as? String == "StandAlone", "\(status)")
    }

    /// The old primary restarts: it calls itself primary and dials the new one. When they meet
    /// they compare generations (docs/replication.md, *The old primary returns*): the old
    /// primary wrote nothing since the new one was promoted from its generation (its B is 0),
    /// so it is no split brain: it yields — stops taking writes, becomes secondary, `Outdated`
    /// (never UpToDate before the resync ends) — and the new one, once the operator enables it
    /// (a forced promotion left its replication off), resyncs its changes since the promotion ∪
    /// the old primary's activity-log extents. `mustYield` false (async): an old primary that
    /// went Ahead before its kill (B ≠ 0: writes acknowledged without the peer) is a split
    /// brain, resolved by the runbook (`resolve --discard local` on it, `--discard peer` on the
    /// new one). Returns whether it yielded.
    @discardableResult
    private func bringBack(_ run: CampaignRun, _ old: DaemonProcess, asSecondaryOf primary: DaemonProcess,
                           mustYield: Bool = true) throws -> Bool {
        try old.start()
        let met = try run.waitFor(old, "the old primary yields to the new one (or is in a split brain)") {
            $0["role"] as? String == "secondary" || $0["split_brain"] as? Bool == true
        }
        let yielded = met["role"] as? String == "secondary"
        #expect(yielded || !mustYield, "the old primary wrote nothing since the promotion: no split brain expected\n\(met)\n\(run.trailText)")
        let name = ["name": ReplicatedPair.resource]
        if yielded {
            #expect(met["split_brain"] as? Bool != true && met["disk_state"] as? String != "UpToDate", "\(met)")
            let promoted = try run.pair.status(primary)
            #expect(promoted["split_brain"] as? Bool != true && promoted["role"] as? String == "primary", "\(promoted)")
        } else {
            try run.waitFor(primary, "the new primary reports the split brain too") { $0["split_brain"] as? Bool == true }
            try run.pair.expectOK(try old.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "local"]))
            try run.pair.expectOK(try primary.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "peer"]))
        }
        run.observe(yielded ? "the old primary yielded" : "split brain resolved")
        // A forced promotion left the new primary's replication off: the operator enables it.
        if try run.pair.status(primary)["enabled"] as? Bool != true {
            try run.pair.expectOK(try primary.control().request("enable", name))
        }
        let rejoined = try run.waitFor(old, "the old primary a secondary of the new one") {
            $0["role"] as? String == "secondary" && $0["connection_state"] as? String == "Connected"
        }
        #expect(rejoined["role"] as? String == "secondary")
        let session = try run.pair.status(primary)
        run.trail.append("new primary's session with the old one: \(session["session_start"] as? String ?? "-") (\(session["session_start_reason"] as? String ?? "-"))")
        return yielded
    }

    /// After the return, the new primary's resync moved its changes since the promotion ∪ the
    /// old primary's unconfirmed regions (the union, measured), far less than the volume.
    private func expectResyncBounded(_ run: CampaignRun, by primary: DaemonProcess, boundedByExtents: Bool = true) throws {
        let status = try run.pair.status(primary)
        let report = status["returned_primary_resync"] as? JSONObject ?? [:]
        let moved = report["moved_bytes"] as? Int ?? -1
        let union = report["union_bytes"] as? Int ?? -1
        run.trail.append("resync of the returned primary: plan \(report["plan"] as? String ?? "-"), union \(union) bytes, "
                             + "moved \(moved) bytes (volume \(run.setup.sizeBytes))")
        #expect(report["plan"] as? String == "returned-primary-union", "\(report)\n\(run.trailText)")
        #expect(status["split_brain_resync"] == nil, "a returned primary's resync under a split brain's name: \(status)")
        #expect(union > 0 && moved >= 0 && moved <= union + (1 << 20), "\(report)")
        #expect(!boundedByExtents || moved < run.setup.sizeBytes / 2,
                "the returned primary's resync copied most of the volume: \(report)")
    }
}
}
