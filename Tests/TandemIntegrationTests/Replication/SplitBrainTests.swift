// Split brain between two real daemons: both links run through LinkProxies (alpha → beta and
// beta → alpha) so that a cut is a real partition. Alpha (primary) keeps writing after the
// cut, beta is promoted by force and writes too; when the link heals, both must report the
// split brain with what each changed, stop redialling, and change no data until `resolve`
// or `after_split_brain` picks a survivor, after which the volumes are byte-identical and
// hold the survivor's writes. A primary that wrote nothing meets the promoted one and stops
// accepting writes (demoted-by-promotion).
import Foundation
import Testing

extension Replication {
@Suite(.serialized) struct SplitBrainTests {
    static let sizeBytes = 16 << 20
    static let blockBytes = 4096

    /// A pair whose links both go through proxies: `toBeta` (alpha dials beta) and `toAlpha`.
    final class PartitionedPair {
        let pair: ReplicatedPair
        let toAlpha: LinkProxy
        var toBeta: LinkProxy { pair.proxy! }

        /// `alphaVolume`: a file to use as alpha's volume (a PausableVolume's), else a plain one.
        init(policy: String? = nil, sizeBytes: Int = SplitBrainTests.sizeBytes, mode: String = "sync",
             fencing: String = "dont-care", alphaVolume: String? = nil) throws {
            pair = try ReplicatedPair(sizeBytes: sizeBytes, throughProxy: true)
            toAlpha = try LinkProxy(target: pair.alphaAddress)
            if let alphaVolume { try pair.useAsVolume(alphaVolume, of: pair.alpha) }
            var settings: [String: Any] = [:]
            if let policy { settings["after_split_brain"] = policy }
            try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", toAlpha.address), mode: mode,
                            initialSync: "full", compression: "none", fencing: fencing, settings: settings)
            try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: mode,
                            initialSync: "full", compression: "none", fencing: fencing, settings: settings)
            try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
            try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
            try pair.waitInSync()
        }

        func cut() {
            toBeta.cut()
            toAlpha.cut()
        }

        func heal() {
            toBeta.heal()
            toAlpha.heal()
        }

        /// Cut, alpha writes `alphaBlocks` (tracked: Ahead), beta is promoted by force,
        /// enabled, and writes `betaBlocks` with its own pattern.
        func partitionAndWriteOnBoth(alphaBlocks: Range<Int>, betaBlocks: Range<Int>) throws {
            cut()
            try pair.waitFor(pair.alpha, "alpha lost its peer") { $0["connection_state"] as? String != "Connected" }
            try pair.waitFor(pair.beta, "beta lost its peer") { $0["connection_state"] as? String != "Connected" }
            try SplitBrainTests.write(pair.nbdSocket(pair.alpha), alphaBlocks, SplitBrainTests.alphaPattern)
            try promoteBetaAndWrite(betaBlocks)
        }

        /// Beta, cut off, is promoted by force, enabled, and writes `betaBlocks` with its pattern.
        func promoteBetaAndWrite(_ betaBlocks: Range<Int>) throws {
            let promoted = try pair.expectOK(try pair.beta.control().request(
                "failover", ["name": ReplicatedPair.resource, "force": true]))
            #expect(promoted["role"] as? String == "primary")
            try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
            try SplitBrainTests.write(pair.nbdSocket(pair.beta), betaBlocks, SplitBrainTests.betaPattern)
        }
    }

    static func alphaPattern(_ index: Int) -> [UInt8] { AcknowledgedWriter.pattern(index) }
    static func betaPattern(_ index: Int) -> [UInt8] { [UInt8](repeating: 0xB5, count: blockBytes) }

    static func write(_ socket: String, _ blocks: Range<Int>, _ pattern: (Int) -> [UInt8]) throws {
        guard !blocks.isEmpty else { return }
        let client = try RawNBDClient.transmitting(socketPath: socket, exportName: ReplicatedPair.resource)
        defer { client.disconnect() }
        for index in blocks { try client.write(offset: UInt64(index * blockBytes), data: pattern(index), fua: true) }
    }

    static func splitBrainDetail(_ status: JSONObject) -> JSONObject? { status["split_brain_detail"] as? JSONObject }

    /// Both nodes report the split brain: StandAlone, `split_brain: true`, each side's bytes.
    static func expectSplitBrainOnBoth(_ p: PartitionedPair, alphaChanged: Int, betaChanged: Int) throws {
        for (daemon, local, peer) in [(p.pair.alpha, alphaChanged, betaChanged), (p.pair.beta, betaChanged, alphaChanged)] {
            let status = try p.pair.waitFor(daemon, "split brain reported") { $0["split_brain"] as? Bool == true }
            #expect(status["connection_state"] as? String == "StandAlone")
            #expect(status["role"] as? String == "primary")
            let detail = splitBrainDetail(status)
            #expect(detail?["local_changed_bytes"] as? Int == local, "\(status)")
            #expect(detail?["peer_changed_bytes"] as? Int == peer, "\(status)")
        }
    }

    @Test func bothNodesReportTheSplitBrainAndDisconnectChangesNoDataUntilResolve() throws {
        let p = try PartitionedPair()
        try p.partitionAndWriteOnBoth(alphaBlocks: 100..<110, betaBlocks: 200..<205)
        let alphaBefore = try VolumeFiles.sha256(p.pair.volume(p.pair.alpha))
        let betaBefore = try VolumeFiles.sha256(p.pair.volume(p.pair.beta))
        #expect(alphaBefore != betaBefore)
        let alphaEvents = try p.pair.alpha.control()
        try alphaEvents.sendLine(Array(#"{"id": 0, "cmd": "events"}"#.utf8))
        _ = try alphaEvents.readReply()
        p.heal()
        try Self.expectSplitBrainOnBoth(p, alphaChanged: 10 * Self.blockBytes, betaChanged: 5 * Self.blockBytes)
        var event: JSONObject = [:]
        let deadline = Date().addingTimeInterval(60)
        while event["event"] as? String != "split-brain" {
            guard Date() < deadline else { throw HarnessError("no split-brain event within 60 s") }
            event = try alphaEvents.readReply()
        }
        #expect((event["reason"] as? String)?.contains("both nodes are primary and wrote since they parted") == true)
        #expect(event["verdict"] as? String == "disconnect")

        // Nothing moved: each volume is as its own writes left it, and stays so while both
        // are StandAlone (a redial would meet the other and could only report it again).
        let connections = p.toBeta.connectionsAccepted + p.toAlpha.connectionsAccepted
        try p.pair.expectOK(try p.pair.alpha.control().request("status", ["name": ReplicatedPair.resource]))
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == alphaBefore)
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.beta)) == betaBefore)

        // resolve: beta's writes since the cut are discarded, alpha's survive.
        try p.pair.expectOK(try p.pair.beta.control().request(
            "resolve", ["name": ReplicatedPair.resource, "discard": "local"]))
        #expect(p.toBeta.connectionsAccepted + p.toAlpha.connectionsAccepted == connections,
                "a StandAlone node dialled before resolve")
        try p.pair.expectOK(try p.pair.alpha.control().request(
            "resolve", ["name": ReplicatedPair.resource, "discard": "peer"]))
        try Self.expectSurvivor(p, survivor: p.pair.alpha, loser: p.pair.beta,
                                kept: (100..<110, Self.alphaPattern), dropped: 200..<205)
    }

    /// A split brain outlives the restarts of both nodes (flag split-brain): each still
    /// reports it, stays StandAlone (no dial meets the other again) with its data as it was,
    /// and `resolve` then ends it as it would have before the restarts.
    @Test func aSplitBrainSurvivesTheRestartOfBothNodesUntilResolve() throws {
        let p = try PartitionedPair()
        try p.partitionAndWriteOnBoth(alphaBlocks: 100..<110, betaBlocks: 200..<205)
        p.heal()
        try Self.expectSplitBrainOnBoth(p, alphaChanged: 10 * Self.blockBytes, betaChanged: 5 * Self.blockBytes)
        let alphaBefore = try VolumeFiles.sha256(p.pair.volume(p.pair.alpha))
        let betaBefore = try VolumeFiles.sha256(p.pair.volume(p.pair.beta))
        for daemon in [p.pair.alpha, p.pair.beta] {
            try daemon.stop()
            try daemon.start()
        }
        let connections = p.toBeta.connectionsAccepted + p.toAlpha.connectionsAccepted
        for (daemon, changed) in [(p.pair.alpha, 10 * Self.blockBytes), (p.pair.beta, 5 * Self.blockBytes)] {
            let status = try p.pair.status(daemon)
            #expect(status["split_brain"] as? Bool == true, "\(status)")
            #expect(status["role"] as? String == "primary" && status["connection_state"] as? String == "StandAlone",
                    "\(status)")
            #expect(status["enabled"] as? Bool == true, "\(status)")
            let detail = Self.splitBrainDetail(status)
            #expect(detail?["restored"] as? Bool == true && detail?["local_changed_bytes"] as? Int == changed, "\(status)")
            #expect(detail?["peer_changed_bytes"] == nil, "the peer's bytes are unknown after a restart: \(status)")
        }
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == alphaBefore)
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.beta)) == betaBefore)
        try p.pair.expectOK(try p.pair.beta.control().request(
            "resolve", ["name": ReplicatedPair.resource, "discard": "local"]))
        #expect(p.toBeta.connectionsAccepted + p.toAlpha.connectionsAccepted == connections,
                "a node restarted in split brain dialled before resolve")
        try p.pair.expectOK(try p.pair.alpha.control().request(
            "resolve", ["name": ReplicatedPair.resource, "discard": "peer"]))
        try Self.expectSurvivor(p, survivor: p.pair.alpha, loser: p.pair.beta,
                                kept: (100..<110, Self.alphaPattern), dropped: 200..<205)
    }

    @Test(arguments: [
        ("discard-younger-primary", 10, 5, "alpha"),
        ("discard-least-changes", 2, 5, "beta"),
        ("discard-zero-changes", 3, 0, "alpha"),
    ])
    func aPolicyPicksTheSurvivorAndTheVolumesEndIdentical(policy: String, alphaWrites: Int, betaWrites: Int,
                                                          survivor: String) throws {
        let p = try PartitionedPair(policy: policy)
        try p.partitionAndWriteOnBoth(alphaBlocks: 100..<(100 + alphaWrites), betaBlocks: 200..<(200 + betaWrites))
        p.heal()
        if survivor == "alpha" {
            try Self.expectSurvivor(p, survivor: p.pair.alpha, loser: p.pair.beta,
                                    kept: (100..<(100 + alphaWrites), Self.alphaPattern), dropped: 200..<(200 + betaWrites))
        } else {
            try Self.expectSurvivor(p, survivor: p.pair.beta, loser: p.pair.alpha,
                                    kept: (200..<(200 + betaWrites), Self.betaPattern), dropped: 100..<(100 + alphaWrites))
        }
    }

    /// The survivor stays primary and resyncs the loser, now secondary; the volumes end
    /// byte-identical with the survivor's writes and without the loser's.
    static func expectSurvivor(_ p: PartitionedPair, survivor: DaemonProcess, loser: DaemonProcess,
                               kept: (Range<Int>, (Int) -> [UInt8]), dropped: Range<Int>,
                               sessionStart: String = "split-brain-union") throws {
        try p.pair.waitFor(loser, "the loser secondary and UpToDate") {
            $0["role"] as? String == "secondary" && $0["disk_state"] as? String == "UpToDate"
                && $0["split_brain"] as? Bool == false
        }
        let settled = try p.pair.waitFor(survivor, "the survivor primary, connected, nothing out of sync") {
            $0["role"] as? String == "primary" && $0["connection_state"] as? String == "Connected"
                && $0["peer_disk_state"] as? String == "UpToDate" && $0["split_brain"] as? Bool == false
                && $0["out_of_sync_bytes"] as? Int == 0 && $0["unconfirmed_bytes"] as? Int == 0
        }
        // A split brain's resync copies the union of both bitmaps (a demotion by promotion:
        // the promoted node's session copies the whole volume), and says so; a returned
        // primary's resync says `returned-primary`, not a split brain's name.
        #expect(settled["session_start"] as? String == sessionStart, "\(settled)")
        let reader = try RawNBDClient.transmitting(socketPath: p.pair.nbdSocket(survivor), exportName: ReplicatedPair.resource)
        for index in kept.0 {
            #expect(try reader.read(offset: UInt64(index * blockBytes), length: UInt32(blockBytes)) == kept.1(index))
        }
        for index in dropped {
            #expect(try reader.read(offset: UInt64(index * blockBytes), length: UInt32(blockBytes))
                == [UInt8](repeating: 0, count: blockBytes), "the loser's block \(index) survived")
        }
        reader.disconnect()
        try p.pair.alpha.stop()
        try p.pair.beta.stop()
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == VolumeFiles.sha256(p.pair.volume(p.pair.beta)))
    }

    /// Protocol 8 (docs/replication.md, *The old primary returns*): an old primary that wrote
    /// nothing since the partition is no split brain and waits for no operator: it yields
    /// (secondary, never UpToDate before the resync ends) and the promoted node resyncs the
    /// union of both bitmaps. (Before, it was demoted by promotion and `resolve --discard
    /// local` made it a full-copy target; a protocol-7 peer still gets that: PeerHelloCheckTests.)
    @Test func aPrimaryThatWroteNothingYieldsToTheHigherPromotionAndIsResyncedByTheUnion() throws {
        let p = try PartitionedPair()
        try p.partitionAndWriteOnBoth(alphaBlocks: 0..<0, betaBlocks: 200..<205)
        p.heal()
        let status = try p.pair.waitFor(p.pair.alpha, "alpha yields") { $0["role"] as? String == "secondary" }
        #expect(status["split_brain"] as? Bool == false && status["demoted_by_promotion"] == nil, "\(status)")
        #expect(status["disk_state"] as? String != "UpToDate" || status["connection_state"] as? String == "Connected",
                "\(status)")
        #expect(try p.pair.status(p.pair.beta)["split_brain"] as? Bool == false)
        try Self.expectSurvivor(p, survivor: p.pair.beta, loser: p.pair.alpha, kept: (200..<205, Self.betaPattern),
                                dropped: 0..<0, sessionStart: "returned-primary")
    }

    @Test func anOutdatedSecondaryStaysOutdatedAcrossARestartRefusesAPlainFailoverAndCatchesUp() throws {
        let p = try PartitionedPair()
        p.cut()
        try p.pair.waitFor(p.pair.beta, "beta lost its peer") { $0["connection_state"] as? String != "Connected" }
        try Self.write(p.pair.nbdSocket(p.pair.alpha), 100..<110, Self.alphaPattern)
        let outdated = try p.pair.expectOK(try p.pair.beta.control().request("outdate", ["name": ReplicatedPair.resource]))
        #expect(outdated["disk_state"] as? String == "Outdated", "\(outdated)")
        #expect(outdated["outdated"] as? Bool == true)
        // Disabled, so that the restart's own rule (a restarted secondary is Inconsistent until
        // re-sent) does not hide it: the copy at rest is Outdated, from the persisted flag.
        try p.pair.expectOK(try p.pair.beta.control().request("disable", ["name": ReplicatedPair.resource]))
        try p.pair.beta.stop()
        try p.pair.beta.start()
        let restarted = try p.pair.status(p.pair.beta)
        #expect(restarted["disk_state"] as? String == "Outdated", "\(restarted)")
        #expect(restarted["outdated"] as? Bool == true)
        let refused = try p.pair.beta.control().request("failover", ["name": ReplicatedPair.resource])
        #expect(refused["ok"] as? Bool == false)
        #expect((refused["message"] as? String)?.contains("Outdated") == true, "\(refused)")
        #expect(try p.pair.status(p.pair.beta)["role"] as? String == "secondary")
        // Back with its primary, it catches up and is UpToDate again (the flag cleared).
        try p.pair.expectOK(try p.pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        p.heal()
        try p.pair.waitInSync()
        #expect(try p.pair.status(p.pair.beta)["outdated"] as? Bool == false)
        try p.pair.beta.stop()
        try p.pair.beta.start()
        try p.pair.waitFor(p.pair.beta, "beta UpToDate after its restart") { $0["disk_state"] as? String == "UpToDate" }
    }

    @Test func aSecondaryThatMissedWritesLearnsItAtReconnectAndIsUpToDateAfterTheCatchUp() throws {
        let p = try PartitionedPair()
        p.cut()
        try p.pair.waitFor(p.pair.beta, "beta lost its peer") { $0["connection_state"] as? String != "Connected" }
        try Self.write(p.pair.nbdSocket(p.pair.alpha), 100..<110, Self.alphaPattern)
        let events = try p.pair.beta.control()
        try events.sendLine(Array(#"{"id": 0, "cmd": "events"}"#.utf8))
        _ = try events.readReply()
        p.heal()
        var event: JSONObject = [:]
        let deadline = Date().addingTimeInterval(60)
        while event["event"] as? String != "outdated" {
            guard Date() < deadline else { throw HarnessError("no outdated event within 60 s\n" + p.pair.beta.logTail()) }
            event = try events.readReply()  // the next event, or the idle heartbeat
        }
        #expect((event["reason"] as? String)?.contains("went on without this node") == true, "\(event)")
        try p.pair.waitInSync()
        #expect(try p.pair.status(p.pair.beta)["outdated"] as? Bool == false)
    }
}
}
