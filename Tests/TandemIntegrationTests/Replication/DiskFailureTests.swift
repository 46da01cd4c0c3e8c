// A failing disk fails its resource, not the daemon (issue 7 §3), with real faults: a volume
// on a small loop-mounted ext4 that runs out of space (ENOSPC), and a volume that is an
// nbdfuse file served by `nbdkit --filter=error` whose writes (or reads) fail with EIO once a
// trigger file exists — also under the secondary's metadata file and the primary's initial
// copy. Each fault is put on the secondary and on the primary of resource "r1" while
// "r0" on the same two daemons keeps replicating; the daemons keep their pid, status and an
// event say Failed with the operation and errno, the application keeps being served — by the
// UpToDate peer when the primary's own disk failed, the writes in flight at the failure
// included (DRBD's `on-io-error detach`), by the primary when the secondary's did — and sees
// EIO only where no copy holds its data (a standalone resource, the initial copy's reads),
// and a restart with the fault still there comes up. Needs root (mount, FUSE), as the suite does here and in CI.
import Foundation
import Testing

/// A volume file on a 64 MiB ext4 mounted from a loop device: larger than the free space, so
/// writes past it fail with ENOSPC.
private final class SmallFilesystem {
    let directory: TempDirectory
    let mountPoint: String
    private var mounted = false

    init() throws {
        directory = try TempDirectory("smallfs")
        let image = directory.file("fs.img")
        mountPoint = directory.file("mnt")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try ExternalTool.check("truncate", ["-s", "64M", image])
        try ExternalTool.check("mkfs.ext4", ["-q", "-F", image])
        try ExternalTool.check("mount", ["-o", "loop", image, mountPoint])
        mounted = true
    }

    var volume: String { "\(mountPoint)/volume" }

    func unmount() {
        guard mounted else { return }
        mounted = false
        if (try? ExternalTool.run("umount", [mountPoint]))?.succeeded != true {
            _ = try? ExternalTool.run("umount", ["-l", mountPoint])
        }
    }

    deinit { unmount() }
}

/// The `events` stream of one daemon, read until an awaited event arrives.
private final class EventWatcher {
    let client: ControlClient
    private var seen: [JSONObject] = []

    init(_ daemon: DaemonProcess) throws {
        client = try daemon.control()
        try client.sendLine(Array(#"{"id": 1, "cmd": "events"}"#.utf8))
        guard try client.readReply()["event"] as? String == "subscribed" else { throw HarnessError("no events stream") }
    }

    /// The first event `kind` of `resource` (heartbeats arrive every second, so the
    /// deadline is checked at least that often).
    @discardableResult
    func await(_ kind: String, resource: String, timeoutSeconds: Double = 60) throws -> JSONObject {
        if let found = seen.first(where: { $0["event"] as? String == kind && $0["resource"] as? String == resource }) {
            return found
        }
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            let event = try client.readReply()
            seen.append(event)
            if event["event"] as? String == kind && event["resource"] as? String == resource { return event }
        }
        throw HarnessError("no \(kind) event for \(resource) within \(timeoutSeconds) s; saw \(seen.map { $0["event"] ?? "?" })")
    }
}

extension Replication {
@Suite struct DiskFailureTests {
    static let faulty = "r1"
    static let faultySizeBytes = 128 << 20

    // MARK: the secondary's disk

    @Test func secondaryRunningOutOfSpaceFailsOnlyItsResourceAndThePrimaryKeepsServing() throws {
        let filesystem = try SmallFilesystem()
        defer { filesystem.unmount() }
        let pair = try startPairWithHealthyR0()
        try createFaulty(pair, alphaVolume: pair.alpha.directory.file("r1.vol"), betaVolume: filesystem.volume)
        try checkSecondaryFailure(pair, errno: ENOSPC, inject: {
            // More than the file system holds: the secondary's apply fails part way.
            try qemuIO(pair, Self.fillVolume("0x5a"), expectFailure: false)
        }, afterRestart: {})
    }

    @Test func secondaryDiskReturningEIOFailsOnlyItsResourceAndThePrimaryKeepsServing() throws {
        let disk = try FailingDisk(sizeBytes: Self.faultySizeBytes)
        defer { disk.detach() }
        let pair = try startPairWithHealthyR0()
        try createFaulty(pair, alphaVolume: pair.alpha.directory.file("r1.vol"), betaVolume: disk.volume)
        try qemuIO(pair, "write -P 0x11 0 4M", expectFailure: false)  // the disk works until...
        disk.failing = true
        try checkSecondaryFailure(pair, errno: EIO, inject: {
            try qemuIO(pair, "write -P 0x5a 0 8M", expectFailure: false)
        }, afterRestart: {
            // The disk is repaired: re-enabling beta is all it takes (DRBD's attach). alpha
            // kept dialling and catches beta up with what it lacks (what it never confirmed,
            // and what alpha wrote alone), not the whole volume, with no disable on alpha.
            let waiting = try waitFor(pair.alpha, Self.faulty, "r1 redialling its failed peer") {
                $0["session_start"] as? String == "catch-up" && $0["peer_disk_state"] as? String == "Failed"
                    && $0["connection_state"] as? String == "Connecting"
            }
            let lacking = waiting["out_of_sync_bytes"] as? Int ?? 0
            #expect(lacking > 0 && lacking < Self.faultySizeBytes / 2, "a catch-up, not a copy of the volume: \(waiting)")
            disk.failing = false
            try pair.expectOK(try pair.beta.control().request("disable", ["name": Self.faulty]))
            try pair.expectOK(try pair.beta.control().request("enable", ["name": Self.faulty]))
            let caughtUp = try waitFor(pair.alpha, Self.faulty, "r1 redundant again") {
                $0["peer_disk_state"] as? String == "UpToDate" && $0["redundant"] as? Bool == true
                    && $0["unconfirmed_bytes"] as? Int == 0
            }
            #expect(caughtUp["session_start"] as? String == "catch-up", "\(caughtUp)")
            #expect((caughtUp["resync_progress"] as? Double).map { $0 == 1 } ?? false, "\(caughtUp)")
            #expect(try status(pair.beta, Self.faulty)["disk_state"] as? String == "UpToDate")
        })
        #expect(try VolumeFiles.sha256(pair.alpha.directory.file("r1.vol")) == VolumeFiles.sha256(disk.volume))
    }

    @Test func secondaryMetadataWriteFailingFailsOnlyItsResource() throws {
        // beta's metadata file for r1 is moved onto a disk that fails on demand (a symlink
        // in its place: creation renames a new file into place, so it is moved afterwards).
        let disk = try FailingDisk(sizeBytes: 1 << 20)
        defer { disk.detach() }
        let pair = try startPairWithHealthyR0()
        try createFaulty(pair, alphaVolume: pair.alpha.directory.file("r1.vol"),
                         betaVolume: pair.beta.directory.file("r1.vol"))
        try pair.beta.stop()
        let metadataPath = "\(pair.beta.stateDir)/\(Self.faulty).md"
        let metadata = try Data(contentsOf: URL(fileURLWithPath: metadataPath))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: disk.volume))
        try handle.write(contentsOf: metadata)
        try handle.synchronize()
        try handle.close()
        try FileManager.default.removeItem(atPath: metadataPath)
        try FileManager.default.createSymbolicLink(atPath: metadataPath, withDestinationPath: disk.volume)
        try pair.beta.start()
        try waitFor(pair.alpha, Self.faulty, "r1 connected") { $0["connection_state"] as? String == "Connected" }
        try qemuIO(pair, ["write -P 0x11 0 1M", "flush"], expectFailure: false)
        disk.failing = true
        try checkSecondaryFailure(pair, errno: EIO, operations: ["metadata write"], inject: {
            // The flush makes beta record a durable epoch: that record's write fails.
            try qemuIO(pair, ["write -P 0x5a 0 1M", "flush"], expectFailure: false)
        }, afterRestart: {
            // An unreadable record is a failure too, not a fresh start.
            disk.readsFailing = true
            try pair.expectOK(try pair.beta.control().request("disable", ["name": Self.faulty]))
            let refused = try pair.beta.control().request("enable", ["name": Self.faulty])
            #expect(refused["ok"] as? Bool == false, "enable with an unreadable record: \(refused)")
            let beta = try status(pair.beta, Self.faulty)
            #expect(beta["disk_state"] as? String == "Failed")
            #expect((beta["disk_error"] as? JSONObject)?["operation"] as? String == "metadata open")
            #expect((beta["disk_error"] as? JSONObject)?["errno"] as? Int == Int(EIO))
        })
    }

    /// The fault in `inject` hits beta's r1: beta fails r1 and refuses alpha with disk-failed;
    /// alpha detaches, acknowledges from its own disk and reports it is not redundant; r0
    /// replicates throughout; both daemons survive, and beta restarts with the fault in place.
    private func checkSecondaryFailure(_ pair: ReplicatedPair, errno: Int32, operations: [String] = ["write", "flush"],
                                       inject: () throws -> Void,
                                       afterRestart: () throws -> Void) throws {
        let alphaPID = pair.alpha.pid
        let betaPID = pair.beta.pid
        let alphaEvents = try EventWatcher(pair.alpha)
        let betaEvents = try EventWatcher(pair.beta)
        try writeR0(pair, pattern: "0x21", offsetMiB: 0)
        try inject()
        let failed = try betaEvents.await("disk-failed", resource: Self.faulty)
        #expect((failed["disk_error"] as? JSONObject)?["errno"] as? Int == Int(errno))
        try alphaEvents.await("peer-disk-failed", resource: Self.faulty)
        let beta = try status(pair.beta, Self.faulty)
        #expect(beta["disk_state"] as? String == "Failed")
        let error = beta["disk_error"] as? JSONObject
        #expect(operations.contains(error?["operation"] as? String ?? ""), "\(beta)")
        #expect(error?["errno"] as? Int == Int(errno))
        let alpha = try status(pair.alpha, Self.faulty)
        #expect(alpha["peer_disk_state"] as? String == "Failed")
        #expect(alpha["redundant"] as? Bool == false)
        #expect(alpha["disk_state"] as? String != "Failed")
        // The application is still served, from alpha's disk alone.
        try qemuIO(pair, "write -P 0x6b 0 1M", expectFailure: false)
        try qemuIO(pair, "read -P 0x6b 0 1M", expectFailure: false)
        try writeR0(pair, pattern: "0x22", offsetMiB: 8)
        try pair.waitInSync()
        #expect(pair.alpha.pid == alphaPID && pair.alpha.isRunning)
        #expect(pair.beta.pid == betaPID && pair.beta.isRunning)
        // A restart with the disk still failing comes up and r0 carries on.
        try pair.beta.stop()
        try pair.beta.start()
        try writeR0(pair, pattern: "0x23", offsetMiB: 16)
        try pair.waitInSync()
        #expect(try status(pair.beta, Self.faulty)["name"] as? String == Self.faulty)
        #expect(pair.beta.isRunning && pair.alpha.pid == alphaPID)
        try afterRestart()
        try expectR0Identical(pair)
    }

    // MARK: the primary's own disk

    @Test func primaryRunningOutOfSpaceKeepsServingThroughItsPeerAndFailsOnlyItsResource() throws {
        let filesystem = try SmallFilesystem()
        defer { filesystem.unmount() }
        let pair = try startPairWithHealthyR0()
        try createFaulty(pair, alphaVolume: filesystem.volume, betaVolume: pair.beta.directory.file("r1.vol"))
        try checkPrimaryFailure(pair, errno: ENOSPC, inject: {
            // The write that meets ENOSPC and every one after it: beta applied them, so they
            // succeed, and read back from beta.
            try qemuIO(pair, Self.fillVolume("0x5a") + ["read -P 0x5a 0 100M"], expectFailure: false)
        }, restartFault: {}, afterRestart: {
            // Still out of space: the record says r1's disk lacks writes, so it is resynced from
            // beta, and that (or a write) fails r1 again, and only r1; writes then go through beta.
            let events = try EventWatcher(pair.alpha)
            let uri = "nbd+unix:///\(Self.faulty)?socket=\(pair.alpha.directory.file("r1.sock"))"
            _ = try ExternalTool.run("qemu-io", ["-f", "raw"] + Self.fillVolume("0x5b").flatMap { ["-c", $0] } + [uri])
            // The restart's resync from beta may have failed r1 before this watcher listened
            // (a loaded machine: r0's catch-up above takes longer): then its status says so.
            // Otherwise the failure is still to come, or came after the watcher began.
            if try status(pair.alpha, Self.faulty)["disk_state"] as? String != "Failed" {
                try events.await("disk-failed", resource: Self.faulty)
            }
            let failedAgain = try status(pair.alpha, Self.faulty)
            #expect(failedAgain["disk_state"] as? String == "Failed")
            #expect((failedAgain["disk_error"] as? JSONObject)?["errno"] as? Int == Int(ENOSPC), "\(failedAgain)")
            try qemuIO(pair, ["write -P 0x5c 0 64k", "read -P 0x5c 0 64k"], expectFailure: false)
        })
    }

    @Test func primaryDiskReturningEIOKeepsServingThroughItsPeerAndFailsOnlyItsResource() throws {
        let disk = try FailingDisk(sizeBytes: Self.faultySizeBytes)
        defer { disk.detach() }
        let pair = try startPairWithHealthyR0()
        try createFaulty(pair, alphaVolume: disk.volume, betaVolume: pair.beta.directory.file("r1.vol"))
        try qemuIO(pair, "write -P 0x11 0 4M", expectFailure: false)
        try checkPrimaryFailure(pair, errno: EIO, inject: {
            disk.failing = true
            // The write the disk fails: beta applied it, so it succeeds and reads back from beta.
            try qemuIO(pair, ["write -P 0x5a 0 8M", "read -P 0x5a 0 8M"], expectFailure: false)
        }, restartFault: {
            // The volume is gone altogether at the next start: r1 is listed Failed (open).
            disk.detach()
        }, afterRestart: {
            let restarted = try status(pair.alpha, Self.faulty)
            #expect(restarted["disk_state"] as? String == "Failed")
            #expect((restarted["disk_error"] as? JSONObject)?["operation"] as? String == "open")
            #expect((restarted["disk_error"] as? JSONObject)?["errno"] as? Int == Int(ENOENT))
            #expect(!FileManager.default.fileExists(atPath: disk.volume), "a missing volume must not be re-created")
            // It can be deleted like any other resource.
            try pair.expectOK(try pair.alpha.control().request("delete", ["name": Self.faulty]))
        })
    }

    @Test func primaryReadFailingDuringTheInitialCopyFailsOnlyItsResource() throws {
        let disk = try FailingDisk(sizeBytes: Self.faultySizeBytes)
        defer { disk.detach() }
        let pair = try startPairWithHealthyR0()
        let alphaPID = pair.alpha.pid
        disk.readsFailing = true
        let events = try EventWatcher(pair.alpha)
        try createFaulty(pair, alphaVolume: disk.volume, betaVolume: pair.beta.directory.file("r1.vol"),
                         initialSync: "full")
        let failed = try events.await("disk-failed", resource: Self.faulty)
        #expect((failed["disk_error"] as? JSONObject)?["operation"] as? String == "read")
        #expect((failed["disk_error"] as? JSONObject)?["errno"] as? Int == Int(EIO))
        let alpha = try status(pair.alpha, Self.faulty)
        #expect(alpha["disk_state"] as? String == "Failed")
        #expect(alpha["peer_disk_state"] as? String != "UpToDate", "the copy never finished: \(alpha)")
        #expect(alpha["redundant"] as? Bool == false)
        // A client's read gets the disk's EIO; r0 is untouched.
        try qemuIO(pair, "read 0 64k", expectFailure: true)
        try writeR0(pair, pattern: "0x41", offsetMiB: 0)
        try pair.waitInSync()
        #expect(pair.alpha.pid == alphaPID && pair.alpha.isRunning)
        try expectR0Identical(pair)
    }

    /// The fault in `inject` hits alpha's r1: r1 is Failed on alpha and sends the writes it
    /// failed, and later ones, through its peer; r0 replicates throughout; alpha survives, and
    /// restarts (after `restartFault`) with the fault in place.
    private func checkPrimaryFailure(_ pair: ReplicatedPair, errno: Int32, inject: () throws -> Void,
                                     restartFault: () throws -> Void, afterRestart: () throws -> Void) throws {
        let alphaPID = pair.alpha.pid
        let betaPID = pair.beta.pid
        let alphaEvents = try EventWatcher(pair.alpha)
        try writeR0(pair, pattern: "0x31", offsetMiB: 0)
        try inject()
        let failed = try alphaEvents.await("disk-failed", resource: Self.faulty)
        #expect((failed["disk_error"] as? JSONObject)?["errno"] as? Int == Int(errno))
        let alpha = try status(pair.alpha, Self.faulty)
        #expect(alpha["disk_state"] as? String == "Failed")
        #expect((alpha["disk_error"] as? JSONObject)?["operation"] as? String == "write")
        #expect((alpha["disk_error"] as? JSONObject)?["errno"] as? Int == Int(errno))
        #expect(alpha["redundant"] as? Bool == false)
        // Later writes and flushes go through the UpToDate peer (the diskless primary,
        // DisklessPrimaryTests), and the record says this disk lacks them.
        try qemuIO(pair, ["write -P 0x77 64M 4k", "flush", "read -P 0x77 64M 4k"], expectFailure: false)
        let diskless = try status(pair.alpha, Self.faulty)
        #expect(diskless["serving_from"] as? String == "peer", "\(diskless)")
        try writeR0(pair, pattern: "0x32", offsetMiB: 8)
        try pair.waitInSync()
        #expect(pair.alpha.pid == alphaPID && pair.alpha.isRunning)
        #expect(pair.beta.pid == betaPID && pair.beta.isRunning)
        try pair.alpha.stop()
        try restartFault()
        try pair.alpha.start()
        try writeR0(pair, pattern: "0x33", offsetMiB: 16)
        try pair.waitInSync()
        #expect(pair.alpha.isRunning && pair.beta.pid == betaPID)
        try afterRestart()
        try expectR0Identical(pair)
    }

    // MARK: a resource without a peer

    @Test func standaloneResourceOnAFailingDiskFailsAloneAndTheNBDServerAnswersEIO() throws {
        let disk = try FailingDisk(sizeBytes: 16 << 20)
        defer { disk.detach() }
        let daemon = try DaemonProcess.started()
        let healthy = daemon.directory.file("r0.vol")
        try NBDExport.create(on: daemon, name: "r0", volume: healthy, socket: daemon.directory.file("r0.sock"),
                             sizeBytes: 16 << 20)
        try NBDExport.create(on: daemon, name: Self.faulty, volume: disk.volume,
                             socket: daemon.directory.file("r1.sock"), sizeBytes: nil)
        let pid = daemon.pid
        let events = try EventWatcher(daemon)
        let faulty = "nbd+unix:///\(Self.faulty)?socket=\(daemon.directory.file("r1.sock"))"
        let other = "nbd+unix:///r0?socket=\(daemon.directory.file("r0.sock"))"
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "write -P 0x11 0 1M", faulty])
        disk.failing = true
        let failedWrite = try ExternalTool.run("qemu-io", ["-f", "raw", "-c", "write -P 0x22 1M 1M", faulty])
        #expect(!failedWrite.succeeded && failedWrite.stdout.contains("Input/output error"), "\(failedWrite)")
        let event = try events.await("disk-failed", resource: Self.faulty)
        #expect((event["disk_error"] as? JSONObject)?["operation"] as? String == "write")
        #expect((event["disk_error"] as? JSONObject)?["errno"] as? Int == Int(EIO))
        #expect(try status(daemon, Self.faulty)["disk_state"] as? String == "Failed")
        // The failed disk is written no more, even where it would work now; reads go on.
        disk.failing = false
        let refused = try ExternalTool.run("qemu-io", ["-f", "raw", "-c", "write -P 0x33 2M 4k", faulty])
        #expect(!refused.succeeded && refused.stdout.contains("Input/output error"), "\(refused)")
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "read -P 0x11 0 1M", faulty])
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "write -P 0x44 0 1M", "-c", "read -P 0x44 0 1M", other])
        #expect(try status(daemon, "r0")["disk_state"] as? String == "UpToDate")
        #expect(daemon.pid == pid && daemon.isRunning)
        // A restart uses the disk again (here repaired): the failure is not persisted.
        try daemon.stop()
        try daemon.start()
        #expect(try status(daemon, Self.faulty)["disk_state"] as? String == "UpToDate")
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "write -P 0x55 2M 4k", "-c", "read -P 0x55 2M 4k", faulty])
        try daemon.stop()
    }

    // MARK: helpers

    /// Two daemons with r0 (32 MiB, sync) replicating.
    private func startPairWithHealthyR0() throws -> ReplicatedPair {
        let pair = try ReplicatedPair(sizeBytes: 32 << 20)
        try pair.createAndEnable()
        try pair.waitInSync()
        return pair
    }

    /// r1 between the two daemons on the given volumes (sync, by default no initial copy),
    /// connected.
    private func createFaulty(_ pair: ReplicatedPair, alphaVolume: String, betaVolume: String,
                              initialSync: String = "none") throws {
        for (daemon, role, peer, volume) in [
            (pair.beta, "secondary", ("alpha", pair.alphaAddress), betaVolume),
            (pair.alpha, "primary", ("beta", pair.betaAddress), alphaVolume),
        ] {
            try pair.expectOK(try daemon.control().request("create", [
                "name": Self.faulty, "volume": volume, "size_bytes": Self.faultySizeBytes, "role": role,
                "peer": ["name": peer.0, "address": peer.1], "mode": "sync", "initial_sync": initialSync,
                "nbd": ["socket": daemon.directory.file("r1.sock")],
            ]))
        }
        try pair.expectOK(try pair.beta.control().request("enable", ["name": Self.faulty]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": Self.faulty]))
        try waitFor(pair.alpha, Self.faulty, "r1 connected") { $0["connection_state"] as? String == "Connected" }
    }

    private func status(_ daemon: DaemonProcess, _ name: String) throws -> JSONObject {
        let reply = try daemon.control().request("status", ["name": name])
        guard reply["ok"] as? Bool == true else { throw HarnessError("status \(name) refused: \(reply)") }
        return reply
    }

    @discardableResult
    private func waitFor(_ daemon: DaemonProcess, _ name: String, _ what: String,
                         _ condition: (JSONObject) -> Bool) throws -> JSONObject {
        let deadline = Date().addingTimeInterval(60)
        var last: JSONObject = [:]
        while Date() < deadline {
            last = try status(daemon, name)
            if condition(last) { return last }
            usleep(50_000)
        }
        throw HarnessError("timed out waiting for \(what); last status \(last)\n" + daemon.logTail())
    }

    /// 100 MiB, more than the small file system holds, in requests of 20 MiB.
    static func fillVolume(_ pattern: String) -> [String] {
        (0..<5).map { "write -P \(pattern) \($0 * 20)M 20M" }
    }

    private func qemuIO(_ pair: ReplicatedPair, _ command: String, expectFailure: Bool) throws {
        try qemuIO(pair, [command], expectFailure: expectFailure)
    }

    /// qemu-io commands on alpha's r1 export; `expectFailure`: the client must see EIO.
    private func qemuIO(_ pair: ReplicatedPair, _ commands: [String], expectFailure: Bool) throws {
        let uri = "nbd+unix:///\(Self.faulty)?socket=\(pair.alpha.directory.file("r1.sock"))"
        let result = try ExternalTool.run("qemu-io", ["-f", "raw"] + commands.flatMap { ["-c", $0] } + [uri])
        let command = commands.joined(separator: "; ")
        let output = result.stdout + result.stderr
        if expectFailure {
            // qemu-io names the error of a failed read or write; a failed flush only exits 1.
            let sawEIO = command.hasPrefix("flush") || output.contains("Input/output error")
            #expect(!result.succeeded && sawEIO, "qemu-io \(command) should fail with EIO: \(result)")
        } else {
            guard result.succeeded, !output.contains("failed") else {
                throw HarnessError("qemu-io \(command) failed: \(result)\n" + pair.alpha.logTail())
            }
        }
    }

    /// Writes 8 MiB to r0 through alpha's export.
    private func writeR0(_ pair: ReplicatedPair, pattern: String, offsetMiB: Int) throws {
        let uri = "nbd+unix:///r0?socket=\(pair.nbdSocket(pair.alpha))"
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "write -P \(pattern) \(offsetMiB)M 8M", "-c", "flush", uri])
    }

    private func expectR0Identical(_ pair: ReplicatedPair) throws {
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
    }
}
}
