// A consistency group's catch-up commits as one (issue 16 §3; docs/groups.md, *Catch-up: one
// commit for the group*), real daemons: two async members, each through its own LinkProxy.
// A dependent-write chain alternates between their volumes (ConsistencyGroupTests' records);
// part-way g0's link is cut and the operator outdates g0's peer, so g0 goes Ahead and takes g1
// with it; the rest of the chain and a ballast (that makes g0's catch-up take seconds on a
// capped link) are written while Ahead. Then g0's link heals and both catch up, each staging
// its catch-up in its journal; g1's, small, is whole long before g0's. The secondary daemon is
// killed (kill -9) at a random point of the catch-up, restarted with both links cut, and its
// volumes must hold a gap-free prefix of the chain: the image before the catch-up, or the
// whole chain — never g1's applied catch-up beside g0's old image. The control runs the same
// with the coordination switched off (TANDEM_TEST_GROUP_CATCH_UP_UNCOORDINATED) and the kill
// once g1 applied its journal alone: the check must find the gap.
import Foundation
import Testing

extension Replication {
@Suite struct ConsistencyGroupCatchUpTests {
    typealias Chain = ConsistencyGroupTests
    static let members = Chain.members
    /// Records before the cut, and after it (while Ahead).
    static let recordsBeforeCut = 100...300
    static let recordsAfterCut = 100...300
    /// Ballast on g0 while Ahead, beyond the chain's blocks: 3 MiB at 8 MiB.
    static let ballastOffsetBytes: UInt64 = 8 << 20
    static let ballastBlocks = 768
    /// g0's link while it catches up: ~3.5 MiB take about 3.5 s.
    static let catchUpBytesPerSecond = 1 << 20

    enum KillPoint: CaseIterable, Sendable {
        /// As g0's link heals (nothing of g0's catch-up arrived yet).
        case atHeal
        /// Once g0 stages (its journal has bytes).
        case g0Staging
        /// Once g1's catch-up is whole and waits for g0's (coordinated) or g1 applied its
        /// journal alone (uncoordinated).
        case g1Done
        /// A random moment within the catch-up's first 4 s.
        case randomDelay
        /// Once the group committed (both members caught up).
        case afterCommit
    }

    /// Every phase of the catch-up in turn, and one random moment of it.
    @Test(arguments: KillPoint.allCases)
    func killingTheSecondaryDuringTheGroupsCatchUpLeavesAGapFreePrefix(_ point: KillPoint) throws {
        let outcome = try Self.run(killAt: point, coordinated: true)
        #expect(outcome.held.count == outcome.prefix,
                "kill at \(point): a gap: records \(Chain.gapSummary(outcome.held, prefix: outcome.prefix)) of \(outcome.written)")
        // The image before the catch-up (the chain up to the cut) or the chain whole.
        #expect(outcome.prefix >= outcome.cutAt || outcome.prefix == outcome.written,
                "kill at \(point): \(outcome.prefix) of \(outcome.written), cut at \(outcome.cutAt)")
        if point == .afterCommit { #expect(outcome.prefix == outcome.written, "after the commit: \(outcome.prefix)") }
    }

    /// The control: the members' journals committed one by one, as without the group commit;
    /// the kill once g1's is applied and g0's is not finds g1's records past g0's gap.
    @Test func withoutTheGroupCommitTheCatchUpLeavesAGap() throws {
        let outcome = try Self.run(killAt: .g1Done, coordinated: false)
        #expect(outcome.held.count > outcome.prefix,
                "no gap without the group commit: \(outcome.held.count) held, prefix \(outcome.prefix) of \(outcome.written)")
    }

    /// A forced failover of the group (the primary killed, one `failover` of g0 on beta) during
    /// the catch-up promotes one image: both members' images from before (the members stop one
    /// by one; the first one's promotion drops its undecided journal, so the other must not
    /// commit beside it), or both with the catch-up.
    @Test(arguments: [KillPoint.g0Staging, .g1Done, .randomDelay])
    func aForcedFailoverDuringTheGroupsCatchUpPromotesOneImage(_ point: KillPoint) throws {
        let (pair, proxies) = try Self.start()
        let (written, cutAt) = try Self.writeAcrossAhead(pair, proxies)
        proxies[0].capBytesPerSecond(Self.catchUpBytesPerSecond)
        proxies[0].heal()
        try Self.waitForKillPoint(point, pair, coordinated: true)
        pair.alpha.crash()
        for proxy in proxies { proxy.cut() }
        try pair.expectOK(try pair.beta.control().request("failover", ["name": "g0", "force": true]))
        for name in Self.members {
            let status = try pair.expectOK(try pair.beta.control().request("status", ["name": name]))
            #expect(status["role"] as? String == "primary", "\(name): \(status)")
        }
        let held = try Chain.heldRecords(pair.beta, written: written)
        let prefix = Chain.prefixLength(held)
        print("group catch-up failover at \(point): cut at \(cutAt), \(written) written, \(held.count) held, prefix \(prefix)")
        #expect(held.count == prefix, "failover at \(point): a gap: \(Chain.gapSummary(held, prefix: prefix)) of \(written)")
        #expect(prefix >= cutAt || prefix == written, "failover at \(point): \(prefix) of \(written), cut at \(cutAt)")
    }

    /// g0's catch-up outgrows its 1 MiB journal and goes on in place: while it does, the group's
    /// volumes are not one image, and g1 — whose own copy is fine — must say `Inconsistent`
    /// too, in every status that reports the group broken; both end UpToDate with the chain.
    @Test func aMemberThatCannotStageMakesEveryMemberInconsistentUntilAllFinished() throws {
        let (pair, proxies) = try Self.start(g0StagingBytes: 1 << 20)
        let events = try EventWatch(pair.beta)
        defer { events.stop() }
        let (written, _) = try Self.writeAcrossAhead(pair, proxies)
        proxies[0].capBytesPerSecond(Self.catchUpBytesPerSecond)
        proxies[0].heal()
        var sawG1Inconsistent = false
        var sawPrimaryNotVouch = false
        try Chain.waitFor(pair.beta, "g1", "g0 in place, then both members UpToDate") { g1 in
            // The primary's view (one reply: g0's peer state and the group's word): never
            // "consistent" while g0's peer is Inconsistent there.
            if let a0 = try? pair.alpha.control().request("status", ["name": "g0"]),
                a0["peer_disk_state"] as? String == "Inconsistent" {
                #expect((a0["group_epochs"] as? JSONObject)?["peer_consistent"] as? Bool == false, "\(a0)")
                sawPrimaryNotVouch = true
            }
            let group = g1["group_epochs"] as? JSONObject
            if let reason = group?["inconsistent_reason"] as? String {
                // One reply: the group broken and this member's word about its own volume.
                #expect(g1["disk_state"] as? String == "Inconsistent", "g1 Consistent while the group is not (\(reason)): \(g1)")
                if reason.contains("'g0'") { sawG1Inconsistent = true }
            }
            let g0 = try? pair.beta.control().request("status", ["name": "g0"])
            return g1["disk_state"] as? String == "UpToDate" && g0?["disk_state"] as? String == "UpToDate"
                && g0?["staging"] as? String == "off" && group?["consistent"] as? Bool == true
        }
        #expect(sawG1Inconsistent, "g1 never said Inconsistent while g0 caught up in place")
        #expect(sawPrimaryNotVouch, "alpha never saw g0's peer Inconsistent")
        for name in Self.members { try Self.waitApplied(pair, name) }
        let view = try pair.expectOK(try pair.alpha.control().request("status", ["name": "g1"]))
        #expect((view["group_epochs"] as? JSONObject)?["peer_consistent"] as? Bool == true, "\(view)")
        #expect(events.saw("catch-up-inconsistent"), "\(events.names)")
        #expect(events.saw("group-inconsistent") && events.saw("group-consistent", timeoutSeconds: 10), "\(events.names)")
        for name in Self.members { try Self.waitApplied(pair, name) }
        let all = try Chain.heldRecords(pair.beta, written: written)
        #expect(all.count == written && Chain.prefixLength(all) == written, "\(all.count) of \(written)")
    }

    struct Outcome {
        let written: Int
        let cutAt: Int
        let held: Set<Int>
        let prefix: Int
    }

    /// The group on both nodes (each member through its own proxy), enabled and in sync.
    /// `g0StagingBytes`: g0's journal on beta (nil: the default).
    static func start(coordinated: Bool = true, g0StagingBytes: Int? = nil) throws -> (ReplicatedPair, [LinkProxy]) {
        let pair = try ReplicatedPair(sizeBytes: Chain.volumeBytes)
        if !coordinated {
            _ = try pair.beta.stop()
            pair.beta.extraEnvironment = ["TANDEM_TEST_GROUP_CATCH_UP_UNCOORDINATED": "1"]
            try pair.beta.start()
        }
        let proxies = try members.map { _ in try LinkProxy(target: pair.betaAddress) }
        for name in members {
            var arguments = Chain.arguments(pair, on: pair.beta, name: name, role: "secondary",
                                            peer: ("alpha", pair.alphaAddress), group: "db")
            if name == "g0", let g0StagingBytes { arguments["staging_bytes"] = g0StagingBytes }
            try pair.expectOK(try pair.beta.control().request("create", arguments))
        }
        for (index, name) in members.enumerated() {
            try Chain.create(pair, on: pair.alpha, name: name, role: "primary", peer: ("beta", proxies[index].address), group: "db")
        }
        for daemon in [pair.beta, pair.alpha] {
            try pair.expectOK(try daemon.control().request("enable", ["name": "g0"]))  // the group's members
        }
        for name in members { try Chain.waitInSync(pair, name) }
        return (pair, proxies)
    }

    /// The chain up to a random cut, then g0 (and with it g1) Ahead, the rest of the chain and
    /// g0's ballast written while Ahead. Returns (records written, the cut).
    static func writeAcrossAhead(_ pair: ReplicatedPair, _ proxies: [LinkProxy]) throws -> (written: Int, cutAt: Int) {
        let clients = try members.map {
            try RawNBDClient.transmitting(socketPath: pair.alpha.directory.file("\($0).nbd"), exportName: $0)
        }
        defer { clients.forEach { $0.disconnect() } }
        let cutAt = Int.random(in: recordsBeforeCut)
        let written = cutAt + Int.random(in: recordsAfterCut)
        for index in 0..<cutAt { try writeRecord(index, clients) }
        for name in members { try Chain.waitInSync(pair, name) }

        // g0 Ahead, by the operator's word while its link is cut; g1 goes with it. g1's own
        // link is fine, so it may be catching up again by the time a status looks: its `ahead`
        // event is the proof (a status poll missed it on a loaded CI host).
        let events = try EventWatch(pair.alpha)
        defer { events.stop() }
        proxies[0].cut()
        try Chain.waitFor(pair.alpha, "g0", "g0's link down") { $0["connection_state"] as? String != "Connected" }
        try clients[0].write(offset: ballastOffsetBytes, data: ballast(0))
        try pair.expectOK(try pair.alpha.control().request("outdate-peer", ["name": "g0"]))
        try Chain.waitFor(pair.alpha, "g0", "g0 Ahead") { $0["replication_state"] as? String == "Ahead" }
        #expect(events.saw("ahead", resource: "g1", timeoutSeconds: 60), "g1 never went Ahead with g0: \(events.names)")
        for index in cutAt..<written { try writeRecord(index, clients) }
        for block in 1..<ballastBlocks {
            try clients[0].write(offset: ballastOffsetBytes + UInt64(block) * 4096, data: ballast(block))
        }
        return (written, cutAt)
    }

    static func run(killAt point: KillPoint, coordinated: Bool) throws -> Outcome {
        let (pair, proxies) = try start(coordinated: coordinated)
        let (written, cutAt) = try writeAcrossAhead(pair, proxies)

        if !coordinated {
            // The control's kill point is g1's journal applied while g0 still stages, so g1's
            // catch-up must be under way before g0's starts: g1 redials after the group's
            // Ahead on its own back-off, and on a loaded machine g0's capped catch-up could
            // otherwise end first (then the point never comes). g1's session stages while g0
            // is away (its writes held by the barrier until g0's stream moves).
            try Chain.waitFor(pair.beta, "g1", "g1's catch-up staging before g0's link heals") {
                $0["staging"] as? String == "staging"
            }
        }
        // The catch-up: g0's capped, g1's free.
        proxies[0].capBytesPerSecond(catchUpBytesPerSecond)
        proxies[0].heal()
        try waitForKillPoint(point, pair, coordinated: coordinated)
        pair.beta.crash()

        // Restarted with both links cut: the volumes as the restart's settlement left them.
        for proxy in proxies { proxy.cut() }
        pair.beta.extraEnvironment = [:]
        try pair.beta.start()
        for name in members { _ = try pair.expectOK(try pair.beta.control().request("status", ["name": name])) }
        let held = try Chain.heldRecords(pair.beta, written: written)
        let prefix = Chain.prefixLength(held)
        print("group catch-up kill at \(point) (coordinated \(coordinated)): cut at \(cutAt), \(written) written, "
              + "\(held.count) held, prefix \(prefix)")

        // The links back: both catch up to the whole chain.
        for proxy in proxies {
            proxy.capBytesPerSecond(nil)
            proxy.heal()
        }
        for name in members { try waitApplied(pair, name) }
        let all = try Chain.heldRecords(pair.beta, written: written)
        #expect(all.count == written && Chain.prefixLength(all) == written, "after the restart: \(all.count) of \(written)")
        return Outcome(written: written, cutAt: cutAt, held: held, prefix: prefix)
    }

    static func writeRecord(_ index: Int, _ clients: [RawNBDClient]) throws {
        let (member, offset) = Chain.place(index)
        try clients[member].write(offset: offset, data: Chain.record(index))
    }

    /// Ballast block `block`: byte j is UInt8(truncatingIfNeeded: 7 × block + j + 1), one copy
    /// out of BlockBytes' table (a `map` over 4,096 bytes in the unoptimised debug build was
    /// 30% of the test process's CPU in this suite).
    static func ballast(_ block: Int) -> [UInt8] {
        Array(BlockBytes.counting(from: block &* 7 &+ 1, count: 4096))
    }

    static func waitForKillPoint(_ point: KillPoint, _ pair: ReplicatedPair, coordinated: Bool) throws {
        switch point {
        case .atHeal:
            return
        case .g0Staging:
            try Chain.waitFor(pair.beta, "g0", "g0 staging") { ($0["staged_bytes"] as? Int ?? 0) > 0 }
        case .g1Done:
            if coordinated {
                // g1's catch-up is small and usually whole long before g0's; but g1 redials
                // after the group's Ahead on its own back-off, and on a loaded machine g0's may
                // finish first — then g1 is whole only for the instant before the group commits,
                // and the point is the commit itself (caught in CI: a wait for "whole" alone
                // timed out with both members caught up).
                try Chain.waitFor(pair.beta, "g1", "g1's catch-up whole (waiting for g0's) or the group's committed") {
                    $0["group_catch_up"] as? String == "whole"
                        || $0["disk_state"] as? String == "UpToDate" && $0["staging"] as? String == "off"
                }
            } else {
                // g1's journal applied alone (its staging off again) while g0 still stages.
                try Chain.waitFor(pair.beta, "g1", "g1's journal applied while g0 stages") { status in
                    let g0 = try? pair.beta.control().request("status", ["name": "g0"])
                    return status["staging"] as? String == "off" && status["replication_state"] as? String == "Established"
                        && (g0?["staging"] as? String) == "staging"
                }
            }
        case .randomDelay:
            Thread.sleep(forTimeInterval: Double.random(in: 0...4))  // the random kill point itself
        case .afterCommit:
            for name in members { try waitApplied(pair, name) }
        }
    }

    /// In sync, and on beta the journal applied (the primary says UpToDate on the member's
    /// CaughtUp, which follows the group's commit and the apply; beta's own word is checked too).
    static func waitApplied(_ pair: ReplicatedPair, _ name: String) throws {
        try Chain.waitInSync(pair, name)
        try Chain.waitFor(pair.beta, name, "\(name)'s catch-up applied on beta") {
            $0["disk_state"] as? String == "UpToDate" && $0["staging"] as? String == "off"
        }
    }
}
}
