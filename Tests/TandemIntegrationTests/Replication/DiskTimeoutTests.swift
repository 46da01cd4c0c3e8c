// disk_timeout_ms on real processes (DRBD's disk-timeout): a volume that hangs instead of
// failing fails its resource's disk once an I/O has been outstanding longer than the bound,
// as an EIO does (docs/replication.md "Disk failures"). The hanging disk is a
// PausableVolume (nbdkit's pause filter behind nbdfuse): unlike `--filter=delay`, which
// holds every request for a fixed time, it holds them until the test lets go, so the stall
// lasts exactly as long as the test needs and the late completions arrive when it says.
// - The secondary's disk hangs: beta fails with ETIMEDOUT naming the operation, alpha
//   reports the peer's disk Failed and serves alone (the sync write that waited for beta is
//   answered from alpha's disk), the late completions land without harm once the disk
//   answers, and re-enabling catches beta up from the bitmap, not with a full copy.
// - The primary's own disk hangs: alpha fails with ETIMEDOUT, later writes get EIO at once,
//   the write that hung is answered when the disk finally returns it.
// - The secondary's metadata file hangs: its record write fails the resource the same way,
//   and the `disable` that waits for the late record write finishes without harm. (It
//   found a crash: SecondaryReplicator's record callback called checkStopped() after
//   perform(), whose own checkStopped() had just finished the stop and released the
//   replicator, so the callback's unowned self was gone: "Attempted to read an unowned
//   reference but object ... was already destroyed".)
// - Without disk_timeout_ms (the default) a hanging disk is waited for.
// Shown to fail on the wrong behaviour: with the loop's tick not calling the watch's check
// (EventLoop.loopCompleted, `volumeWatch.check` commented out),
// `swift test --skip-build --filter DiskTimeoutTests/aSecondary` failed at its first write
// ("WRITE at 0: timedOut": nothing fails beta, so the sync write waits for the stall);
// restored, it passes.
import Foundation
import Glibc
import Testing

extension Replication {
@Suite struct DiskTimeoutTests {
    static let timeoutMs = 1000
    static let sizeBytes = 16 << 20

    @Test func aSecondaryDiskThatHangsPastDiskTimeoutFailsAndThePrimaryServesAloneThenCatchesUp() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.sizeBytes)
        let disk = try PausableVolume(sizeBytes: Self.sizeBytes)
        defer { disk.detach() }
        try pair.useAsVolume(disk.path, of: pair.beta)
        try pair.createAndEnable(mode: "sync", initialSync: "none")
        try pair.waitInSync()
        let alphaPID = pair.alpha.pid
        let betaPID = pair.beta.pid
        // Turned on live: `set` applies it to the running resource.
        let set = try pair.expectOK(try pair.beta.control().request(
            "set", ["name": ReplicatedPair.resource, "disk_timeout_ms": Self.timeoutMs]))
        #expect(set["disk_timeout_ms"] as? Int == Self.timeoutMs, "\(set)")
        let betaEvents = try EventRecorder(pair.beta)
        let alphaEvents = try EventRecorder(pair.alpha)
        defer { betaEvents.stop(); alphaEvents.stop() }

        try disk.pause()
        let started = Date()
        // Sync writes need beta: they are answered once beta has given up on its disk and
        // alpha has detached it, well before the stall ends (it lasts until `resume`).
        try RawNBDClient.writePatterns(socketPath: pair.nbdSocket(pair.alpha), blocks: 0..<8)
        let waitedSeconds = Date().timeIntervalSince(started)
        #expect(waitedSeconds >= Double(Self.timeoutMs) / 1000 && waitedSeconds < 10, "waited \(waitedSeconds) s")
        let failed = try betaEvents.waitFor("disk-failed") { $0["event"] as? String == "disk-failed" }
        let error = try #require(failed["disk_error"] as? JSONObject, "\(failed)")
        #expect(error["errno"] as? Int == Int(ETIMEDOUT), "\(error)")
        #expect(["write", "flush"].contains(error["operation"] as? String ?? ""), "\(error)")
        let message = error["message"] as? String ?? ""
        #expect(message.hasPrefix("timed out: no completion after ") && message.hasSuffix("(disk_timeout_ms 1000)"),
                "\(message)")
        let beta = try pair.status(pair.beta)
        #expect(beta["disk_state"] as? String == "Failed", "\(beta)")
        _ = try alphaEvents.waitFor("peer-disk-failed") { $0["event"] as? String == "peer-disk-failed" }
        let alpha = try pair.status(pair.alpha)
        #expect(alpha["peer_disk_state"] as? String == "Failed", "\(alpha)")
        #expect(alpha["redundant"] as? Bool == false && alpha["disk_state"] as? String == "UpToDate", "\(alpha)")
        // alpha goes on alone while beta's disk still hangs.
        try RawNBDClient.writePatterns(socketPath: pair.nbdSocket(pair.alpha), blocks: 8..<64)

        // The disk answers at last. beta's `disable` waits until every I/O it had in flight
        // has completed (their buffers are the replicator's until then), so once it returns
        // the late completions have landed.
        try disk.resume()
        try pair.expectOK(try pair.beta.control().request("disable", ["name": ReplicatedPair.resource]))
        let log = try String(contentsOfFile: pair.beta.logPath, encoding: .utf8)
        #expect(log.contains("a volume I/O reported overdue completed late"), "no late completion in beta's log")
        #expect(pair.alpha.pid == alphaPID && pair.alpha.isRunning)
        #expect(pair.beta.pid == betaPID && pair.beta.isRunning)

        // Re-enabled, beta catches up with what it lacks, not the whole volume.
        let reenabled = try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        #expect(reenabled["disk_state"] as? String != "Failed", "\(reenabled)")
        try pair.expectOK(try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource]))
        let eventsBefore = alphaEvents.events.count
        let enabled = try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        #expect(enabled["session_start"] as? String == "catch-up", "\(enabled)")
        // What the catch-up set out to move: the session-start event's, not the enable
        // reply's (on a loaded machine the 256 KiB catch-up was done before the reply was
        // composed, which then said 0 out of sync: CI, 2026-12-08).
        let start = try alphaEvents.waitFor("alpha's session-start after the enable", after: eventsBefore) {
            $0["event"] as? String == "session-start"
        }
        #expect(start["session_start"] as? String == "catch-up", "\(start)")
        let lacking = start["out_of_sync_bytes"] as? Int ?? 0
        #expect(lacking >= 64 * 4096 && lacking < Self.sizeBytes / 2, "a catch-up, not a copy of the volume: \(start)")
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(disk.backingPath))
    }

    @Test func aPrimaryDiskThatHangsPastDiskTimeoutFailsAndLaterWritesGoThroughThePeer() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.sizeBytes)
        let disk = try PausableVolume(sizeBytes: Self.sizeBytes)
        defer { disk.detach() }
        try pair.useAsVolume(disk.path, of: pair.alpha)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: "sync",
                        initialSync: "none", compression: "none", settings: ["disk_timeout_ms": Self.timeoutMs])
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.waitInSync()
        let alphaPID = pair.alpha.pid
        let alphaEvents = try EventRecorder(pair.alpha)
        defer { alphaEvents.stop() }

        try disk.pause()
        // A write that hangs on alpha's own disk: sent now, answered only when the disk is.
        let stuck = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: "r0")
        defer { stuck.disconnect() }
        try stuck.sendWithoutWaiting(RawNBDClient.requestHeader(
            type: NBDWire.cmdWrite, cookie: 41, offset: 0, length: 4096) + AcknowledgedWriter.pattern(1))
        let failed = try alphaEvents.waitFor("disk-failed") { $0["event"] as? String == "disk-failed" }
        let error = try #require(failed["disk_error"] as? JSONObject, "\(failed)")
        #expect(error["errno"] as? Int == Int(ETIMEDOUT) && error["operation"] as? String == "write", "\(error)")
        let alpha = try pair.status(pair.alpha)
        #expect(alpha["disk_state"] as? String == "Failed", "\(alpha)")
        // A later mutation is answered at once through the UpToDate peer (the diskless
        // primary, DisklessPrimaryTests), without waiting for the hung disk.
        let later = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: "r0")
        defer { later.disconnect() }
        try later.sendWithoutWaiting(RawNBDClient.requestHeader(
            type: NBDWire.cmdWrite, cookie: 42, offset: 8192, length: 4096) + AcknowledgedWriter.pattern(2))
        #expect(try later.readReplies(1) == [42: 0])

        // The disk answers: the hung write gets its reply, and the daemon carries on.
        try disk.resume()
        let replies = try stuck.readReplies(1)
        #expect(replies.keys.first == 41, "\(replies)")
        #expect(pair.alpha.pid == alphaPID && pair.alpha.isRunning)
        // A diskless primary refuses `disable` while writes it acknowledged through beta are
        // not yet durable there (ResourceRoles.checkDisable): beta's group commit flushes them.
        try pair.waitFor(pair.alpha, timeoutSeconds: 30, "beta's flush of the writes alpha acknowledged through it") {
            $0["lag_bytes"] as? Int == 0
        }
        try pair.expectOK(try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource]))
        let log = try String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)
        #expect(log.contains("a volume I/O reported overdue completed late"), "no late completion in alpha's log")
    }

    @Test func aSecondaryMetadataWriteThatHangsPastDiskTimeoutFailsTheResource() throws {
        // beta's metadata file is moved onto a disk that hangs on demand (a symlink in its
        // place: creation renames a new file into place, so it is moved afterwards), as in
        // DiskFailureTests' metadata case; its volume stays a plain file.
        let disk = try PausableVolume(sizeBytes: 1 << 20)
        defer { disk.detach() }
        let pair = try ReplicatedPair(sizeBytes: Self.sizeBytes)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none", settings: ["disk_timeout_ms": Self.timeoutMs])
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.beta.stop()
        let metadataPath = "\(pair.beta.stateDir)/\(ReplicatedPair.resource).md"
        let metadata = try Data(contentsOf: URL(fileURLWithPath: metadataPath))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: disk.path))
        try handle.write(contentsOf: metadata)
        try handle.synchronize()
        try handle.close()
        try FileManager.default.removeItem(atPath: metadataPath)
        try FileManager.default.createSymbolicLink(atPath: metadataPath, withDestinationPath: disk.path)
        try pair.beta.start()
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.waitInSync()
        let betaEvents = try EventRecorder(pair.beta)
        defer { betaEvents.stop() }

        try disk.pause()
        // A flush makes beta record a durable epoch: that record write hangs.
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: "r0")
        defer { client.disconnect() }
        try client.write(offset: 0, data: AcknowledgedWriter.pattern(1))
        try client.flush()
        let failed = try betaEvents.waitFor("disk-failed") { $0["event"] as? String == "disk-failed" }
        let error = try #require(failed["disk_error"] as? JSONObject, "\(failed)")
        #expect(error["errno"] as? Int == Int(ETIMEDOUT), "\(error)")
        #expect(["metadata write", "metadata flush"].contains(error["operation"] as? String ?? ""), "\(error)")
        #expect(try pair.status(pair.beta)["disk_state"] as? String == "Failed")
        try pair.waitFor(pair.alpha, "alpha detached beta") { $0["peer_disk_state"] as? String == "Failed" }
        try client.write(offset: 4096, data: AcknowledgedWriter.pattern(2))  // served alone
        try disk.resume()
        try pair.expectOK(try pair.beta.control().request("disable", ["name": ReplicatedPair.resource]))
        #expect(try pair.beta.control().request("ping")["ok"] as? Bool == true)
    }

    @Test func withoutDiskTimeoutAHangingDiskIsWaitedFor() throws {
        // The default (0) waits however long the disk takes: a stall past a second fails
        // nothing, and the write is answered once the disk is.
        let pair = try ReplicatedPair(sizeBytes: Self.sizeBytes)
        let disk = try PausableVolume(sizeBytes: Self.sizeBytes)
        defer { disk.detach() }
        try pair.useAsVolume(disk.path, of: pair.beta)
        try pair.createAndEnable(mode: "sync", initialSync: "none")
        try pair.waitInSync()
        try disk.pause()
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: "r0")
        defer { client.disconnect() }
        try client.sendWithoutWaiting(RawNBDClient.requestHeader(
            type: NBDWire.cmdWrite, cookie: 7, offset: 0, length: 4096) + AcknowledgedWriter.pattern(7))
        // Two of beta's one-second ticks pass with the write held (heartbeats are events).
        #expect(try pair.awaitEvents(pair.beta, named: "heartbeat", count: 3) == 3)
        #expect(try pair.status(pair.beta)["disk_state"] as? String == "UpToDate")
        try disk.resume()
        #expect(try client.readReplies(1) == [7: 0])
        try pair.waitInSync()
    }
}
}
