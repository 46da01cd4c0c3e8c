// A returned primary's resync interrupted and resumed (docs/replication.md, *The old primary
// returns*, "Interrupted"): alpha killed under sync writes, beta promoted by force and writing,
// alpha restarted and yielding, beta's throttled resync of it under way with alpha's extents
// only partly compared; then the resync is interrupted — the link cut, beta (the promoted
// node) disabled and enabled again, or killed with kill -9 and restarted — and resumes. Asserted: the resumed resync is still
// the returned primary's (its status, plan and session start; no split brain's names on
// either node), what alpha's set still owed is compared by digest (the wire after the
// interruption carries about the digest cost, not alpha's extents whole), every acknowledged
// write, identical volumes.
import Foundation
import Testing

extension Integration.FaultCampaign {
@Suite struct ReturnedPrimaryResumeTests {
    @Test(arguments: ["link-cut", "promoted-disabled", "promoted-killed"])
    func anInterruptedReturnedPrimaryResyncResumesAsItselfWithItsCompare(_ interruption: String) throws {
        let (run, acknowledged) = try CampaignRun.alphaKilledBetaPromoted(mode: "sync", betaDialsThroughProxy: true)
        try run.writeBlocks(on: run.pair.beta, 4096..<4352)
        let (alpha, beta) = (run.pair.alpha, run.pair.beta)
        let wire = try #require(run.betaProxy)
        // Slow enough that the interruption lands while alpha's extents are being compared.
        try run.set(beta, ["resync_rate": 1 << 20])
        try alpha.start()
        try run.waitFor(alpha, "alpha yields") { $0["role"] as? String == "secondary" }
        let alphaEvents = try EventWatch(alpha)
        defer { alphaEvents.stop() }
        try run.enable(beta)
        try run.waitFor(beta, "beta compares alpha's extents", timeoutSeconds: 60) { status in
            let compare = status["checksum_resync"] as? JSONObject ?? [:]
            return (compare["checked_bytes"] as? Int ?? 0) > 0 && compare["running"] as? Bool == true
        }
        let before = try run.pair.status(beta)
        let setBytes = (before["returned_primary_resync"] as? JSONObject)?["peer_changed_bytes"] as? Int ?? -1
        var betaEvents: EventWatch?
        defer { betaEvents?.stop() }
        if interruption == "link-cut" {
            betaEvents = try EventWatch(beta)
            wire.cut()
            try run.waitFor(beta, "beta alone") { $0["connection_state"] as? String != "Connected" }
            wire.resetCounters()
            wire.heal()
        } else if interruption == "promoted-disabled" {
            // A stop in order: the session seals what is left; the next one resumes it.
            betaEvents = try EventWatch(beta)
            try run.pair.expectOK(try beta.control().request("disable", ["name": ReplicatedPair.resource]))
            wire.resetCounters()
            try run.enable(beta)
        } else {
            beta.crash()
            run.observe("beta killed in the middle of the resync")
            wire.resetCounters()
            try beta.start()
            betaEvents = try EventWatch(beta)
        }
        var sessionStarts: Set<String> = []
        try run.waitFor(alpha, "alpha UpToDate", timeoutSeconds: 90) { status in
            let betaStatus = try? run.pair.status(beta)
            if status["disk_state"] as? String == "Inconsistent", let start = betaStatus?["session_start"] as? String {
                sessionStarts.insert(start)
            }
            return status["disk_state"] as? String == "UpToDate" && betaStatus?["peer_disk_state"] as? String == "UpToDate"
        }
        let wireBytes = wire.forwardedBytes(.toTarget) + wire.forwardedBytes(.fromTarget)
        try run.converge(primary: beta)
        let status = try run.pair.status(beta)
        let report = status["returned_primary_resync"] as? JSONObject ?? [:]
        let compare = status["checksum_resync"] as? JSONObject ?? [:]
        run.trail.append("resumed after \(interruption): \(report); compare \(compare); \(wireBytes) bytes on the wire "
            + "after the interruption; session starts \(sessionStarts)")
        #expect(status["split_brain_resync"] == nil && status["split_brain"] as? Bool == false, "\(status)\n\(run.trailText)")
        #expect(report["plan"] as? String == "returned-primary-union", "\(report)\n\(run.trailText)")
        #expect(sessionStarts.isSubset(of: ["returned-primary"]), "beta's session_start: \(sessionStarts)")
        #expect(!(betaEvents?.saw("split-brain-resync") ?? true) && !alphaEvents.saw("split-brain"))
        // What alpha's set still owed is compared again, not copied whole.
        #expect((compare["checked_bytes"] as? Int ?? 0) > 0 && compare["abandoned"] == nil, "\(compare)")
        #expect(setBytes >= 4 << 20 && wireBytes < setBytes / 2,
                "the wire carried \(wireBytes) bytes after the interruption for alpha's set of \(setBytes)\n\(run.trailText)")
        let missing = try run.missingBlocks(acknowledged, in: run.betaVolume)
        #expect(missing.isEmpty, "acknowledged sync writes missing: \(missing.prefix(20))")
        try run.expectIdenticalWithEveryAcknowledgedWrite("a returned primary's resync resumed after \(interruption)")
    }
}
}
