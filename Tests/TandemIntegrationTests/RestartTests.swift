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
