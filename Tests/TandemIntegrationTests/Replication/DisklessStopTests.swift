// A diskless primary's stop on real processes (PrimaryNode+PeerDrain, docs/replication.md
// *Disk failures*): alpha's disk failed (FailingDisk) and it writes through beta, whose volume
// flushes the test holds (beta runs with the test hook TANDEM_TEST_HOLD_FLUSH_FILE: while that
// file exists its flushes wait, its writes go on). A write alpha acknowledged through beta is
// then in beta's cache only. SIGTERM, or `disable`, of alpha does not return before beta
// flushed it: alpha asks beta for the flush and keeps the link until beta confirms it durable
// (alpha's events `peer-drain-started`, `peer-drained`; beta's log says the held flush went to
// its disk). Without beta, `disable` is refused and changes nothing.
import Foundation
import Glibc
import Testing

/// The hook's file: beta's flushes wait while it exists.
final class FlushHold {
    let directory: TempDirectory
    let path: String

    init() throws {
        directory = try TempDirectory("flushhold")
        path = directory.file("hold")
    }

    var held: Bool {
        get { FileManager.default.fileExists(atPath: path) }
        set {
            if newValue { FileManager.default.createFile(atPath: path, contents: nil) }
            else { try? FileManager.default.removeItem(atPath: path) }
        }
    }
}

extension Replication {
@Suite struct DisklessStopTests {
    /// A diskless alpha that acknowledged 64 KiB through beta, whose flushes are held: the write
    /// is applied on beta, not durable there (alpha's `lag_bytes`).
    static func writeThroughBetaWithItsFlushHeld(_ alphaDisk: FailingDisk, _ hold: FlushHold) throws -> ReplicatedPair {
        let pair = try ReplicatedPair(sizeBytes: DisklessPrimaryTests.volumeBytes)
        try pair.beta.stop()
        pair.beta.extraEnvironment["TANDEM_TEST_HOLD_FLUSH_FILE"] = hold.path
        try pair.beta.start()
        try DisklessPrimaryTests.createAndEnable(pair, alphaVolume: alphaDisk.volume)
        try DisklessPrimaryTests.expectQemuIO(pair, ["write -P 0x21 0 64k", "flush"])
        try pair.waitInSync()
        alphaDisk.fail()
        _ = try DisklessPrimaryTests.qemuIO(pair, ["write -P 0x22 4M 4k"])  // meets the failure: the record follows
        try DisklessPrimaryTests.expectQemuIO(pair, ["write -P 0x23 8M 4k"])
        try pair.waitFor(pair.alpha, timeoutSeconds: 30, "alpha diskless, everything durable on beta") {
            DisklessPrimaryTests.diskless($0)["writes"] as? String == "through-peer" && $0["lag_bytes"] as? Int == 0
        }
        hold.held = true
        // A raw NBD write and nothing after it: qemu-io sends a FLUSH when it closes the image
        // (even with `-t unsafe`), which would wait for beta's held flush.
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: ReplicatedPair.resource)
        defer { client.disconnect() }
        try client.sendWithoutWaiting(RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: 7, offset: 1 << 20, length: 65536)
            + [UInt8](repeating: 0x5a, count: 65536))
        #expect(try client.readReplies(1) == [7: 0], "the write through beta is acknowledged")
        let held = try pair.status(pair.alpha)
        #expect(held["lag_bytes"] as? Int ?? 0 >= 65536, "acknowledged through beta, not durable there: \(held)")
        return pair
    }

    /// Beta's log lines of flushes the hook held and then let go.
    static func betaReleasedFlushes(_ pair: ReplicatedPair) -> Int {
        let log = (try? String(contentsOfFile: pair.beta.logPath, encoding: .utf8)) ?? ""
        return log.components(separatedBy: "a held volume flush is submitted").count - 1
    }

    static func alphaEvents(_ pair: ReplicatedPair) -> [String] {
        let log = (try? String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").compactMap { line in
            ["peer-drain-started", "peer-drained", "peer-drain-failed"].first { line.contains("event \($0)") }
        }
    }

    @Test func aDisklessPrimarysShutdownWaitsUntilItsPeerFlushedWhatItAcknowledged() throws {
        let alphaDisk = try FailingDisk(sizeBytes: DisklessPrimaryTests.volumeBytes)
        let hold = try FlushHold()
        defer { hold.held = false; alphaDisk.detach() }
        let pair = try Self.writeThroughBetaWithItsFlushHeld(alphaDisk, hold)
        let releasedBefore = Self.betaReleasedFlushes(pair)
        kill(pair.alpha.pid, SIGTERM)
        // Nothing to await here: alpha must still be there, its write in beta's cache only.
        #expect(!pair.alpha.waitExited(timeoutSeconds: 2), "alpha exited while beta held its acknowledged write unflushed")
        #expect(Self.betaReleasedFlushes(pair) == releasedBefore)
        hold.held = false
        #expect(pair.alpha.waitExited(timeoutSeconds: 30), "alpha did not exit once beta flushed")
        #expect(Self.betaReleasedFlushes(pair) > releasedBefore, "beta flushed")
        // peer-drained is said only when beta's DurableThroughEpoch came over the link, before
        // alpha hangs up: the flush happened before the link closed.
        #expect(Self.alphaEvents(pair) == ["peer-drain-started", "peer-drained"], "\(Self.alphaEvents(pair))")
        let log = (try? String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("tandemd stopped"), "a clean shutdown")
    }

    @Test func aDisklessPrimarysDisableWaitsUntilItsPeerFlushedWhatItAcknowledged() throws {
        let alphaDisk = try FailingDisk(sizeBytes: DisklessPrimaryTests.volumeBytes)
        let hold = try FlushHold()
        defer { hold.held = false; alphaDisk.detach() }
        let pair = try Self.writeThroughBetaWithItsFlushHeld(alphaDisk, hold)
        let releasedBefore = Self.betaReleasedFlushes(pair)
        let control = pair.alpha.controlSocket
        let reply = AsyncReply { try ControlClient(path: control).request("disable", ["name": ReplicatedPair.resource]) }
        #expect((try? reply.wait(timeoutSeconds: 2)) == nil, "disable answered while beta held the write unflushed")
        hold.held = false
        try pair.expectOK(try reply.wait(timeoutSeconds: 30))
        #expect(Self.betaReleasedFlushes(pair) > releasedBefore, "beta flushed")
        #expect(Self.alphaEvents(pair) == ["peer-drain-started", "peer-drained"], "\(Self.alphaEvents(pair))")
        let status = try pair.status(pair.alpha)
        #expect(status["enabled"] as? Bool == false && status["connection_state"] as? String == "StandAlone", "\(status)")
    }

    @Test func aDisklessPrimarysDisableWithoutItsPeerIsRefusedAndChangesNothing() throws {
        let alphaDisk = try FailingDisk(sizeBytes: DisklessPrimaryTests.volumeBytes)
        let hold = try FlushHold()
        defer { hold.held = false; alphaDisk.detach() }
        let pair = try Self.writeThroughBetaWithItsFlushHeld(alphaDisk, hold)
        pair.beta.crash()
        hold.held = false
        _ = try pair.waitFor(pair.alpha, timeoutSeconds: 30, "alpha without beta") { $0["connection_state"] as? String != "Connected" }
        let refused = try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource])
        let message = refused["message"] as? String ?? ""
        #expect(refused["ok"] as? Bool == false && refused["error"] as? String == "wrong-state", "\(refused)")
        #expect(message.contains("the peer is not connected") && message.contains("bytes of acknowledged writes"), "\(refused)")
        #expect(try pair.status(pair.alpha)["enabled"] as? Bool == true, "a refused disable changes nothing")
        // Beta back: alpha re-sends the write, beta makes it durable, and the disable goes ahead.
        try pair.beta.start()
        _ = try pair.waitFor(pair.alpha, timeoutSeconds: 60, "alpha's write durable on beta again") {
            $0["connection_state"] as? String == "Connected" && $0["lag_bytes"] as? Int == 0
        }
        try pair.expectOK(try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource]))
    }
}
}
