// CampaignRun: one fault-campaign scenario's pair and what it saw. Two real tandemd
// processes (alpha primary, beta secondary; ReplicatedPair) with alpha dialling beta through
// a LinkProxy, the scenario's workload (an AcknowledgedWriter: distinct 4 KiB blocks at QD1,
// each recorded once acknowledged), and a trail of both nodes' reported states at every step,
// which failures quote and which docs/fault-campaign.md was written from.
//
// The checks every scenario ends with live here: nothing acknowledged is missing, the async
// secondary is a gap-free prefix of the dependent chain, and the volumes end byte-identical.
import Foundation
import Testing

final class CampaignRun {
    /// The resource's settings for one scenario.
    struct Setup {
        var mode = "sync"
        var fencing = "dont-care"
        var initialSync = "none"
        var sizeBytes = 32 << 20
        /// Alpha's volume starts as this many MiB of random bytes (for a copy to move), the
        /// rest zero; 0: all zero on both nodes.
        var randomMiB = 0
        /// alpha's async_buffer_bytes; nil: the default.
        var primaryBufferBytes: Int?
        var settings: [String: Any] = [:]
        var alphaArguments: [String] = []
        var betaArguments: [String] = []
        /// beta's volume file, when not the one in its directory (a FaultyVolume).
        var betaVolume: String?
        /// beta dials alpha through a LinkProxy of its own (`betaProxy`): a beta promoted
        /// primary then replicates through it, and its bytes can be counted.
        var betaDialsThroughProxy = false
    }

    static let blockBytes = 4096

    /// The rows of a scenario table to run: all, or those whose description contains
    /// TANDEM_FAULT_SCENARIO (to replay one row: `TANDEM_FAULT_SCENARIO='cut while catchingUp'`).
    static func selected<Row: CustomTestStringConvertible>(_ rows: [Row]) -> [Row] {
        guard let wanted = ProcessInfo.processInfo.environment["TANDEM_FAULT_SCENARIO"], !wanted.isEmpty else { return rows }
        return rows.filter { $0.testDescription.contains(wanted) }
    }

    let pair: ReplicatedPair
    let proxy: LinkProxy
    /// Between beta and alpha's listen address, when `setup.betaDialsThroughProxy`.
    let betaProxy: LinkProxy?
    let setup: Setup
    private(set) var writer: AcknowledgedWriter?
    /// What the writer saw acknowledged, once it ended.
    private var writerResult: [Int]?
    /// Blocks written and acknowledged by `writeBlocks` (on whichever node was primary).
    private(set) var acknowledgedElsewhere: [Int] = []
    /// Both nodes' states at each step ("step: alpha … | beta …").
    var trail: [String] = []

    /// Two started daemons, r0 created on both; nothing enabled yet.
    init(_ setup: Setup) throws {
        self.setup = setup
        pair = try ReplicatedPair(sizeBytes: setup.sizeBytes, alphaArguments: setup.alphaArguments,
                                  betaArguments: setup.betaArguments, throughProxy: true)
        proxy = pair.proxy!
        if setup.randomMiB > 0 {
            try VolumeFiles.makeRandom(pair.volume(pair.alpha), sizeBytes: setup.randomMiB << 20)
            guard truncate(pair.volume(pair.alpha), off_t(setup.sizeBytes)) == 0 else {
                throw HarnessError("truncate alpha's volume: errno \(errno)")
            }
        }
        betaProxy = setup.betaDialsThroughProxy ? try LinkProxy(target: pair.alphaAddress) : nil
        try create(on: pair.beta, role: "secondary", peer: ("alpha", betaProxy?.address ?? pair.alphaAddress))
        try create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha))
    }

    private func create(on daemon: DaemonProcess, role: String, peer: (String, String)) throws {
        var settings = setup.settings
        settings["fencing"] = setup.fencing
        if role == "primary", let bytes = setup.primaryBufferBytes { settings["async_buffer_bytes"] = bytes }
        if role == "secondary", let volume = setup.betaVolume { settings["volume"] = volume }
        try pair.create(on: daemon, role: role, peer: peer, mode: setup.mode, initialSync: setup.initialSync,
                        compression: "none", settings: settings)
    }

    var betaVolume: String { setup.betaVolume ?? pair.volume(pair.beta) }

    func enable(_ daemon: DaemonProcess) throws {
        try pair.expectOK(try daemon.control().request("enable", ["name": ReplicatedPair.resource]))
    }

    /// Both enabled (beta first) and in sync.
    func enableBothInSync() throws {
        try enable(pair.beta)
        try enable(pair.alpha)
        try pair.waitInSync()
        observe("in sync")
    }

    func set(_ daemon: DaemonProcess, _ settings: [String: Any]) throws {
        try pair.expectOK(try daemon.control().request("set", settings.merging(["name": ReplicatedPair.resource]) { $1 }))
    }

    // MARK: The workload

    /// Starts the writer on alpha's export: blocks 0..<blocks, in order, one at a time.
    func startWriter(blocks: Int) {
        precondition(writer == nil && blocks <= setup.sizeBytes / Self.blockBytes)
        let writer = AcknowledgedWriter(socket: pair.nbdSocket(pair.alpha), blocks: blocks)
        self.writer = writer
        writer.start()
    }

    func waitForAcknowledged(_ count: Int) throws {
        try writer!.waitForAcknowledged(count, timeoutSeconds: 60)
    }

    /// The writer's acknowledged blocks once it ended (its blocks written, or its server gone).
    func joinWriter() -> [Int] {
        guard let writer else { return [] }
        if let writerResult { return writerResult }
        writer.join()
        writerResult = writer.acknowledged
        return writer.acknowledged
    }

    /// Writes blocks `range` (each its pattern) through `daemon`'s export at QD1; every one
    /// must be acknowledged, and is checked at the end.
    func writeBlocks(on daemon: DaemonProcess, _ range: Range<Int>) throws {
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(daemon), exportName: ReplicatedPair.resource)
        defer { client.disconnect() }
        for index in range {
            try client.write(offset: UInt64(index * Self.blockBytes), data: AcknowledgedWriter.pattern(index))
            acknowledgedElsewhere.append(index)
        }
    }

    /// Writes 1 MiB batches past the writer's blocks through alpha until it is Ahead (its
    /// async buffer overflowed), then waits for Ahead as `PairState.waitAhead` does. The
    /// running writer alone cannot be relied on to overflow it: on a loaded machine it may
    /// have written most of its 8 MiB before the fault came (CI, 2026-12-07 and -08: all 2048
    /// acknowledged, the rest drained through a capped link or held for a gone peer, never
    /// Ahead). A 1 MiB batch outpaces a 512 KiB/s link unless a 4 KiB write takes longer
    /// than 8 ms; the volume past the writer's blocks is the bound.
    func writeUntilAhead() throws {
        let batch = 256
        let end = setup.sizeBytes / Self.blockBytes
        for start in stride(from: PairState.writerBlocks, to: end, by: batch) {
            try writeBlocks(on: pair.alpha, start..<min(start + batch, end))
            if try pair.status(pair.alpha)["replication_state"] as? String == "Ahead" { break }
        }
        try PairState.waitAhead(self)
    }

    // MARK: What the nodes say

    /// Both nodes' status (nil for a node that is not running), recorded in the trail.
    @discardableResult
    func observe(_ step: String) -> (alpha: JSONObject?, beta: JSONObject?) {
        let alpha = pair.alpha.isRunning ? try? pair.status(pair.alpha) : nil
        let beta = pair.beta.isRunning ? try? pair.status(pair.beta) : nil
        trail.append("\(step): alpha \(Self.summary(alpha)) | beta \(Self.summary(beta))")
        return (alpha, beta)
    }

    /// connection/replication/disk/peer disk[/redundant], the words an operator reads.
    static func summary(_ status: JSONObject?) -> String {
        guard let status else { return "down" }
        let words = ["connection_state", "replication_state", "disk_state", "peer_disk_state"].map {
            status[$0] as? String ?? "-"
        }
        let redundant = (status["redundant"] as? Bool).map { $0 ? "redundant" : "not redundant" } ?? "-"
        return (words + [redundant]).joined(separator: "/")
    }

    var trailText: String { trail.joined(separator: "\n") }

    /// Waits for `condition` on `daemon`'s status and records the states once it holds.
    @discardableResult
    func waitFor(_ daemon: DaemonProcess, _ what: String, timeoutSeconds: Double = 30,
                 _ condition: (JSONObject) -> Bool) throws -> JSONObject {
        do {
            let status = try pair.waitFor(daemon, timeoutSeconds: timeoutSeconds, what, condition)
            observe(what)
            return status
        } catch {
            throw HarnessError("\(error)\ntrail:\n\(trailText)")
        }
    }

    /// A survivor's word for a peer it lost: not connected, never UpToDate, not redundant.
    func expectAlone(_ status: JSONObject, _ node: String) {
        #expect(status["connection_state"] as? String != "Connected", "\(node): \(status)\n\(trailText)")
        #expect(status["redundant"] as? Bool != true, "\(node) alone says redundant: \(status)\n\(trailText)")
        if let peer = status["peer_disk_state"] as? String {
            #expect(peer != "UpToDate", "\(node) calls a gone peer UpToDate: \(status)\n\(trailText)")
        }
    }

    // MARK: The end of every scenario

    /// Link whole, rate caps off, the writer ended; then the primary (alpha unless a
    /// failover made it beta) Established with its peer UpToDate, nothing out of sync or
    /// unconfirmed, never calling its peer UpToDate on the way while bits were set; the
    /// secondary UpToDate and connected.
    func converge(primary: DaemonProcess? = nil) throws {
        let primary = primary ?? pair.alpha
        let secondary = primary === pair.alpha ? pair.beta : pair.alpha
        proxy.heal()
        proxy.resume()
        proxy.capBytesPerSecond(nil)
        proxy.delay(milliseconds: 0)
        try set(primary, ["resync_rate": 0])  // a slowed copy or catch-up at full speed
        _ = joinWriter()
        var premature: JSONObject?
        try waitFor(primary, "primary Established, its peer UpToDate, nothing out of sync", timeoutSeconds: 90) { status in
            let dirtyBytes = status["out_of_sync_bytes"] as? Int ?? -1
            if status["peer_disk_state"] as? String == "UpToDate", dirtyBytes != 0, premature == nil { premature = status }
            return status["replication_state"] as? String == "Established" && dirtyBytes == 0
                && status["peer_disk_state"] as? String == "UpToDate" && status["redundant"] as? Bool == true
                && status["connection_state"] as? String == "Connected"
                && status["lag_bytes"] as? Int == 0 && status["unconfirmed_bytes"] as? Int == 0
        }
        #expect(premature == nil, "the primary called its peer UpToDate with bits set: \(premature ?? [:])\n\(trailText)")
        try waitFor(secondary, "secondary UpToDate and connected") {
            $0["disk_state"] as? String == "UpToDate" && $0["connection_state"] as? String == "Connected"
        }
    }

    /// Both stopped cleanly; the volumes byte-identical (read whole and compared) and every
    /// block the writer saw acknowledged holds its pattern. Prints the trail (the campaign's
    /// record). `writerSurvives` false: the writer's acknowledged writes need not all be there
    /// (an async primary's, after a forced failover to its secondary).
    func expectIdenticalWithEveryAcknowledgedWrite(_ name: String, writerSurvives: Bool = true) throws {
        let acknowledged = (writerSurvives ? joinWriter() : []) + acknowledgedElsewhere
        try pair.alpha.stop()
        try pair.beta.stop()
        let alpha = try Data(contentsOf: URL(fileURLWithPath: pair.volume(pair.alpha)))
        let beta = try Data(contentsOf: URL(fileURLWithPath: betaVolume))
        if !alpha.withUnsafeBytes({ one in beta.withUnsafeBytes { BlockBytes.equal(one, $0) } }) {
            Issue.record("volumes differ in blocks \(try differingBlocks(pair.volume(pair.alpha), betaVolume))\n\(trailText)")
        }
        let missing = Self.missingBlocks(acknowledged, in: alpha)
        #expect(missing.isEmpty, "acknowledged writes missing: \(missing.prefix(20))\n\(trailText)")
        FileHandle.standardError.write(Data("fault-campaign \(name): \(acknowledged.count) acknowledged\n\(trailText)\n".utf8))
    }

    /// The 4 KiB blocks in which two volumes differ, as ranges (at most 20), for failures.
    func differingBlocks(_ path: String, _ other: String) throws -> String {
        let one = try Data(contentsOf: URL(fileURLWithPath: path))
        let two = try Data(contentsOf: URL(fileURLWithPath: other))
        guard one.count == two.count else { return "(sizes \(one.count) and \(two.count))" }
        var ranges: [ClosedRange<Int>] = []
        for index in 0..<(one.count / Self.blockBytes) {
            let bytes = index * Self.blockBytes..<(index + 1) * Self.blockBytes
            guard one[bytes] != two[bytes] else { continue }
            if let last = ranges.last, last.upperBound == index - 1 {
                ranges[ranges.count - 1] = last.lowerBound...index
            } else {
                ranges.append(index...index)
            }
        }
        // What the second volume holds there: zeros, the writer's pattern, or something else.
        let describe = { (index: Int) -> String in
            let block = two[index * Self.blockBytes..<(index + 1) * Self.blockBytes]
            if block.allSatisfy({ $0 == 0 }) { return "zero" }
            return block.elementsEqual(AcknowledgedWriter.pattern(index)) ? "pattern" : "other"
        }
        return ranges.prefix(20).map { "\($0.lowerBound)–\($0.upperBound) (second: \(describe($0.lowerBound)))" }
            .joined(separator: ", ")
    }

    /// The blocks of `indices` whose content in `path` is not their pattern.
    func missingBlocks(_ indices: [Int], in path: String) throws -> [Int] {
        Self.missingBlocks(indices, in: try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// The blocks of `indices` whose content in `volume` is not their pattern.
    static func missingBlocks(_ indices: [Int], in volume: Data) -> [Int] {
        volume.withUnsafeBytes { bytes in indices.filter { !BlockBytes.holdsPattern(bytes, block: $0) } }
    }

    /// The dependent-write chain on `path`: blocks 0..<prefix hold their pattern, every later
    /// block of the written range is still zero (no write after a missing one), and the
    /// prefix is at most one past what was acknowledged (QD1: one write in flight).
    func expectConsistentPrefix(_ path: String, acknowledged: Int, written: Int) throws {
        let volume = try Data(contentsOf: URL(fileURLWithPath: path))
        let (prefix, gaps) = volume.withUnsafeBytes { bytes in
            var prefix = 0
            while prefix < written, BlockBytes.holdsPattern(bytes, block: prefix) { prefix += 1 }
            let gaps = (prefix..<written).filter { index in
                BlockBytes.block(index, of: bytes).map { !BlockBytes.all($0, are: 0) } ?? true  // past the end: not zero
            }
            return (prefix, gaps)
        }
        #expect(gaps.isEmpty, "writes after the prefix end \(prefix) are present: \(gaps.prefix(20))\n\(trailText)")
        #expect(prefix <= acknowledged + 1, "prefix \(prefix) beyond \(acknowledged) acknowledged")
        trail.append("secondary holds a prefix of \(prefix) of \(acknowledged) acknowledged writes")
    }
}
