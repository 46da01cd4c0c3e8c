// A returned primary killed in the middle of its yield (docs/replication.md, *The old primary
// returns*, "A crash in the middle of the yield"): alpha killed under sync writes, beta
// promoted by force and writing, alpha restarted; when it meets beta it yields, and is killed
// (kill -9) at one of three points: once its flag `outdated` is recorded but not yet its
// generations (the test hook TANDEM_TEST_YIELD_CRASH_AT=outdated-recorded), once C := 0 and B :=
// the parting generation are recorded with its set but it is still primary (yield-recorded),
// or while beta's resync of it runs. Restarted, it must come back into the same yield and
// resync: never a split brain on either node, beta's resync the returned primary's union with
// alpha's extents compared by digest, and in the end identical with every acknowledged write.
import Foundation
import Testing

extension Integration.FaultCampaign {
@Suite struct ReturnedPrimaryCrashTests {
    @Test(arguments: ["outdated-recorded", "yield-recorded", "resync"])
    func aReturnedPrimaryKilledInTheMiddleOfItsYieldRestartsIntoTheSameYield(_ point: String) throws {
        let (run, acknowledged) = try CampaignRun.alphaKilledBetaPromoted(mode: "sync", betaDialsThroughProxy: true)
        try run.writeBlocks(on: run.pair.beta, 4096..<4352)
        let betaEvents = try EventWatch(run.pair.beta)
        defer { betaEvents.stop() }
        let alpha = run.pair.alpha
        if point == "resync" {
            try run.set(run.pair.beta, ["resync_rate": 2 << 20])  // so that the kill lands inside it
            try alpha.start()
            try run.waitFor(alpha, "alpha yields") { $0["role"] as? String == "secondary" }
            try run.enable(run.pair.beta)
            try run.waitFor(alpha, "alpha the target of beta's resync") { $0["disk_state"] as? String == "Inconsistent" }
            alpha.crash()
        } else {
            // Alpha dials beta through the cut proxy: it is up before they meet, then the
            // meeting makes it yield and the hook kills it at `point`.
            run.proxy.cut()
            alpha.extraEnvironment = ["TANDEM_TEST_YIELD_CRASH_AT": point]
            try alpha.start()
            run.proxy.heal()
            #expect(alpha.waitExited(timeoutSeconds: 30), "the hook did not kill alpha at \(point)\n\(alpha.logTail())")
            alpha.extraEnvironment = [:]
        }
        run.observe("alpha killed at \(point)")
        try alpha.start()
        let alphaEvents = try EventWatch(alpha)
        defer { alphaEvents.stop() }
        let back = try run.waitFor(alpha, "alpha secondary again") { $0["role"] as? String == "secondary" }
        #expect(back["split_brain"] as? Bool != true && back["disk_state"] as? String != "UpToDate", "\(back)")
        if point != "resync" { try run.enable(run.pair.beta) }
        try run.waitFor(alpha, "alpha UpToDate", timeoutSeconds: 60) { alpha in
            guard alpha["disk_state"] as? String == "UpToDate" else { return false }
            return (try? run.pair.status(run.pair.beta))?["peer_disk_state"] as? String == "UpToDate"
        }
        try run.converge(primary: run.pair.beta)
        let beta = try run.pair.status(run.pair.beta)
        #expect(beta["split_brain"] as? Bool == false && beta["split_brain_resync"] == nil, "\(beta)")
        #expect(!betaEvents.saw("split-brain") && !alphaEvents.saw("split-brain"))
        let report = beta["returned_primary_resync"] as? JSONObject ?? [:]
        let compare = beta["checksum_resync"] as? JSONObject ?? [:]
        run.trail.append("beta's resync of alpha: \(report); compare \(compare)")
        #expect(report["plan"] as? String == "returned-primary-union", "\(report)\n\(run.trailText)")
        #expect((report["moved_bytes"] as? Int ?? .max) < run.setup.sizeBytes / 2, "\(report)")
        #expect(compare["checked_bytes"] as? Int == report["peer_changed_bytes"] as? Int, "alpha's set compared: \(compare)")
        let missing = try run.missingBlocks(acknowledged, in: run.betaVolume)
        #expect(missing.isEmpty, "acknowledged sync writes missing: \(missing.prefix(20))")
        try run.expectIdenticalWithEveryAcknowledgedWrite("a returned primary killed at \(point)")
    }
}
}
