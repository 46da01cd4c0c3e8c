// Consistency groups across a primary restart (issue 16 §3, docs/groups.md *Across a primary
// restart*): the dependent-write chain of ConsistencyGroupTests (record i to member i mod 2,
// each after the previous one's acknowledgement) runs part-way; the primary daemon stops —
// cleanly (SIGTERM) once both members are in sync, or kill -9 at a random record — and starts
// again with g0's link cut, so g1's new session reaches the secondary while g0's cannot; the
// rest of the chain is written. The secondary's volumes, read while it runs, after a kill -9
// of the secondary, and after a forced failover of the group, must hold a gap-free prefix of
// the chain; after the link heals both members catch up to the whole chain.
//
// Without the group's epoch floor (the new run numbering from 1 again) the secondary's
// barrier still holds g0 at the run before's epoch, so g1's new writes, numbered below it,
// are issued beside g0's old image: the clean-stop runs find the gap.
import Foundation
import Testing

extension Replication {
@Suite struct ConsistencyGroupRestartTests {
    typealias Chain = ConsistencyGroupTests

    enum PrimaryStop: String, CaseIterable, Sendable { case clean, kill }
    enum Ending: String, CaseIterable, Sendable { case secondaryKilled, failover }

    /// The chain's length, and where the primary stops (at least a quarter from either end).
    static let chainRecords = 400...900

    @Test(arguments: PrimaryStop.allCases, Ending.allCases)
    func aPrimaryRestartKeepsTheGroupsSecondariesOneImage(stop: PrimaryStop, ending: Ending) throws {
        let setup = try Chain.start(group: "db")
        let pair = setup.pair
        let records = Int.random(in: Self.chainRecords)
        let stopAt = Int.random(in: (records / 4)...(records * 3 / 4))
        let runBefore = try Self.runBase(pair)
        do {
            let clients = try Self.clients(pair)
            defer { clients.forEach { $0.disconnect() } }
            for index in 0..<stopAt { try Self.write(index, clients) }
        }
        switch stop {
        case .clean:
            for name in Chain.members { try Chain.waitInSync(pair, name) }
            #expect(try pair.alpha.stop() == 0, "alpha's clean stop")
        case .kill:
            pair.alpha.crash()
        }
        setup.proxy.cut()
        try pair.alpha.start()
        try Chain.waitFor(pair.alpha, "g1", "g1's new session connected") { $0["connection_state"] as? String == "Connected" }
        let runAfter = try Self.runBase(pair)
        #expect(runAfter > runBefore, "the restarted run numbers from \(runAfter), the run before from \(runBefore)")
        // The primary cannot vouch for its peer's group image: g0's peer is not heard from.
        let view = try Self.groupEpochs(pair.alpha, "g1")
        #expect(view["peer_consistent"] as? Bool == false, "\(view)")
        #expect((view["peer_inconsistent_reason"] as? String ?? "").contains("'g0'"), "\(view)")
        // After a kill -9 the chain goes on while g1's compare of its activity-log extents may
        // still run: a write to a region it has not asked yet gives it up to the copy rather
        // than wait for the barrier (ConsistencyGroupCompareTests forces that case).
        do {
            let clients = try Self.clients(pair)
            defer { clients.forEach { $0.disconnect() } }
            for index in stopAt..<records { try Self.write(index, clients) }
        }
        try Self.waitForG1Sent(setup, after: stopAt, records: records)

        // Observed on the running secondary (g0's volume does not move: its link is cut).
        let observed = try Chain.heldRecords(pair.beta, written: records)
        try Self.expectPrefix(observed, "on the running secondary", stop: stop, stopAt: stopAt, records: records)
        switch ending {
        case .secondaryKilled:
            pair.beta.crash()
            let held = try Chain.heldRecords(pair.beta, written: records)
            try Self.expectPrefix(held, "after the secondary's kill -9", stop: stop, stopAt: stopAt, records: records)
            setup.proxy.heal()
            try pair.beta.start()
            for name in Chain.members { try Chain.waitInSync(pair, name) }
            // Both nodes now say the group's secondaries are one image.
            #expect(try Self.groupEpochs(pair.alpha, "g0")["peer_consistent"] as? Bool == true)
            #expect(try Self.groupEpochs(pair.beta, "g0")["consistent"] as? Bool == true)
            let all = try Chain.heldRecords(pair.beta, written: records)
            #expect(all.count == records && Chain.prefixLength(all) == records, "after the heal: \(all.count) of \(records)")
        case .failover:
            pair.alpha.crash()
            try pair.expectOK(try pair.beta.control().request("failover", ["name": "g0", "force": true]))
            for name in Chain.members {
                let status = try pair.expectOK(try pair.beta.control().request("status", ["name": name]))
                #expect(status["role"] as? String == "primary", "\(name): \(status)")
            }
            let held = try Chain.heldRecords(pair.beta, written: records)
            try Self.expectPrefix(held, "after the group's failover", stop: stop, stopAt: stopAt, records: records)
        }
    }

    /// The control: the restarted primary numbers the group's epochs from 1 again
    /// (TANDEM_TEST_GROUP_EPOCHS_FROM_ONE, the daemon before the floor). After a clean stop
    /// g1's new writes are issued under g0's old epoch: the running secondary holds a gap.
    @Test func withoutTheFloorACleanRestartLeavesAGap() throws {
        let setup = try Chain.start(group: "db")
        let pair = setup.pair
        let records = Int.random(in: Self.chainRecords)
        let stopAt = Int.random(in: (records / 4)...(records / 2))
        do {
            let clients = try Self.clients(pair)
            defer { clients.forEach { $0.disconnect() } }
            for index in 0..<stopAt { try Self.write(index, clients) }
        }
        for name in Chain.members { try Chain.waitInSync(pair, name) }
        #expect(try pair.alpha.stop() == 0, "alpha's clean stop")
        setup.proxy.cut()
        pair.alpha.extraEnvironment = ["TANDEM_TEST_GROUP_EPOCHS_FROM_ONE": "1"]
        try pair.alpha.start()
        try Chain.waitFor(pair.alpha, "g1", "g1's new session connected") { $0["connection_state"] as? String == "Connected" }
        #expect(try Self.runBase(pair) == 0, "the control numbers from 1")
        do {
            let clients = try Self.clients(pair)
            defer { clients.forEach { $0.disconnect() } }
            for index in stopAt..<records { try Self.write(index, clients) }
        }
        try Self.waitForG1Sent(setup, after: stopAt, records: records)
        let held = try Chain.heldRecords(pair.beta, written: records)
        #expect(held.count > Chain.prefixLength(held), "no gap without the floor: \(held.count) held, of \(records)")
    }

    /// The floor file is damaged: starting from 1 again would be the gap above, so the
    /// member's start is refused (at the daemon's start it stays disabled; `enable` answers
    /// `io-error` naming the file); the daemon runs on.
    @Test func aDamagedFloorRefusesThePrimarysStart() throws {
        let pair = try ReplicatedPair(sizeBytes: Chain.volumeBytes)
        try Chain.create(pair, on: pair.alpha, name: "g0", role: "primary", peer: ("beta", pair.betaAddress), group: "db")
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": "g0"]))
        let floor = pair.alpha.stateDir + "/db.group-epochs"
        #expect(FileManager.default.fileExists(atPath: floor), "the first run stored the next run's floor")
        #expect(try pair.alpha.stop() == 0)
        #expect(FileManager.default.createFile(atPath: floor, contents: Data("tandem-group-epochs 1\nnext 9\ncrc 1\n".utf8)))
        try pair.alpha.start()
        let status = try pair.expectOK(try pair.alpha.control().request("status", ["name": "g0"]))
        #expect(status["enabled"] as? Bool == false && status["replication_state"] as? String == "Off", "\(status)")
        let again = try pair.alpha.control().request("enable", ["name": "g0"])
        #expect(again["error"] as? String == "io-error", "\(again)")
        #expect((again["message"] as? String ?? "").contains(floor), "\(again)")
    }

    // MARK: Helpers

    static func clients(_ pair: ReplicatedPair) throws -> [RawNBDClient] {
        try Chain.members.map {
            try RawNBDClient.transmitting(socketPath: pair.alpha.directory.file("\($0).nbd"), exportName: $0)
        }
    }

    static func write(_ index: Int, _ clients: [RawNBDClient]) throws {
        let (member, offset) = Chain.place(index)
        try clients[member].write(offset: offset, data: Chain.record(index))
    }

    static func groupEpochs(_ daemon: DaemonProcess, _ name: String) throws -> JSONObject {
        let status = try daemon.control().request("status", ["name": name])
        guard let fields = status["group_epochs"] as? JSONObject else { throw HarnessError("no group_epochs: \(status)") }
        return fields
    }

    /// The primary's `group_epochs.run_base`: where this run's epoch numbers began.
    static func runBase(_ pair: ReplicatedPair) throws -> Int {
        let status = try pair.expectOK(try pair.alpha.control().request("status", ["name": "g1"]))
        guard let base = (status["group_epochs"] as? JSONObject)?["run_base"] as? Int else {
            throw HarnessError("no group_epochs.run_base: \(status)")
        }
        return base
    }

    /// g1's records after the restart have reached the secondary: held there by the barrier
    /// (queued) or applied to its volume (together every one), or durable there (g1's
    /// stream writes all confirmed on the primary: applied, or staged in the journal).
    static func waitForG1Sent(_ setup: Chain.Setup, after stopAt: Int, records: Int) throws {
        let laterRecords = (stopAt..<records).filter { Chain.place($0).member == 1 }
        let volume = setup.pair.beta.directory.file("g1.vol")
        try Chain.waitFor(setup.pair.beta, "g1", "g1's \(laterRecords.count) later records on beta") { status in
            let queued = status["queued_writes"] as? Int ?? 0
            if queued >= laterRecords.count { return true }
            let primary = try? setup.pair.alpha.control().request("status", ["name": "g1"])
            if primary?["lag_bytes"] as? Int == 0 || primary?["unconfirmed_bytes"] as? Int == 0 { return true }
            guard let data = FileManager.default.contents(atPath: volume) else { return false }
            let applied = laterRecords.filter { index in
                let offset = Int(Chain.place(index).offsetBytes)
                return [UInt8](data[offset..<offset + 4096]) == Chain.record(index)
            }
            return queued + applied.count >= laterRecords.count
        }
    }

    /// `held` is a gap-free prefix of the chain; after a clean stop (both in sync) it is
    /// every record before the stop and nothing after it (g0 is away, so the barrier holds
    /// g1's new writes); after a kill -9 any prefix up to the stop.
    static func expectPrefix(_ held: Set<Int>, _ when: String, stop: PrimaryStop, stopAt: Int, records: Int) throws {
        let prefix = Chain.prefixLength(held)
        #expect(held.count == prefix, "\(when): a gap: records \(Chain.gapSummary(held, prefix: prefix)) of \(records)")
        switch stop {
        case .clean: #expect(prefix == stopAt, "\(when): \(prefix) records held, the primary stopped at \(stopAt)")
        case .kill: #expect(prefix <= stopAt, "\(when): \(prefix) records held, the primary was killed at \(stopAt)")
        }
    }
}
}
