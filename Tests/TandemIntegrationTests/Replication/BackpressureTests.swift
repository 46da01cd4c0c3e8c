// Backpressure (docs/replication.md, *Backpressure*): a secondary whose disk is slower than
// the stream stops reading its socket while its receive queue is full, so the primary's
// stream slows down; the overrun is no protocol violation and the link stays up. beta's
// volume sits behind nbdkit's delay filter (served as a file by nbdfuse), and alpha re-sends
// a backlog larger than beta's whole queue at once.
import Foundation
import Testing

extension Replication {
@Suite struct BackpressureTests {
    /// Shown to fail without the fix: with `ReplicationSecondary.classify` answering
    /// `.violation("primary exceeded the secondary's queue")` for a frame that does not fit
    /// (as before), beta's log names the violation and the link is redialled.
    @Test func aSecondaryDiskSlowerThanTheStreamSlowsTheStreamInsteadOfDroppingTheLink() throws {
        let sizeBytes = 192 << 20
        let pair = try ReplicatedPair(sizeBytes: sizeBytes)
        let directory = try TempDirectory("slow-disk")
        let backing = directory.file("backing.img")
        try VolumeFiles.makeZero(backing, sizeBytes: sizeBytes)
        // One request at a time, every write waiting 50 ms: a disk of a few MiB/s (FUSE
        // hands over up to 1 MiB a request), far slower than a loopback TLS stream.
        let disk = try NBDKitFuseFile(directory: directory, name: "disk", nbdkitArguments: [
            "--filter=noparallel", "--filter=delay", "file", backing, "delay-write=50ms",
        ])
        defer { disk.detach(abruptly: false) }
        try pair.useAsVolume(disk.path, of: pair.beta)
        // beta's queue bound: max(1 MiB, 4 MiB) + 64 MiB = 68 MiB, less than the backlog.
        try pair.createAndEnable(mode: "async", initialSync: "none", secondaryBufferBytes: 1 << 20)
        try pair.waitInSync()
        pair.beta.crash()
        try ExternalTool.check("fio", [
            "--name=backlog", "--ioengine=nbd", "--uri=nbd+unix:///r0?socket=\(pair.nbdSocket(pair.alpha))",
            "--rw=write", "--bs=1m", "--size=140m", "--iodepth=8", "--buffer_pattern=0x5aa5",
        ])
        #expect(try pair.status(pair.alpha)["unconfirmed_bytes"] as? Int ?? 0 >= 140 << 20)
        try pair.beta.start()
        // The queue fills to near its bound (and stays there while more than 48 MiB of the
        // backlog is left: seconds at this disk speed): the disk is the bottleneck.
        try pair.waitFor(pair.beta, "beta's queue to fill") { $0["queued_bytes"] as? Int ?? 0 >= 48 << 20 }
        try pair.waitInSync(timeoutSeconds: 180)
        let log = try String(contentsOfFile: pair.beta.logPath, encoding: .utf8)
        #expect(!log.contains("protocol violation"), "beta dropped the link:\n\(pair.beta.logTail())")
        #expect(!log.contains("nothing received"), "beta judged its own pause as death:\n\(pair.beta.logTail())")
        #expect(!log.contains("peer link"), "beta's link ended:\n\(pair.beta.logTail())")
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(backing))
    }
}
}
