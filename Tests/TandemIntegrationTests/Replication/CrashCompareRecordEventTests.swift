// A crash restart's digest compare whose record cannot be kept (docs/replication.md,
// *Checksum resync of the extents*): the compare still runs to its end and the copies end
// identical, and the event `checksum-resync-record-not-kept` says what a crash before the end
// would cost. Published while the daemon opens its resources, before any `events` reader can
// subscribe: the test reads it where the daemon logs every event it publishes.
import Foundation
import Testing

extension Replication {
@Suite struct CrashCompareRecordEventTests {
    @Test func aCompareRecordThatCannotBeKeptIsAnEventAndTheCompareStillRuns() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        try pair.createAndEnable(mode: "sync", initialSync: "none")
        try pair.waitInSync()
        try RawNBDClient.writePatterns(socketPath: pair.nbdSocket(pair.alpha), blocks: 0..<64)
        pair.alpha.crash()
        // The record is written to `<name>.crash-compare.new`, then renamed over the record: a
        // directory in its way makes the write fail (EISDIR), as a full or read-only state
        // directory would.
        let blocker = pair.alpha.stateDir + "/\(ReplicatedPair.resource).crash-compare.new"
        try FileManager.default.createDirectory(atPath: blocker, withIntermediateDirectories: false)
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        let compare = restarted["checksum_resync"] as? JSONObject ?? [:]
        #expect((compare["total_bytes"] as? Int ?? 0) > 0, "the restart compares its extents: \(restarted)")
        let log = try String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)
        let event = log.split(separator: "\n").first { $0.contains("event checksum-resync-record-not-kept") }.map(String.init)
        #expect(event?.contains("checksum_bytes=") == true && event?.contains("crash-compare.new") == true,
                "the event names the bytes and the failure: \(event ?? pair.alpha.logTail())")
        #expect(FileManager.default.fileExists(atPath: pair.alpha.stateDir + "/\(ReplicatedPair.resource).crash-compare") == false,
                "no record is left behind")
        try CatchUpTests.waitCaughtUp(pair)
        let done = try pair.status(pair.alpha)["checksum_resync"] as? JSONObject ?? [:]
        #expect(done["running"] as? Bool == false && done["checked_bytes"] as? Int == compare["total_bytes"] as? Int, "\(done)")
        try RawNBDClient.writePatterns(socketPath: pair.nbdSocket(pair.alpha), blocks: 64..<65)
        try pair.waitInSync()
        try CatchUpTests.expectIdenticalVolumes(pair)
    }
}
}
