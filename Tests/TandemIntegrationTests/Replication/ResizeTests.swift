// Online resize on real daemons (docs/replication.md, *Resize*): a pair grows under a writer
// and the area past the old end reaches both nodes (checksums); the new size survives a
// restart; refusals (size not a multiple of 4096, a shrink without force, a secondary whose
// block device is too small) change nothing on either node; a grown block device whose new
// area holds other bytes on the secondary is caught up, not assumed zero; a forced shrink
// cuts both metadata files and copies nothing; a second resize while one waits for the peer
// is refused `busy`; and a kill -9 of
// either daemon at each metadata sync of the resize leaves a metadata file that loads, at
// the old size or the new one, from which the pair converges.
import Foundation
import TandemCore
import Testing

extension Replication {
@Suite(.serialized) struct ResizeTests {
    static let oldBytes = 16 << 20
    static let newBytes = 32 << 20
    /// Past the first bitmap page's 127 MiB: growing to it writes a new page.
    static let acrossAPageBytes = 128 << 20

    private func resize(_ daemon: DaemonProcess, to bytes: Int, force: Bool = false) throws -> JSONObject {
        var arguments: [String: Any] = ["name": ReplicatedPair.resource, "size_bytes": bytes]
        if force { arguments["force"] = true }
        return try daemon.control().request("resize", arguments)
    }

    private func uri(_ pair: ReplicatedPair) -> String {
        "nbd+unix:///\(ReplicatedPair.resource)?socket=\(pair.nbdSocket(pair.alpha))"
    }

    /// The size a fresh NBD client is offered (nbdinfo).
    private func exportedBytes(_ pair: ReplicatedPair) throws -> Int {
        let result = try ExternalTool.run("nbdinfo", ["--size", uri(pair)], timeoutSeconds: 30)
        guard result.succeeded, let bytes = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw HarnessError("nbdinfo --size failed: \(result)")
        }
        return bytes
    }

    @Test func growingAPairUnderAWriterCarriesTheNewAreaToBothNodesAndSurvivesARestart() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.oldBytes)
        try pair.createAndEnable()
        try pair.waitInSync()
        let alphaEvents = try EventWatch(pair.alpha)
        let betaEvents = try EventWatch(pair.beta)
        let writes = AcknowledgedWriter(socket: pair.nbdSocket(pair.alpha), blocks: 3000)
        writes.start()
        // Through tandemctl, as an operator would.
        let ctl = try ExternalTool.run(try Binaries.tandemctl(), ["--socket", pair.alpha.controlSocket, "--json", "resize",
                                                                  ReplicatedPair.resource, "--size", "32MiB"])
        #expect(ctl.succeeded, "\(ctl)")
        let grown = try pair.status(pair.alpha)
        writes.join()
        #expect(grown["size_bytes"] as? Int == Self.newBytes, "\(grown)")
        #expect(grown["session_start"] as? String == "catch-up", "only the tracked regions and the new area move: \(grown)")
        #expect(writes.acknowledged.count == 3000, "the writer's connection survived the resize")
        #expect(alphaEvents.saw("resized", timeoutSeconds: 10))
        #expect(betaEvents.saw("resized", timeoutSeconds: 30))
        try pair.waitFor(pair.beta, "beta at the new size") { $0["size_bytes"] as? Int == Self.newBytes }
        try pair.waitInSync()
        // A fresh client sees the new size and writes past the old end.
        #expect(try exportedBytes(pair) == Self.newBytes)
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "write -P 0xab 24M 1M", "-c", "write -P 0xcd 32764K 4K",
                                           "-c", "flush", uri(pair)])
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        for daemon in [pair.alpha, pair.beta] {
            #expect(try VolumeFiles.sizeBytes(pair.volume(daemon)) == UInt64(Self.newBytes))
            let tail = try VolumeFiles.bytes(pair.volume(daemon), offset: 24 << 20, count: 1 << 20)
            #expect(tail.allSatisfy { $0 == 0xab }, "the write past the old end is on \(daemon.nodeName)")
        }
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
        // The metadata holds the new size: both reopen at it and reconnect.
        try pair.beta.start()
        try pair.alpha.start()
        #expect(try pair.status(pair.alpha)["size_bytes"] as? Int == Self.newBytes)
        #expect(try pair.status(pair.beta)["size_bytes"] as? Int == Self.newBytes)
        try pair.waitInSync()
        #expect(try exportedBytes(pair) == Self.newBytes)
    }

    @Test func refusalsChangeNothingAndAGrownBlockDeviceIsCaughtUpNotAssumedZero() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.oldBytes)
        let device = try LoopDevice(sizeBytes: Self.oldBytes)
        defer { device.detach() }
        try pair.useAsVolume(device.path, of: pair.beta)
        try pair.createAndEnable()
        try pair.waitInSync()
        let refusals: [(size: Int, code: String, words: String)] = [
            (Self.newBytes + 512, "invalid-argument", "multiple of 4096"),
            (8 << 20, "unsupported", "needs force"),
            (Self.newBytes, "invalid-argument", "refused by the peer: the volume has \(Self.oldBytes) bytes"),
        ]
        for refusal in refusals {
            let reply = try resize(pair.alpha, to: refusal.size)
            #expect(reply["error"] as? String == refusal.code, "\(reply)")
            #expect((reply["message"] as? String ?? "").contains(refusal.words), "\(reply)")
            for daemon in [pair.alpha, pair.beta] {
                #expect(try pair.status(daemon)["size_bytes"] as? Int == Self.oldBytes)
            }
            #expect(try VolumeFiles.sizeBytes(pair.volume(pair.alpha)) == UInt64(Self.oldBytes), "alpha's file not extended")
        }
        let onSecondary = try resize(pair.beta, to: Self.newBytes)
        #expect(onSecondary["error"] as? String == "wrong-state", "\(onSecondary)")
        try pair.waitInSync()

        // The device grows; what it holds past the old end differs from alpha's zeros.
        try device.grow(to: Self.newBytes, fillingNewAreaWith: 0x5a)
        let events = try EventWatch(pair.alpha)
        defer { events.stop() }
        let grown = try pair.expectOK(try resize(pair.alpha, to: Self.newBytes))
        #expect(grown["session_start"] as? String == "catch-up", "\(grown)")
        // The new area is dirty when the catch-up starts (the reply's own out_of_sync_bytes may
        // come after part of it went: a CI run saw a quarter done); the checksum at the end
        // proves it was copied.
        let started = events.first("session-start", resource: ReplicatedPair.resource, timeoutSeconds: 30)
        #expect((started?["out_of_sync_bytes"] as? Int ?? 0) >= Self.newBytes - Self.oldBytes,
                "the new area is caught up as dirty: \(String(describing: started))")
        try pair.waitFor(pair.beta, "beta at the new size") { $0["size_bytes"] as? Int == Self.newBytes }
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(device.path),
                "the new area was copied, not assumed equal")
    }

    /// A forced shrink cuts both nodes' metadata files to the smaller geometry (three bitmap
    /// pages to one) and the export to the new size; the volumes keep their bytes (the
    /// daemon never shrinks them), and a restart opens the larger volumes at the metadata's
    /// size. Nothing is copied: the pair was in sync and nothing was added.
    @Test func aForcedShrinkCutsTheMetadataOnBothNodesAndKeepsThePairInSync() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.acrossAPageBytes * 2)
        try pair.createAndEnable(initialSync: "none")
        try pair.waitInSync()
        let metadata = { (daemon: DaemonProcess) in "\(daemon.stateDir)/\(ReplicatedPair.resource).md" }
        let before = try VolumeFiles.sizeBytes(metadata(pair.alpha))
        let shrunk = try pair.expectOK(try resize(pair.alpha, to: Self.oldBytes, force: true))
        #expect(shrunk["size_bytes"] as? Int == Self.oldBytes && shrunk["session_start"] as? String == "clean-restart",
                "\(shrunk)")
        try pair.waitFor(pair.beta, "beta at the new size") { $0["size_bytes"] as? Int == Self.oldBytes }
        try pair.waitInSync()
        #expect(try exportedBytes(pair) == Self.oldBytes)
        let geometry = MetadataGeometry(volumeSizeBytes: UInt64(Self.oldBytes), bitmapBlockBytes: 4096,
                                        alSlots: MetadataSuperblock.alSlotsDefault)
        for daemon in [pair.alpha, pair.beta] {
            #expect(try VolumeFiles.sizeBytes(metadata(daemon)) == geometry.fileBytes, "\(daemon.nodeName): from \(before)")
            #expect(try VolumeFiles.sizeBytes(pair.volume(daemon)) == UInt64(Self.acrossAPageBytes * 2), "the volume is kept")
        }
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "write -P 0x3c 8M 1M", "-c", "flush", uri(pair)])
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        let head = { (daemon: DaemonProcess) in try VolumeFiles.bytes(pair.volume(daemon), offset: 0, count: Self.oldBytes) }
        #expect(try head(pair.alpha) == head(pair.beta))
        try pair.beta.start()
        try pair.alpha.start()
        #expect(try pair.status(pair.alpha)["size_bytes"] as? Int == Self.oldBytes)
        try pair.waitInSync()
    }

    /// beta is stopped (SIGSTOP) so that the primary's Resize waits for its answer; of two
    /// resizes sent at once, one waits and the other is refused `busy` at once; beta resumes
    /// and the waiting one completes. (alpha's ping timeout is long: the pause is not a death.)
    @Test func aSecondResizeWhileOneWaitsForThePeerIsRefusedBusy() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.oldBytes, alphaArguments: ["--ping-timeout-ms", "120000"])
        try pair.createAndEnable()
        try pair.waitInSync()
        let control = pair.alpha.controlSocket
        let anyAnswered = DispatchSemaphore(value: 0)
        let stopped = kill(pair.beta.pid, SIGSTOP) == 0
        defer { kill(pair.beta.pid, SIGCONT) }
        #expect(stopped)
        let requests = (0..<2).map { _ in
            // Signalled once the reply is stored (a signal from inside the call came before
            // it, and the check below then found no reply: CI, 2026-12-08).
            AsyncReply(signalling: anyAnswered) {
                try ControlClient(path: control).request("resize", ["name": ReplicatedPair.resource,
                                                                    "size_bytes": Self.newBytes])
            }
        }
        #expect(anyAnswered.wait(timeout: .now() + 60) == .success)
        // While beta is stopped nothing can complete: the one answered was refused.
        let answered = requests.indices.compactMap { index in (try? requests[index].wait(timeoutSeconds: 0)).map { (index, $0) } }
        #expect(answered.count == 1 && answered.first?.1["error"] as? String == "busy", "\(answered)")
        #expect((answered.first?.1["message"] as? String ?? "").contains("a resize is under way"), "\(answered)")
        kill(pair.beta.pid, SIGCONT)
        let waiting = requests[answered.first?.0 == 0 ? 1 : 0]
        let done = try pair.expectOK(try waiting.wait(timeoutSeconds: 60))
        #expect(done["size_bytes"] as? Int == Self.newBytes, "\(done)")
        try pair.waitFor(pair.beta, "beta at the new size") { $0["size_bytes"] as? Int == Self.newBytes }
        try pair.waitInSync()
    }

    /// beta is stopped while alpha's Resize is on its way, and alpha's ping timeout (2 s)
    /// declares the link dead before the answer: the resize fails on alpha, but beta grows as
    /// soon as it resumes (it reads the Resize it had been sent). Then the nodes refuse each
    /// other (size-mismatch); both the failure and the refusal say how to finish, and running
    /// the same resize on alpha again brings the pair together at the new size.
    @Test func aResizeWhoseAnswerIsLostSaysHowToFinishAndFinishesWhenRunAgain() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.oldBytes, alphaArguments: ["--ping-interval-ms", "1000", "--ping-timeout-ms", "2000"])
        try pair.createAndEnable()
        try pair.waitInSync()
        #expect(kill(pair.beta.pid, SIGSTOP) == 0)
        var resumed = false
        defer { if !resumed { kill(pair.beta.pid, SIGCONT) } }
        let failed = try pair.alpha.control().request("resize", ["name": ReplicatedPair.resource, "size_bytes": Self.newBytes])
        #expect(failed["ok"] as? Bool == false, "\(failed)")
        #expect((failed["message"] as? String ?? "").contains("run the same resize on this primary again"), "\(failed)")
        #expect(try pair.status(pair.alpha)["size_bytes"] as? Int == Self.oldBytes)
        kill(pair.beta.pid, SIGCONT)
        resumed = true
        try pair.waitFor(pair.beta, "beta grown by the Resize it read once resumed") { $0["size_bytes"] as? Int == Self.newBytes }
        try pair.waitFor(pair.alpha, "alpha told how to finish") {
            ($0["last_error"] as? String ?? "").contains("run `resize --size \(Self.newBytes)` on the primary")
        }
        try pair.expectOK(try pair.alpha.control().request("resize", ["name": ReplicatedPair.resource, "size_bytes": Self.newBytes]))
        try pair.waitInSync()
        #expect(try pair.status(pair.alpha)["size_bytes"] as? Int == Self.newBytes)
    }

    /// strace attaches to a running daemon and kills it at its `killAt`-th fdatasync from
    /// then on: the resize's own metadata syncs (its new bitmap pages, its superblock) and the
    /// replication restart's records around them. The daemon restarts from what is on disk:
    /// the metadata must load at the old size or the new one; resizing again where it is old
    /// brings the pair together. The new size needs a second bitmap page (one holds 32 512
    /// blocks, 127 MiB), so the syncs are: alpha's stop record, its new page, its superblock,
    /// its restart's record; beta's new page, its superblock (its records go through the ring).
    @Test(arguments: [("alpha", 1), ("alpha", 2), ("alpha", 3), ("alpha", 4), ("beta", 1), ("beta", 2)])
    func killDuringAResizeLeavesALoadableMetadataFile(_ node: String, _ killAt: Int) throws {
        let pair = try ReplicatedPair(sizeBytes: Self.oldBytes)
        try pair.createAndEnable()
        try pair.waitInSync()
        let victim = node == "alpha" ? pair.alpha : pair.beta
        let tracer = try SyscallKiller(pid: victim.pid, syscall: "fdatasync", when: killAt)
        defer { tracer.stop() }
        _ = try? resize(pair.alpha, to: Self.acrossAPageBytes)  // the answer may never come: a node dies
        guard tracer.waitForKill(timeoutSeconds: 20) else {
            Issue.record("the injected kill never happened (fewer fdatasyncs than \(killAt) on \(node))")
            return
        }
        victim.crash()
        try victim.start()
        let reopened = try pair.status(victim)
        #expect(reopened["disk_state"] as? String != "Failed" && reopened["disk_error"] == nil, "\(reopened)")
        let size = reopened["size_bytes"] as? Int
        #expect(size == Self.oldBytes || size == Self.acrossAPageBytes, "\(reopened)")
        // Resizing again brings them together: alpha resizes both if they are connected at
        // the old size, or itself alone (sizes that differ never connect); then beta, if its
        // own restart did not already take the new size, alone (refused only while alpha's
        // resize of it is still restarting it, or while it is connected: alpha did it).
        _ = try pair.expectOK(try resize(pair.alpha, to: Self.acrossAPageBytes))
        let beta = try resize(pair.beta, to: Self.acrossAPageBytes)
        #expect(beta["ok"] as? Bool == true || ["busy", "wrong-state"].contains(beta["error"] as? String), "\(beta)")
        try pair.waitFor(pair.beta, "beta at the new size") { $0["size_bytes"] as? Int == Self.acrossAPageBytes }
        try pair.waitInSync()
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "write -P 0x77 100M 1M", "-c", "flush", uri(pair)])
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
    }
}
}
