// The activity log in production (issue 13: "a primary crash costs its hot extents, not a
// full copy"; docs/replication.md, *Stops and restarts*): a primary killed with kill -9 in the
// middle of a workload restarts, proves its metadata's activity-log ring and catches up only
// the extents its newest transaction names (`session_start: catch-up`, reason
// crash-recovery), from the base that transaction records; the secondary's own verdict
// accepts it. The link runs through a LinkProxy that counts what alpha sends after the
// restart: at most the extents' size, never the volume (the extents are compared by digest
// first and only regions that differ are sent: ActivityLogChecksumTests measures that). Every write acknowledged before the
// kill is on both volumes at the end, and the volumes are byte-identical. A ring slot that
// fails its checksum is not believed: an event, and the whole volume is copied.
import Foundation
import Testing

extension Replication {
@Suite struct ActivityLogCrashTests {
    /// 128 MiB: a full copy is 32 of the 4 MiB extents; the workload touches at most 3.
    static let volumeBytes = 128 << 20
    static let extentBytes = 4 << 20
    static let blocksPerExtent = extentBytes / 4096
    /// Writes acknowledged before the kill: they span two extents (1 024 blocks each).
    static let acknowledgedBeforeKill = 1500

    @Test func aSyncPrimaryKilledMidWorkloadCatchesUpOnlyItsActivityLogExtents() throws {
        try killMidWorkloadAndRestart(mode: "sync")
    }

    @Test func anAsyncPrimaryKilledMidWorkloadCatchesUpOnlyItsActivityLogExtents() throws {
        try killMidWorkloadAndRestart(mode: "async")
    }

    private func killMidWorkloadAndRestart(mode: String) throws {
        let pair = try ReplicatedPair(sizeBytes: Self.volumeBytes, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try pair.createAndEnable(mode: mode, initialSync: "none")
        try pair.waitInSync()
        let (acknowledged, _) = try Self.writeThenKill(pair)
        // The writes in flight at the kill may touch the next extent too.
        let touchedExtents = (acknowledged + 1 + Self.blocksPerExtent - 1) / Self.blocksPerExtent

        // The link stays cut until the restarted alpha's dirty set has been read: connected at
        // once, the catch-up may clear bits (or finish) before a status read.
        proxy.cut()
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        proxy.resetCounters()
        proxy.heal()
        #expect(restarted["session_start"] as? String == "catch-up", "\(restarted)")
        #expect((restarted["session_start_reason"] as? String ?? "").contains("crash-recovery"), "\(restarted)")
        let dirtyBytes = restarted["out_of_sync_bytes"] as? Int ?? -1
        #expect(dirtyBytes >= (touchedExtents - 1) * Self.extentBytes && dirtyBytes <= touchedExtents * Self.extentBytes,
                "the activity log's extents (\(touchedExtents) touched): out_of_sync_bytes \(dirtyBytes)")
        #expect(dirtyBytes > 0 && dirtyBytes % Self.extentBytes == 0, "whole extents: \(dirtyBytes)")
        let log = try String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)
        #expect(log.contains("catches up the activity log's extents"), "alpha says why:\n\(pair.alpha.logTail())")

        try CatchUpTests.waitCaughtUp(pair)
        try CatchUpTests.expectOnlyDirtyRegionsMoved(proxy, dirtyBytes: dirtyBytes, pair: pair)
        try CatchUpTests.expectIdenticalVolumes(pair)
        try Self.expectAcknowledgedPresent(pair, count: acknowledged)
    }

    /// fio's random writes at queue depth 4 over the first 16 MiB (four extents, every one
    /// missed and logged under concurrent writes): the kill finds them all in the log.
    @Test(arguments: ["sync", "async"])
    func aPrimaryKilledUnderRandomWritesCatchesUpTheirFourExtents(mode: String) throws {
        let pair = try ReplicatedPair(sizeBytes: Self.volumeBytes, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try pair.createAndEnable(mode: mode, initialSync: "none")
        try pair.waitInSync()
        let fio = try FioJob(socket: pair.nbdSocket(pair.alpha), regionBytes: 4 * Self.extentBytes, runtimeSeconds: 30,
                             rateIOPS: 2000)
        #expect(proxy.waitForForwarded(.toTarget, atLeast: 2 << 20, timeoutSeconds: 30), "no workload crossed the link")
        pair.alpha.crash()
        _ = try? fio.finish()  // its export died with alpha: fio reports errors
        proxy.cut()  // until the dirty set is read (above)
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        proxy.resetCounters()
        proxy.heal()
        #expect(restarted["session_start"] as? String == "catch-up", "\(restarted)")
        let dirtyBytes = restarted["out_of_sync_bytes"] as? Int ?? -1
        #expect(dirtyBytes == 4 * Self.extentBytes, "the four extents fio wrote: \(restarted)")
        try CatchUpTests.waitCaughtUp(pair)
        try CatchUpTests.expectOnlyDirtyRegionsMoved(proxy, dirtyBytes: dirtyBytes, pair: pair)
        try CatchUpTests.expectIdenticalVolumes(pair)
    }

    /// A ring slot flipped behind the stopped daemon's back (one that must hold a transaction:
    /// not a slot beside the newest, which a crash may leave torn with two transactions in
    /// flight): the ring proves nothing, alpha says so and copies the whole volume, and nothing
    /// is lost.
    @Test func aCorruptedActivityLogSlotIsNotBelievedAndTheVolumeIsCopied() throws {
        let (pair, acknowledged, path, slots, newest) = try Self.killedPairWithItsRing()
        #expect(newest >= 3, "the session's start and the two extents' transactions at least: \(slots)")
        let victim = try #require(slots.firstIndex(of: newest - 2))
        try Self.flipByte(path, slot: victim)

        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        #expect(restarted["session_start"] as? String == "full-copy", "\(restarted)")
        let log = try String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)
        #expect(log.contains("activity-log slot \(victim)"), "alpha names the slot:\n\(pair.alpha.logTail())")
        try CatchUpTests.waitCaughtUp(pair)
        try CatchUpTests.expectIdenticalVolumes(pair)
        try Self.expectAcknowledgedPresent(pair, count: acknowledged)
    }

    /// Two transactions are in flight at once and the disk may finish the newer first, so a
    /// crash can leave the slot just before the newest torn (flipped here behind the stopped
    /// daemon's back, as a write cut short leaves it): alpha still catches up its newest
    /// transaction's extents, and writes the torn slot again before its session's first
    /// transaction — so a second kill -9 right after, when the proof judges that slot, still
    /// finds a proven ring. (Before: the first restart copied the volume.)
    @Test func aSlotTornBeforeTheNewestIsWrittenAgainAndCrashRestartsStillCatchUp() throws {
        let (pair, acknowledged, path, slots, newest) = try Self.killedPairWithItsRing()
        let victim = try #require(slots.firstIndex(of: newest - 1), "\(slots)")
        try Self.flipByte(path, slot: victim)

        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        #expect(restarted["session_start"] as? String == "catch-up", "\(restarted)\n\(pair.alpha.logTail())")
        #expect((restarted["session_start_reason"] as? String ?? "").contains("crash-recovery"), "\(restarted)")
        let log = try String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)
        #expect(log.contains("written again"), "alpha rewrites the torn slot:\n\(pair.alpha.logTail())")
        #expect(try Self.ringTransactions(path)[victim] == newest - 1, "the slot holds its transaction again")
        try CatchUpTests.waitCaughtUp(pair)

        pair.alpha.crash()
        try pair.alpha.start()
        let logAgain = try String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)
        // After the catch-up its newest transaction may name no extent: either line says the
        // ring was read and proven (Resource+ActivityLog.publishActivityLogRecovered).
        #expect(logAgain.contains("did not stop cleanly") && logAgain.contains("the next session catches up")
                    && !logAgain.contains("proves nothing"),
                "the ring is proven again:\n\(pair.alpha.logTail())")
        try CatchUpTests.waitCaughtUp(pair)
        try CatchUpTests.expectIdenticalVolumes(pair)
        try Self.expectAcknowledgedPresent(pair, count: acknowledged)
    }

    /// The restarted primary cannot reach its peer (the link cut), is disabled, and takes
    /// writes while disabled: the stop seals the log's regions with the catch-up's bases, the
    /// writes while disabled are tracked on top, and the next `enable` catches up both.
    @Test func writesWhileDisabledAfterACrashRestartAreCaughtUpToo() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.volumeBytes, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try pair.createAndEnable(mode: "sync", initialSync: "none")
        try pair.waitInSync()
        let (acknowledged, _) = try Self.writeThenKill(pair)
        proxy.cut()
        try pair.alpha.start()
        #expect(try pair.status(pair.alpha)["session_start"] as? String == "catch-up")
        try pair.expectOK(try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource]))
        // 1 MiB at 64 MiB, far from the log's extents, while replication is off.
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: "r0")
        let disabledFirstBlock = (64 << 20) / 4096
        for index in disabledFirstBlock..<(disabledFirstBlock + 256) {
            try client.write(offset: UInt64(index) * 4096, data: AcknowledgedWriter.pattern(index))
        }
        client.disconnect()
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        let enabled = try pair.status(pair.alpha)
        #expect(enabled["session_start"] as? String == "catch-up", "\(enabled)")
        let dirtyBytes = enabled["out_of_sync_bytes"] as? Int ?? -1
        #expect(dirtyBytes >= Self.extentBytes + (1 << 20) && dirtyBytes <= 3 * Self.extentBytes + (1 << 20),
                "the log's extents and the MiB written while disabled: \(enabled)")
        proxy.heal()
        try CatchUpTests.waitCaughtUp(pair)
        try CatchUpTests.expectIdenticalVolumes(pair)
        try Self.expectAcknowledgedPresent(pair, count: acknowledged)
        let beta = try VolumeFiles.bytes(pair.volume(pair.beta), offset: UInt64(disabledFirstBlock) * 4096, count: 4096)
        #expect(beta == AcknowledgedWriter.pattern(disabledFirstBlock), "beta has the writes made while disabled")
    }

    /// issue 13 §4: an async primary Ahead after a cut writes one block in each of the 32
    /// extents (more than its 16-extent log: 16 evictions or more, each persisting its bitmap pages
    /// first) and is killed. Restarted with the link still cut it catches up (its durable
    /// pages ∪ its newest transaction's extents, from the catch-up's bases): every bit set
    /// before the kill, at most the log's extents more, never the volume; after the heal the
    /// link carries about that and the volumes are identical.
    @Test func aPrimaryKilledWhileAheadCatchesUpItsBitmapAndLogNotTheVolume() throws {
        let pair = try CatchUpTests.makePair()  // 1 MiB requests: the 4 MiB buffer overflows
        let proxy = try #require(pair.proxy)
        let logExtents = 16
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "async",
                        initialSync: "none", compression: "none")
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: "async",
                        initialSync: "none", compression: "none", asyncBufferBytes: 4 << 20,
                        settings: ["al_extents": logExtents])
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.waitInSync()
        proxy.cut()
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: ReplicatedPair.resource)
        // 1 MiB writes from 0 until the 4 MiB buffer overflows: alpha goes Ahead.
        var chunk = 0
        while try pair.status(pair.alpha)["replication_state"] as? String != "Ahead" {
            try #require(chunk < 24, "alpha never went Ahead")
            try client.write(offset: UInt64(chunk << 20), data: [UInt8](repeating: UInt8(0xA0 + chunk), count: 1 << 20))
            chunk += 1
        }
        for extent in 0..<(Self.volumeBytes / Self.extentBytes) {
            let block = extent * Self.blocksPerExtent + Self.blocksPerExtent / 2
            try client.write(offset: UInt64(block) * 4096, data: AcknowledgedWriter.pattern(block))
        }
        client.disconnect()
        let before = try pair.status(pair.alpha)
        #expect(before["replication_state"] as? String == "Ahead", "\(before)")
        let dirtyBeforeKill = before["out_of_sync_bytes"] as? Int ?? -1
        #expect(dirtyBeforeKill >= 30 * 4096, "a block per extent at least: \(before)")

        pair.alpha.crash()
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        proxy.resetCounters()
        #expect(restarted["session_start"] as? String == "catch-up", "\(restarted)\n\(pair.alpha.logTail())")
        #expect((restarted["session_start_reason"] as? String ?? "").contains("crash-recovery"), "\(restarted)")
        let dirtyBytes = restarted["out_of_sync_bytes"] as? Int ?? -1
        #expect(dirtyBytes >= dirtyBeforeKill && dirtyBytes <= dirtyBeforeKill + logExtents * Self.extentBytes,
                "every bit set before the kill (\(dirtyBeforeKill)) and at most the log's extents: \(dirtyBytes)")
        #expect(dirtyBytes < Self.volumeBytes, "not the volume: \(dirtyBytes)")
        let log = try String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)
        #expect(log.contains("catches up the activity log's extents") && log.contains("bitmap_pages"),
                "alpha says why, and that the pages counted:\n\(pair.alpha.logTail())")

        proxy.heal()
        try CatchUpTests.waitCaughtUp(pair)
        try CatchUpTests.expectOnlyDirtyRegionsMoved(proxy, dirtyBytes: dirtyBytes, pair: pair)
        try CatchUpTests.expectIdenticalVolumes(pair)
    }

    /// `al_extents` must hold every extent one request may touch (32 MiB requests, 4 MiB
    /// extents: 9); a smaller log is refused at `create` and nothing is created.
    @Test func createRefusesAnActivityLogTooSmallForTheLargestRequest() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        func create(_ extents: Int) throws -> JSONObject {
            try pair.alpha.control().request("create", [
                "name": ReplicatedPair.resource, "volume": pair.volume(pair.alpha), "size_bytes": 16 << 20,
                "role": "primary", "peer": ["name": "beta", "address": pair.betaAddress],
                "nbd": ["socket": pair.nbdSocket(pair.alpha)], "al_extents": extents,
            ])
        }
        let refused = try create(8)
        #expect(refused["ok"] as? Bool == false && refused["error"] as? String == "invalid-argument", "\(refused)")
        #expect((refused["message"] as? String ?? "").contains("at least 9"), "\(refused)")
        #expect(try pair.alpha.control().request("status", ["name": ReplicatedPair.resource])["ok"] as? Bool == false,
                "nothing was created")
        try pair.expectOK(try create(9))
    }

    // MARK: Steps

    /// docs/metadata.md: the ring follows the two superblock slots; 8 slots by default.
    static let ringOffset = 8192
    static let ringSlots = 8

    /// Distinct blocks from block 0 at QD1 until `acknowledgedBeforeKill` are acknowledged,
    /// then alpha is killed (-9) with more in flight. Returns how many were acknowledged.
    /// A sync pair in sync, writes then alpha killed: its metadata file's path, the ring's
    /// transaction numbers by slot, and the newest.
    static func killedPairWithItsRing() throws
        -> (pair: ReplicatedPair, acknowledged: Int, path: String, slots: [UInt64?], newest: UInt64) {
        let pair = try ReplicatedPair(sizeBytes: volumeBytes)
        try pair.createAndEnable(mode: "sync", initialSync: "none")
        try pair.waitInSync()
        let (acknowledged, _) = try writeThenKill(pair)
        let path = "\(pair.alpha.stateDir)/\(ReplicatedPair.resource).md"
        let slots = try ringTransactions(path)
        let newest = try #require(slots.compactMap { $0 }.max(), "a ring with transactions: \(slots)")
        return (pair, acknowledged, path, slots, newest)
    }

    static func writeThenKill(_ pair: ReplicatedPair) throws -> (Int, AcknowledgedWriter) {
        let writer = AcknowledgedWriter(socket: pair.nbdSocket(pair.alpha), blocks: 3 * blocksPerExtent)
        writer.start()
        try writer.waitForAcknowledged(acknowledgedBeforeKill, timeoutSeconds: 60)
        pair.alpha.crash()
        writer.join()
        let acknowledged = writer.acknowledged.count
        #expect(acknowledged >= acknowledgedBeforeKill && acknowledged < 3 * blocksPerExtent, "\(acknowledged) acknowledged")
        return (acknowledged, writer)
    }

    /// Flips a byte inside ring slot `slot`'s extent list (its checksum then fails).
    static func flipByte(_ path: String, slot: Int) throws {
        let file = try #require(FileHandle(forUpdatingAtPath: path))
        let offset = UInt64(ringOffset + slot * 4096 + 40)
        try file.seek(toOffset: offset)
        let byte = try #require(try file.read(upToCount: 1)).first!
        try file.seek(toOffset: offset)
        try file.write(contentsOf: Data([byte ^ 0xFF]))
        try file.close()
    }

    /// Each ring slot's transaction number (nil: zeroes or no `TNAL` magic).
    static func ringTransactions(_ path: String) throws -> [UInt64?] {
        let file = try #require(FileHandle(forReadingAtPath: path))
        defer { try? file.close() }
        try file.seek(toOffset: UInt64(ringOffset))
        let ring = try #require(try file.read(upToCount: ringSlots * 4096))
        return (0..<ringSlots).map { slot in
            let bytes = [UInt8](ring[(slot * 4096)..<(slot * 4096 + 16)])
            guard bytes[0..<4] == [0x54, 0x4E, 0x41, 0x4C] else { return nil }
            return bytes[8..<16].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
    }

    /// Both volumes (the daemons stopped) hold every acknowledged block's pattern.
    static func expectAcknowledgedPresent(_ pair: ReplicatedPair, count: Int) throws {
        for daemon in [pair.alpha, pair.beta] {
            let bytes = try VolumeFiles.bytes(pair.volume(daemon), offset: 0, count: count * 4096)
            var missing: [Int] = []
            for index in 0..<count where Array(bytes[(index * 4096)..<((index + 1) * 4096)]) != AcknowledgedWriter.pattern(index) {
                missing.append(index)
            }
            #expect(missing.isEmpty, "\(daemon === pair.alpha ? "alpha" : "beta") lacks acknowledged blocks \(missing.prefix(20))")
        }
    }
}
}
