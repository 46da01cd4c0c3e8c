// Crashes inside metadata updates, on real daemons: the secondary's metadata on a disk that
// loses power (PowerLossVolume: its record writes must be flushed, not trusted to
// RWF_DSYNC, which FUSE completes unsynced), and kill -9 at each fdatasync of a superblock
// write (strace fault injection). After each, the resource loads a proven record and every
// acknowledged write is there.
import Foundation
import TandemCore
import Testing

extension Replication {
@Suite struct MetadataCrashTests {
    static let sizeBytes = 16 << 20

    private func superblock(_ bytes: [UInt8]) throws -> MetadataSuperblock {
        try MetadataLoad.decide(
            fileBytes: UInt64(bytes.count), slotA: Array(bytes[0..<4096]), slotB: Array(bytes[4096..<8192]),
            expected: MetadataExpectation(resourceName: ReplicatedPair.resource, volumeSizeBytes: UInt64(Self.sizeBytes))
        ).get().superblock
    }

    private func writeAndFlush(_ pair: ReplicatedPair, _ daemon: DaemonProcess, pattern: String, offsetMiB: Int) throws {
        let uri = "nbd+unix:///\(ReplicatedPair.resource)?socket=\(pair.nbdSocket(daemon))"
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "write -P \(pattern) \(offsetMiB)M 1M", "-c", "flush", uri])
    }

    @Test func theSecondarysRecordSurvivesAPowerCutOfItsMetadataDisk() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.sizeBytes)
        let disk = try PowerLossVolume(sizeBytes: 1 << 20)
        try pair.createAndEnable(initialSync: "none")
        try pair.waitInSync()
        // beta's metadata moves onto the power-loss disk (creation renames a new file into
        // place, so it is moved there afterwards), made durable there by a flush.
        try pair.beta.stop()
        let path = "\(pair.beta.stateDir)/\(ReplicatedPair.resource).md"
        let before = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: disk.path))
        try handle.write(contentsOf: Data(before))
        try handle.synchronize()
        try handle.close()
        try FileManager.default.removeItem(atPath: path)
        guard symlink(disk.path, path) == 0 else { throw HarnessError("symlink: errno \(errno)") }
        try pair.beta.start()
        try pair.waitInSync()

        // Each flush returns only once beta has recorded the epoch durable.
        for step in 0..<4 { try writeAndFlush(pair, pair.alpha, pattern: "0x\(30 + step)", offsetMiB: 2 * step) }
        pair.beta.crash()
        disk.cutPower()
        let survived = try superblock(try disk.backingBytes(offset: 0, count: 1 << 20))
        let copied = try superblock(before)
        #expect(survived.sequence > copied.sequence, "the record writes after the move were lost with the power")
        #expect(survived.session != 0 && survived.durableEpoch > 0, "\(survived)")

        try disk.powerOn()
        try pair.beta.start()
        let restarted = try pair.status(pair.beta)
        #expect(restarted["disk_state"] as? String != "Failed", "\(restarted)")
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
    }

    /// alpha (primary) runs under strace, which kills it at its `killAt`-th fdatasync:
    /// every fdatasync of tandemd is a superblock write (the data path flushes through the
    /// ring). Then alpha restarts normally and replicates again: the session it starts from
    /// the record must bring beta to alpha's exact volume.
    @Test(arguments: 1...8)
    func killAtEachMetadataSyncLeavesAProvenRecordAndEveryAcknowledgedWrite(_ killAt: Int) throws {
        try killAtMetadataSync(killAt, settings: [:])
    }

    /// The same with `metadata: internal` on alpha (docs/metadata.md, *Internal metadata*):
    /// its superblock writes go to the volume's end. Creating it syncs three times (slots
    /// wiped, ring and pages, slots): the kills start after them, at the same writes as above.
    @Test(arguments: 1...8)
    func killAtEachInternalMetadataSyncLeavesAProvenRecordAndEveryAcknowledgedWrite(_ killAt: Int) throws {
        try killAtMetadataSync(killAt + 3, settings: ["metadata": "internal"])
    }

    private func killAtMetadataSync(_ killAt: Int, settings: [String: Any]) throws {
        let pair = try ReplicatedPair(sizeBytes: Self.sizeBytes)
        try pair.alpha.stop()
        pair.alpha.launchPrefix = ["/usr/bin/strace", "-f", "-qq", "-o", "/dev/null",
                                   "-e", "inject=fdatasync:signal=KILL:when=\(killAt)"]
        try pair.alpha.start()
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddress), mode: "sync",
                        initialSync: "none", compression: "none", settings: settings)
        var acknowledged: [(pattern: UInt8, offsetMiB: Int)] = []
        let request = { (command: String) throws -> Void in
            try pair.expectOK(try pair.alpha.control().request(command, ["name": ReplicatedPair.resource]))
        }
        let steps: [() throws -> Void] = [
            { try writeAndFlush(pair, pair.alpha, pattern: "0x41", offsetMiB: 0); acknowledged.append((0x41, 0)) },
            { try request("enable") },
            { try writeAndFlush(pair, pair.alpha, pattern: "0x42", offsetMiB: 2); acknowledged.append((0x42, 2)) },
            { try request("disable") },
            { try writeAndFlush(pair, pair.alpha, pattern: "0x43", offsetMiB: 4); acknowledged.append((0x43, 4)) },
            { try request("enable") },
            { try writeAndFlush(pair, pair.alpha, pattern: "0x44", offsetMiB: 6); acknowledged.append((0x44, 6)) },
            { try request("disable") },
        ]
        var failedStep = false
        for step in steps {
            do { try step() } catch { failedStep = true; break }
            if !pair.alpha.isRunning { break }
        }
        // A step failed because the daemon was killed: strace exits once its tracee is gone.
        let deadline = Date().addingTimeInterval(10)
        while failedStep && pair.alpha.isRunning && Date() < deadline { usleep(10_000) }
        let killed = !pair.alpha.isRunning
        pair.alpha.crashWithTracee()
        #expect(killed, "the injected kill never happened (fewer fdatasyncs than \(killAt))")
        pair.alpha.launchPrefix = []
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        #expect(restarted["disk_state"] as? String == "UpToDate", "\(restarted)")
        #expect(restarted["disk_error"] == nil, "\(restarted)")
        for write in acknowledged {
            let bytes = try VolumeFiles.bytes(pair.volume(pair.alpha), offset: UInt64(write.offsetMiB << 20), count: 1 << 20)
            #expect(bytes.withUnsafeBytes { BlockBytes.all($0, are: write.pattern) },
                    "an acknowledged write at \(write.offsetMiB) MiB was lost")
        }
        // Replicating again from what the record says: beta ends with alpha's exact volume.
        if restarted["enabled"] as? Bool != true { try request("enable") }
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        // The data areas (alpha's internal metadata behind its data is its own).
        let alphaData = try VolumeFiles.bytes(pair.volume(pair.alpha), offset: 0, count: Self.sizeBytes)
        let betaData = try VolumeFiles.bytes(pair.volume(pair.beta), offset: 0, count: Self.sizeBytes)
        let firstDifference = BlockBytes.firstDifference(alphaData, betaData)
        #expect(alphaData.count == Self.sizeBytes && betaData.count == Self.sizeBytes)
        #expect(firstDifference == nil, "the data areas differ first at byte \(firstDifference ?? -1)")
    }
}
}

extension DaemonProcess {
    /// SIGKILL to tandemd itself when it runs under a `launchPrefix` tracer (killing strace
    /// alone would detach tandemd and leave it running), then to the tracer.
    func crashWithTracee() {
        let tracer = pid
        if isRunning, let text = try? String(contentsOfFile: "/proc/\(tracer)/task/\(tracer)/children", encoding: .utf8) {
            for child in text.split(separator: " ").compactMap({ Int32($0) }) { kill(child, SIGKILL) }
        }
        crash()
    }
}
