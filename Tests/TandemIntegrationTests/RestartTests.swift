// Resources persist across restarts (DESIGN.md "Resources persist across restarts") and an
// acknowledged FUA or flushed write survives kill -9 (guarantee 5, the local half).
import Foundation
import Testing

extension Integration {
    @Suite struct Restart {
        static let volumeBytes = 64 << 20

        /// A daemon serving r0, zero-filled, created through the control socket.
        func daemonWithResource() throws -> (DaemonProcess, NBDTarget) {
            let daemon = try DaemonProcess.started()
            let target = NBDTarget(directory: daemon.directory)
            try NBDExport.create(on: daemon, name: "r0", volume: target.volumePath, socket: target.socketPath, sizeBytes: Self.volumeBytes)
            return (daemon, target)
        }

        @Test func resourceAndContentSurviveACleanRestart() throws {
            let (daemon, target) = try daemonWithResource()
            expectQemuIOSucceeded(try target.qemuIO(["write -P 0x3c 0 1M", "write -P 0x5d 5000 12345", "flush"]))
            let digest = try VolumeFiles.sha256(target.volumePath)

            #expect(try daemon.stop() == 0, "SIGTERM did not end tandemd cleanly\n\(daemon.logTail())")
            #expect(try VolumeFiles.sha256(target.volumePath) == digest, "stopping changed the volume")
            try daemon.start()

            let status = try daemon.control().request("status", ["name": "r0"])
            #expect(status.ok == true, "r0 is gone after a restart: \(status)")
            #expect(status.uint64("size_bytes") == UInt64(Self.volumeBytes))
            let listing = try daemon.control().request("status")
            let names = (listing["resources"] as? [JSONObject])?.compactMap { $0.string("name") }
            #expect(names == ["r0"], "status without a name lists \(String(describing: names))")
            expectQemuIOSucceeded(try target.qemuIO(["read -P 0x3c 0 5000", "read -P 0x5d 5000 12345", "read -P 0x3c 17345 1031231"]))
            #expect(try VolumeFiles.sha256(target.volumePath) == digest)
        }

        /// A resource file of format 1 (written before `fencing` existed) keeps the behaviour
        /// it was created with: it loads as `suspend-io`, the daemon says so in its log, and
        /// the file is rewritten as format 2 naming it, so the next start is quiet.
        @Test func aResourceFileFromBeforeFencingLoadsAsSuspendIOAndSaysSo() throws {
            let (daemon, _) = try daemonWithResource()
            #expect(try daemon.control().request("status", ["name": "r0"]).string("fencing") == "dont-care")
            #expect(try daemon.stop() == 0)
            let file = "\(daemon.stateDir)/resources/r0.json"
            var document = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? JSONObject)
            var spec = try #require(document["spec"] as? JSONObject)
            #expect(document["version"] as? Int == 2 && spec["fencing"] as? String == "dont-care")
            spec["fencing"] = nil
            spec["resync_rate"] = nil
            document["spec"] = spec
            document["version"] = 1
            try JSONSerialization.data(withJSONObject: document).write(to: URL(fileURLWithPath: file))
            try daemon.start()
            let status = try daemon.control().request("status", ["name": "r0"])
            #expect(status.ok == true && status.string("fencing") == "suspend-io", "\(status)")
            let log = (try? String(contentsOfFile: daemon.logPath, encoding: .utf8)) ?? ""
            #expect(log.contains("fencing defaulted") && log.contains("suspend-io"), "\(daemon.logTail())")
            let rewritten = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? JSONObject)
            #expect(rewritten["version"] as? Int == 2 && (rewritten["spec"] as? JSONObject)?["fencing"] as? String == "suspend-io",
                    "\(rewritten)")
            #expect(try daemon.stop() == 0)
            try daemon.start()
            #expect(try daemon.control().request("status", ["name": "r0"]).string("fencing") == "suspend-io")
            let quiet = (try? String(contentsOfFile: daemon.logPath, encoding: .utf8)) ?? ""
            #expect(!quiet.contains("fencing defaulted"), "said again after the rewrite")
        }

        @Test func acknowledgedFUAAndFlushedWritesSurviveKill9() throws {
            let (daemon, target) = try daemonWithResource()
            // qemu-io's -f sets NBD_CMD_FLAG_FUA; the last write is covered by an explicit flush.
            expectQemuIOSucceeded(try target.qemuIO(["write -f -P 0x91 0 64k", "write -f -P 0x92 1000 3000"]))
            expectQemuIOSucceeded(try target.qemuIO(["write -P 0x93 1048576 1M", "flush"]))
            daemon.crash()
            try daemon.start()
            expectQemuIOSucceeded(try target.qemuIO([
                "read -P 0x91 0 1000", "read -P 0x92 1000 3000", "read -P 0x91 4000 61536", "read -P 0x93 1048576 1M",
            ]))
        }

        /// A power cut, not just kill -9: the volume forgets whatever was not flushed, so an
        /// acknowledged FUA write or FLUSH that tandemd did not really make durable is lost.
        @Test func acknowledgedFUAAndFlushedWritesSurviveAPowerCut() throws {
            let disk = try PowerLossVolume(sizeBytes: Self.volumeBytes)
            let daemon = try DaemonProcess.started()
            let target = NBDTarget(directory: daemon.directory)
            try NBDExport.create(on: daemon, name: "r0", volume: disk.path, socket: target.socketPath, sizeBytes: nil)
            expectQemuIOSucceeded(try target.qemuIO(["write -P 0x93 1048576 1M", "flush"]))
            // FUA writes with no flush after them, and a write never flushed: a raw client, since
            // qemu-io flushes when it closes.
            let raw = try RawNBDClient.transmitting(socketPath: target.socketPath, exportName: "r0")
            try raw.write(offset: 0, data: [UInt8](repeating: 0x91, count: 64 << 10), fua: true)
            try raw.write(offset: 8192, data: [UInt8](repeating: 0x92, count: 4096), fua: true)
            try raw.write(offset: 4 << 20, data: [UInt8](repeating: 0x94, count: 64 << 10))

            daemon.crash()
            disk.cutPower()
            // The harness really drops what was not flushed (else this test could not fail).
            #expect(try disk.backingBytes(offset: 4 << 20, count: 4096).allSatisfy { $0 == 0 },
                    "the unflushed write reached the backing file: the power cut lost nothing")
            try disk.powerOn()
            try daemon.start()
            expectQemuIOSucceeded(try target.qemuIO([
                "read -P 0x91 0 8192", "read -P 0x92 8192 4096", "read -P 0x91 12288 53248", "read -P 0x93 1048576 1M",
            ]))
            try daemon.stop()
        }

        @Test func deletedResourceStaysDeletedAfterRestart() throws {
            let (daemon, _) = try daemonWithResource()
            #expect(try daemon.control().request("delete", ["name": "r0"]).ok == true)
            try daemon.stop()
            try daemon.start()
            let status = try daemon.control().request("status", ["name": "r0"])
            #expect(status.errorCode == "not-found", "a deleted resource came back: \(status)")
        }
    }
}
