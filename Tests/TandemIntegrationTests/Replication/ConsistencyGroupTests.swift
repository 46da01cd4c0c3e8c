// Consistency groups end to end (issue 16 §3, docs/groups.md): two resources of one group
// under async, a dependent-write chain that alternates between their volumes (record i goes
// to volume i mod 2, each write only after the previous was acknowledged; records carry
// their index), and a kill -9 at a random point — of the secondary daemon, or of the
// primary followed by a forced failover of the group (one command for both members). The secondaries must hold a
// gap-free prefix of the chain across both volumes. Member g0's link runs through a proxy
// that stalls at a random record of the chain, so g0's secondary stops there while g1's
// stream goes on: without the group barrier g1's volume runs ahead and the kill leaves a gap
// (the control test shows the check sees it with the same chain on two resources in no
// group; with the barrier removed from the daemon both group tests fail the same way).
import Foundation
import Testing

extension Replication {
@Suite struct ConsistencyGroupTests {
    static let members = ["g0", "g1"]
    static let volumeBytes = 16 << 20
    static let recordMagic: [UInt8] = Array("TNDMCHN1".utf8)
    /// The chain's length, and where g0's link stalls (at least `stallMargin` from both ends).
    static let chainRecords = 400...1200
    static let stallMargin = 100

    @Test func killingTheSecondaryLeavesAGapFreePrefixAcrossTheGroup() throws {
        let setup = try Self.start(group: "db")
        let (written, stalledAt) = try Self.writeChain(setup)
        setup.pair.beta.crash()
        let held = try Self.heldRecords(setup.pair.beta, written: written)
        let prefix = Self.prefixLength(held)
        #expect(held.count == prefix, "a gap: records \(Self.gapSummary(held, prefix: prefix)) of \(written)")
        #expect(prefix >= stalledAt - 1 && prefix <= stalledAt + 1, "held to g0's stall at \(stalledAt): \(prefix)")

        // Restarted, the secondaries catch up to the whole chain.
        setup.proxy.resume()
        try setup.pair.beta.start()
        for name in Self.members { try Self.waitInSync(setup.pair, name) }
        let all = try Self.heldRecords(setup.pair.beta, written: written)
        #expect(all.count == written && Self.prefixLength(all) == written, "after the restart: \(all.count) of \(written)")
    }

    @Test func killingThePrimaryThenFailingOverLeavesAGapFreePrefixAcrossTheGroup() throws {
        let setup = try Self.start(group: "db")
        let (written, stalledAt) = try Self.writeChain(setup)
        setup.pair.alpha.crash()
        setup.proxy.cut()
        // One failover promotes the whole group (docs/groups.md).
        try setup.pair.expectOK(try setup.pair.beta.control().request("failover", ["name": "g0", "force": true]))
        for name in Self.members {
            let status = try setup.pair.expectOK(try setup.pair.beta.control().request("status", ["name": name]))
            #expect(status["role"] as? String == "primary", "\(name): \(status)")
        }
        let held = try Self.heldRecords(setup.pair.beta, written: written)
        let prefix = Self.prefixLength(held)
        #expect(held.count == prefix, "a gap: records \(Self.gapSummary(held, prefix: prefix)) of \(written)")
        #expect(prefix >= stalledAt - 1 && prefix <= stalledAt + 1, "held to g0's stall at \(stalledAt): \(prefix)")
    }

    /// The check sees a gap when the barrier is missing: the same chain over two resources
    /// in no group (each replicates on its own; g1's secondary runs ahead of g0's).
    @Test func withoutAGroupTheSameKillLeavesAGap() throws {
        let setup = try Self.start(group: nil)
        let (written, _) = try Self.writeChain(setup)
        setup.pair.beta.crash()
        let held = try Self.heldRecords(setup.pair.beta, written: written)
        #expect(held.count > Self.prefixLength(held), "no gap without a group: \(held.count) held, of \(written)")
    }

    /// g0 goes Ahead (its link cut, a write held, the peer outdated by the operator): g1,
    /// connected, goes Ahead with it; once g0's link is back both catch up.
    @Test func aMemberGoingAheadTakesTheGroupAhead() throws {
        let setup = try Self.start(group: "db")
        setup.proxy.cut()
        try Self.waitFor(setup.pair.alpha, "g0", "g0's link down") { $0["connection_state"] as? String != "Connected" }
        try RawNBDClient.writePatterns(socketPath: setup.pair.alpha.directory.file("g0.nbd"), exportName: "g0", blocks: 0..<1)
        try setup.pair.expectOK(try setup.pair.alpha.control().request("outdate-peer", ["name": "g0"]))
        try Self.waitFor(setup.pair.alpha, "g0", "g0 Ahead") { $0["replication_state"] as? String == "Ahead" }
        try Self.waitFor(setup.pair.alpha, "g1", "g1 Ahead with g0") { $0["replication_state"] as? String == "Ahead" }
        setup.proxy.heal()
        for name in Self.members { try Self.waitInSync(setup.pair, name) }
    }

    @Test func disablingOneMemberDisablesTheGroupAndEnablingOneEnablesIt() throws {
        let setup = try Self.start(group: "db")
        try setup.pair.expectOK(try setup.pair.alpha.control().request("disable", ["name": "g1"]))
        for name in Self.members {
            let status = try setup.pair.expectOK(try setup.pair.alpha.control().request("status", ["name": name]))
            #expect(status["enabled"] as? Bool == false, "\(name): \(status)")
        }
        try setup.pair.expectOK(try setup.pair.alpha.control().request("enable", ["name": "g1"]))
        for name in Self.members {
            let status = try setup.pair.expectOK(try setup.pair.alpha.control().request("status", ["name": name]))
            #expect(status["enabled"] as? Bool == true, "\(name): \(status)")
        }
        for name in Self.members { try Self.waitInSync(setup.pair, name) }
    }

    /// A planned hand-over of the group: `demote` of one primary member demotes them all.
    @Test func demotingOneMemberDemotesTheGroup() throws {
        let setup = try Self.start(group: "db")
        try setup.pair.expectOK(try setup.pair.alpha.control().request("demote", ["name": "g0"]))
        for name in Self.members {
            let status = try setup.pair.expectOK(try setup.pair.alpha.control().request("status", ["name": name]))
            #expect(status["role"] as? String == "secondary", "\(name): \(status)")
        }
    }

    @Test func aMemberWithAnotherPeerOrModeIsRefused() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.volumeBytes)
        try Self.create(pair, on: pair.alpha, name: "g0", role: "primary", peer: ("beta", pair.betaAddress), group: "db")
        let otherMode = try pair.alpha.control().request("create", Self.arguments(
            pair, on: pair.alpha, name: "g1", role: "primary", peer: ("beta", pair.betaAddress), group: "db", mode: "sync"))
        #expect(otherMode["error"] as? String == "invalid-argument", "\(otherMode)")
        #expect((otherMode["message"] as? String ?? "").contains("group 'db'"), "\(otherMode)")
        let otherPeer = try pair.alpha.control().request("create", Self.arguments(
            pair, on: pair.alpha, name: "g1", role: "primary", peer: ("gamma", pair.betaAddress), group: "db"))
        #expect(otherPeer["error"] as? String == "invalid-argument", "\(otherPeer)")
        let list = try pair.alpha.control().request("status", ["name": "g1"])
        #expect(list["ok"] as? Bool != true, "nothing was created: \(list)")
    }

    /// The group's decision file (`<group>.group-commit`, written by a group catch-up's
    /// commit) goes with the group's last member, so that a group created later under the
    /// name rolls forward nothing of the old one's; while a member is left it stays. The file
    /// is planted here (a group catch-up writes it: ConsistencyGroupCatchUpTests), the
    /// deletes are the daemon's.
    @Test func theGroupsDecisionFileIsDeletedWithItsLastMember() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.volumeBytes)
        for name in Self.members {
            try Self.create(pair, on: pair.beta, name: name, role: "secondary", peer: ("alpha", pair.alphaAddress), group: "db")
        }
        let decision = pair.beta.stateDir + "/db.group-commit"
        #expect(FileManager.default.createFile(atPath: decision, contents: Data("planted".utf8)))
        try pair.expectOK(try pair.beta.control().request("delete", ["name": "g0"]))
        #expect(FileManager.default.fileExists(atPath: decision), "g1 still belongs to group db")
        try pair.expectOK(try pair.beta.control().request("delete", ["name": "g1"]))
        #expect(!FileManager.default.fileExists(atPath: decision), "the last member's delete left \(decision)")
    }

    // MARK: Setup

    struct Setup {
        let pair: ReplicatedPair
        let proxy: LinkProxy
    }

    /// Both members on both nodes (g0 through a capped proxy), enabled and in sync.
    static func start(group: String?) throws -> Setup {
        let pair = try ReplicatedPair(sizeBytes: volumeBytes)
        let proxy = try LinkProxy(target: pair.betaAddress)
        for name in members {
            try create(pair, on: pair.beta, name: name, role: "secondary", peer: ("alpha", pair.alphaAddress), group: group)
        }
        try create(pair, on: pair.alpha, name: "g0", role: "primary", peer: ("beta", proxy.address), group: group)
        try create(pair, on: pair.alpha, name: "g1", role: "primary", peer: ("beta", pair.betaAddress), group: group)
        for daemon in [pair.beta, pair.alpha] {
            // A group's `enable` enables every member (docs/groups.md); a lone resource only itself.
            for name in group == nil ? members : [members[0]] {
                try pair.expectOK(try daemon.control().request("enable", ["name": name]))
            }
        }
        for name in members { try waitInSync(pair, name) }
        if group != nil {
            let status = try pair.expectOK(try pair.alpha.control().request("status", ["name": "g1"]))
            #expect(status["group"] as? String == group, "\(status)")
            #expect((status["group_epochs"] as? JSONObject)?["members"] as? Int == 2, "\(status)")
        }
        return Setup(pair: pair, proxy: proxy)
    }

    static func arguments(_ pair: ReplicatedPair, on daemon: DaemonProcess, name: String, role: String,
                          peer: (String, String), group: String?, mode: String = "async") -> [String: Any] {
        var arguments: [String: Any] = [
            "name": name, "volume": daemon.directory.file("\(name).vol"), "size_bytes": volumeBytes, "role": role,
            "peer": ["name": peer.0, "address": peer.1], "mode": mode, "initial_sync": "none",
            "nbd": ["socket": daemon.directory.file("\(name).nbd")],
        ]
        if let group { arguments["group"] = group }
        return arguments
    }

    static func create(_ pair: ReplicatedPair, on daemon: DaemonProcess, name: String, role: String,
                       peer: (String, String), group: String?) throws {
        try pair.expectOK(try daemon.control().request("create", arguments(
            pair, on: daemon, name: name, role: role, peer: peer, group: group)))
    }

    static func waitInSync(_ pair: ReplicatedPair, _ name: String) throws {
        try waitFor(pair.alpha, name, "\(name) connected with an UpToDate peer") {
            $0["connection_state"] as? String == "Connected" && $0["peer_disk_state"] as? String == "UpToDate"
                && $0["lag_bytes"] as? Int == 0
        }
    }

    /// Status of `name` after every event (and the stream's one-a-second heartbeat) until
    /// `condition` holds.
    static func waitFor(_ daemon: DaemonProcess, _ name: String, _ what: String, timeoutSeconds: Double = 120,
                        _ condition: (JSONObject) -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        let events = try daemon.control()
        try events.sendLine(Array(#"{"id": 0, "cmd": "events"}"#.utf8))
        _ = try events.readReply()
        while true {
            let status = try daemon.control().request("status", ["name": name])
            if status["ok"] as? Bool == true, condition(status) { return }
            guard Date() < deadline else { throw HarnessError("timed out waiting for \(what): \(status)\n" + daemon.logTail()) }
            _ = try events.readReply()
        }
    }

    // MARK: The chain

    /// Record i: the magic, i (little-endian), then bytes derived from i.
    static func record(_ index: Int) -> [UInt8] {
        var bytes = recordMagic
        withUnsafeBytes(of: UInt64(index).littleEndian) { bytes += $0 }
        bytes += BlockBytes.counting(from: index &* 31, count: 4096 - bytes.count)
        return bytes
    }

    static func place(_ index: Int) -> (member: Int, offsetBytes: UInt64) { (index % 2, UInt64(index / 2) * 4096) }

    /// Writes the chain, each record after the previous one's acknowledgement: up to a
    /// random record, then (once both members' secondaries confirmed everything) g0's link
    /// stalls and the rest follows. Returns with g1's later records on beta: applied in no
    /// group, received and held by the barrier in one. Returns (records written, the stall).
    static func writeChain(_ setup: Setup) throws -> (written: Int, stalledAt: Int) {
        let records = Int.random(in: chainRecords)
        let stalledAt = Int.random(in: stallMargin...(records - stallMargin))
        let clients = try members.map {
            try RawNBDClient.transmitting(socketPath: setup.pair.alpha.directory.file("\($0).nbd"), exportName: $0)
        }
        defer { clients.forEach { $0.disconnect() } }
        for index in 0..<records {
            if index == stalledAt {
                for name in members { try waitInSync(setup.pair, name) }
                setup.proxy.stall([.toTarget])
            }
            let (member, offset) = place(index)
            try clients[member].write(offset: offset, data: record(index))
        }
        let laterOfG1 = (stalledAt..<records).filter { place($0).member == 1 }.count
        // On beta: queued behind the barrier, or (no barrier) applied and confirmed.
        try waitFor(setup.pair.beta, "g1", "g1's \(laterOfG1) later records on beta") { status in
            if (status["queued_writes"] as? Int ?? 0) >= laterOfG1 - 1 { return true }
            let primary = try? setup.pair.alpha.control().request("status", ["name": "g1"])
            return primary?["lag_bytes"] as? Int == 0
        }
        return (records, stalledAt)
    }

    /// The records of the chain found on `daemon`'s volumes (read from the files).
    static func heldRecords(_ daemon: DaemonProcess, written: Int) throws -> Set<Int> {
        let volumes = try members.map { name -> Data in
            let path = daemon.directory.file("\(name).vol")
            guard let data = FileManager.default.contents(atPath: path) else { throw HarnessError("cannot read \(path)") }
            return data
        }
        var held = Set<Int>()
        for index in 0..<written {
            let (member, offset) = place(index)
            let block = [UInt8](volumes[member][Int(offset)..<Int(offset) + 4096])
            if block == record(index) {
                held.insert(index)
            } else if block.contains(where: { $0 != 0 }) {
                throw HarnessError("record \(index) is neither written nor zero on \(members[member])")
            }
        }
        return held
    }

    /// How many records from 0 on are all held.
    static func prefixLength(_ held: Set<Int>) -> Int {
        var length = 0
        while held.contains(length) { length += 1 }
        return length
    }

    static func gapSummary(_ held: Set<Int>, prefix: Int) -> String {
        let beyond = held.filter { $0 > prefix }.sorted()
        return "0..<\(prefix) then \(beyond.prefix(8).map(String.init).joined(separator: ", "))"
            + (beyond.count > 8 ? " … (\(beyond.count) past the gap)" : "")
    }
}
}
