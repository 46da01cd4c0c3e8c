// The old primary's return after a forced failover, step by step (docs/replication.md, *The
// old primary returns*): alpha killed under sync writes, beta promoted by force and writing,
// alpha restarted with its link held cut so that both event streams are recorded from before
// the meeting. Asserted: the events that name the decision on both nodes, alpha's word at
// every status taken (never UpToDate before beta calls it UpToDate: Outdated once it yielded,
// Inconsistent while the throttled resync runs), the union's bytes, and the end state.
import Foundation
import Testing

extension Integration.FaultCampaign {
@Suite struct ReturnedPrimaryTests {
    @Test func aCrashedPrimaryReturnsYieldsAndIsResyncedByTheUnionWithTruthfulStatesOnBothNodes() throws {
        var setup = CampaignRun.Setup()
        setup.mode = "sync"
        let run = try CampaignRun(setup)
        try run.enableBothInSync()
        run.startWriter(blocks: PairState.writerBlocks)
        try run.waitForAcknowledged(300)
        run.pair.alpha.crash()
        let acknowledged = run.joinWriter()
        try run.pair.expectOK(try run.pair.beta.control().request(
            "failover", ["name": ReplicatedPair.resource, "force": true]))
        try run.writeBlocks(on: run.pair.beta, 4096..<4352)
        let betaEvents = try EventWatch(run.pair.beta)
        defer { betaEvents.stop() }
        // Alpha dials beta only through the proxy: cut, it comes up as primary without meeting.
        run.proxy.cut()
        try run.pair.alpha.start()
        let restarted = try run.waitFor(run.pair.alpha, "alpha primary again, alone") { $0["role"] as? String == "primary" }
        #expect(restarted["split_brain"] as? Bool != true, "\(restarted)")
        let alphaEvents = try EventWatch(run.pair.alpha)
        defer { alphaEvents.stop() }
        // The resync is throttled so that its Inconsistent stretch is seen.
        try run.set(run.pair.beta, ["resync_rate": 2 << 20])
        run.proxy.heal()
        let yielded = try run.waitFor(run.pair.alpha, "alpha yields") { $0["role"] as? String == "secondary" }
        #expect(yielded["disk_state"] as? String == "Outdated", "\(yielded)")
        #expect(alphaEvents.saw("returned-primary-yields", timeoutSeconds: 10))
        #expect(betaEvents.saw("returned-primary-resync", timeoutSeconds: 10))
        #expect(!alphaEvents.saw("split-brain") && !betaEvents.saw("split-brain"))
        #expect(try run.pair.status(run.pair.beta)["split_brain"] as? Bool == false)
        // The operator enables beta (its forced promotion left replication off).
        try run.enable(run.pair.beta)
        var words: [String] = []
        try run.waitFor(run.pair.alpha, "alpha UpToDate", timeoutSeconds: 60) { alpha in
            let word = alpha["disk_state"] as? String ?? "-"
            if words.last != word { words.append(word) }
            guard word == "UpToDate" else { return false }
            let beta = try? run.pair.status(run.pair.beta)
            return beta?["peer_disk_state"] as? String == "UpToDate"
        }
        run.trail.append("alpha's disk_state from its yield to the resync's end: \(words.joined(separator: " → "))")
        #expect(words.contains("Inconsistent"), "the resync's target never said Inconsistent: \(words)")
        #expect(Set(words).isSubset(of: ["Outdated", "Inconsistent", "UpToDate"]), "\(words)")
        try run.converge(primary: run.pair.beta)
        let report = try run.pair.status(run.pair.beta)["split_brain_resync"] as? JSONObject ?? [:]
        let union = report["union_bytes"] as? Int ?? -1
        let alphaBytes = report["peer_changed_bytes"] as? Int ?? -1
        let betaBytes = report["local_changed_bytes"] as? Int ?? -1
        run.trail.append("union \(union) bytes: beta's \(betaBytes), alpha's extents \(alphaBytes); moved \(report["moved_bytes"] as? Int ?? -1)")
        #expect(betaBytes == 256 * CampaignRun.blockBytes, "\(report)")
        #expect(alphaBytes > 0 && alphaBytes % (4 << 20) == 0, "alpha's set is whole 4 MiB extents: \(report)")
        #expect(union > 0 && union <= alphaBytes + betaBytes && union < setup.sizeBytes / 2, "\(report)")
        let missing = try run.missingBlocks(acknowledged, in: run.betaVolume)
        #expect(missing.isEmpty, "acknowledged sync writes missing: \(missing.prefix(20))")
        try run.expectIdenticalWithEveryAcknowledgedWrite("a crashed primary returns")
    }
}
}
