// The old primary's return after a forced failover, step by step (docs/replication.md, *The
// old primary returns*): alpha killed under sync writes, beta promoted by force and writing,
// alpha restarted with its link held cut so that both event streams are recorded from before
// the meeting. Asserted: the events that name the decision on both nodes, alpha's word at
// every status taken (never UpToDate before beta calls it UpToDate: Outdated once it yielded,
// Inconsistent while the throttled resync runs), the returned primary's own names (never the
// split brain's), the union's bytes, alpha's extents compared by digest (only the regions that
// differ cross the link, counted by the proxy), and the end state.
import Foundation
import Testing

extension Integration.FaultCampaign {
@Suite struct ReturnedPrimaryTests {
    @Test func aCrashedPrimaryReturnsYieldsAndIsResyncedByTheUnionWithTruthfulStatesOnBothNodes() throws {
        let (run, acknowledged) = try CampaignRun.alphaKilledBetaPromoted(mode: "sync", betaDialsThroughProxy: true)  // beta, promoted, dials alpha: its resync is counted there
        try run.writeBlocks(on: run.pair.beta, 4096..<4352)
        // A write that reached alpha's disk and never beta (the one in flight at a kill): its
        // last acknowledged block, inside the extent its activity log names, changed on alpha's
        // disk alone. The compare must find that region different and copy it back.
        let tampered = try #require(acknowledged.max())
        let alphaVolume = try FileHandle(forWritingTo: URL(fileURLWithPath: run.pair.volume(run.pair.alpha)))
        try alphaVolume.seek(toOffset: UInt64(tampered * CampaignRun.blockBytes))
        try alphaVolume.write(contentsOf: Data(repeating: 0xEE, count: CampaignRun.blockBytes))
        try alphaVolume.synchronize()
        try alphaVolume.close()
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
        // The operator enables beta (its forced promotion left replication off). What crosses
        // the link from here on, both ways, is the resync (data, digests and their requests).
        let wire = try #require(run.betaProxy)
        wire.resetCounters()
        try run.enable(run.pair.beta)
        var words: [String] = []
        var sessionStart = "-"
        try run.waitFor(run.pair.alpha, "alpha UpToDate", timeoutSeconds: 60) { alpha in
            let word = alpha["disk_state"] as? String ?? "-"
            if words.last != word { words.append(word) }
            let beta = try? run.pair.status(run.pair.beta)
            if word == "Inconsistent", let start = beta?["session_start"] as? String { sessionStart = start }
            guard word == "UpToDate" else { return false }
            return beta?["peer_disk_state"] as? String == "UpToDate"
        }
        run.trail.append("alpha's disk_state from its yield to the resync's end: \(words.joined(separator: " → "))")
        #expect(words.contains("Inconsistent"), "the resync's target never said Inconsistent: \(words)")
        #expect(Set(words).isSubset(of: ["Outdated", "Inconsistent", "UpToDate"]), "\(words)")
        let wireBytes = wire.forwardedBytes(.toTarget) + wire.forwardedBytes(.fromTarget)
        try run.converge(primary: run.pair.beta)
        let betaStatus = try run.pair.status(run.pair.beta)
        // Its own names: no split brain's field, event or session start.
        #expect(betaStatus["split_brain_resync"] == nil, "\(betaStatus)")
        #expect(betaEvents.saw("returned-primary-resync-plan") && !betaEvents.saw("split-brain-resync"))
        let report = betaStatus["returned_primary_resync"] as? JSONObject ?? [:]
        #expect(report["plan"] as? String == "returned-primary-union", "\(report)")
        #expect(sessionStart == "returned-primary", "beta's session_start while it resynced alpha: \(sessionStart)")
        let union = report["union_bytes"] as? Int ?? -1
        let alphaBytes = report["peer_changed_bytes"] as? Int ?? -1
        let betaBytes = report["local_changed_bytes"] as? Int ?? -1
        let moved = report["moved_bytes"] as? Int ?? -1
        let compare = betaStatus["checksum_resync"] as? JSONObject ?? [:]
        let compared = compare["checked_bytes"] as? Int ?? -1
        let differing = compare["differing_bytes"] as? Int ?? -1
        run.trail.append("union \(union) bytes: beta's \(betaBytes), alpha's extents \(alphaBytes); alpha's compared "
            + "\(compared), differing \(differing); moved \(moved); \(wireBytes) bytes on the wire")
        #expect(betaBytes == 256 * CampaignRun.blockBytes, "\(report)")
        #expect(alphaBytes > 0 && alphaBytes % (4 << 20) == 0, "alpha's set is whole 4 MiB extents: \(report)")
        #expect(union > 0 && union <= alphaBytes + betaBytes && union < run.setup.sizeBytes / 2, "\(report)")
        // Alpha's extents are compared by digest: only the regions that differ are copied.
        #expect(compared == alphaBytes && compare["abandoned"] == nil, "\(compare)")
        #expect(differing >= 128 << 10 && differing < alphaBytes / 2,
                "the tampered region differs; most of alpha's extents reached beta before the kill: \(compare)")
        #expect(moved == betaBytes + differing, "beta's own changes and the differing regions: \(report) \(compare)")
        #expect(wireBytes < betaBytes + alphaBytes / 2, "the wire carried \(wireBytes) bytes for a union of \(union)")
        let missing = try run.missingBlocks(acknowledged, in: run.betaVolume)
        #expect(missing.isEmpty, "acknowledged sync writes missing: \(missing.prefix(20))")
        try run.expectIdenticalWithEveryAcknowledgedWrite("a crashed primary returns")
    }
}
}
