// A resource's metadata file (docs/metadata.md) on real daemons: a corrupt slot is replaced
// by the other with an event; a file that cannot be proven (both slots bad, truncated,
// deleted, another resource's, a larger size, a newer format) fails the resource with the
// file and the reason in status, never loads as fresh; create-md --force re-initialises it;
// format-2 state directories are converted; a power cut and kill -9 at each metadata write
// leave a proven record and every acknowledged write.
import Foundation
import TandemCore
import Testing

extension Replication {
@Suite struct MetadataFileTests {
    static let name = "r0"
    static let sizeBytes = 16 << 20

    /// beta of a pair (TLS configured) with r0 created as a secondary; alpha has no r0, so
    /// no primary ever connects.
    private func startWithSecondary(initialSync: String = "none") throws -> DaemonProcess {
        let pair = try ReplicatedPair(sizeBytes: Self.sizeBytes)
        try pair.alpha.stop()
        pairs.append(pair)
        try create(pair.beta, name: Self.name, role: "secondary", initialSync: initialSync)
        return pair.beta
    }

    /// Keeps each test's pair (its directories) alive until the test ends.
    private final class Pairs { var all: [ReplicatedPair] = [] ; func append(_ pair: ReplicatedPair) { all.append(pair) } }
    private let pairs = Pairs()

    private func create(_ daemon: DaemonProcess, name: String, role: String, initialSync: String = "none",
                        sizeBytes: Int = sizeBytes, peerPort: Int = 1, extra: [String: Any] = [:]) throws {
        var arguments: [String: Any] = [
            "name": name, "volume": daemon.directory.file("\(name).vol"), "size_bytes": sizeBytes, "role": role,
            "peer": ["name": "peer", "address": "127.0.0.1:\(peerPort)"], "initial_sync": initialSync,
            "nbd": ["socket": daemon.directory.file("\(name).sock")],
        ]
        arguments.merge(extra) { $1 }
        try ok(try daemon.control().request("create", arguments))
    }

    @discardableResult
    private func ok(_ reply: JSONObject) throws -> JSONObject {
        guard reply["ok"] as? Bool == true else { throw HarnessError("request refused: \(reply)") }
        return reply
    }

    private func status(_ daemon: DaemonProcess, _ name: String = name) throws -> JSONObject {
        try ok(try daemon.control().request("status", ["name": name]))
    }

    private func metadataPath(_ daemon: DaemonProcess, _ name: String = name) -> String { "\(daemon.stateDir)/\(name).md" }

    private func readFile(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Changes the file's bytes while the daemon is stopped, then starts it again.
    private func restart(_ daemon: DaemonProcess, changing change: (inout [UInt8]) throws -> Void) throws {
        try daemon.stop()
        var bytes = try readFile(metadataPath(daemon))
        try change(&bytes)
        try writeFile(metadataPath(daemon), bytes)
        try daemon.start()
    }

    /// r0 is Failed with the metadata file and `reason` in disk_error and last_error.
    private func expectFailed(_ daemon: DaemonProcess, reason: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let failed = try status(daemon)
        let error = failed["disk_error"] as? JSONObject
        #expect(failed["disk_state"] as? String == "Failed", "\(failed)", sourceLocation: sourceLocation)
        #expect(error?["operation"] as? String == "metadata open", "\(failed)", sourceLocation: sourceLocation)
        let message = failed["last_error"] as? String ?? ""
        #expect(message.contains(metadataPath(daemon)) && message.contains(reason), "\(failed)", sourceLocation: sourceLocation)
        // Never served, never enabled: the resource waits for the operator.
        let refused = try daemon.control().request("enable", ["name": Self.name])
        #expect(refused["ok"] as? Bool == false, sourceLocation: sourceLocation)
    }

    /// Re-seals a slot after a deliberate edit (a valid CRC over changed fields).
    private func resealed(_ slot: ArraySlice<UInt8>, _ edit: (inout MetadataSuperblock) -> Void) throws -> [UInt8] {
        var superblock = try MetadataSuperblockCodec.decode(Array(slot)).get()
        edit(&superblock)
        return MetadataSuperblockCodec.encode(superblock)
    }

    // MARK: loading

    @Test func oneCorruptSlotIsReplacedByTheOtherWithAnEvent() throws {
        let daemon = try startWithSecondary()
        try ok(try daemon.control().request("enable", ["name": Self.name]))  // sequence 3, slot B
        try restart(daemon) { bytes in bytes[100] ^= 0xFF }  // slot A (sequence 2) corrupted
        let loaded = try status(daemon)
        #expect(loaded["disk_state"] as? String != "Failed", "\(loaded)")
        #expect(loaded["enabled"] as? Bool == true, "the newest slot's enable was lost: \(loaded)")
        let log = (try? String(contentsOfFile: daemon.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("event metadata-slot-recovered") && log.contains("bad_slot"), "\(daemon.logTail())")
        try daemon.stop()
    }

    @Test func bothCorruptSlotsFailTheResourceNamingTheFile() throws {
        let daemon = try startWithSecondary()
        try restart(daemon) { bytes in
            bytes[100] ^= 0xFF
            bytes[4096 + 200] ^= 0xFF
        }
        try expectFailed(daemon, reason: "no valid superblock: slot A checksum mismatch")
        try daemon.stop()
    }

    @Test func aMetadataFileTruncatedToZeroFailsTheResource() throws {
        let daemon = try startWithSecondary()
        try restart(daemon) { bytes in bytes = [] }
        try expectFailed(daemon, reason: "truncated: 0 bytes")
        try daemon.stop()
    }

    @Test func aDeletedMetadataFileFailsTheResourceAndIsNotRecreated() throws {
        let daemon = try startWithSecondary()
        try daemon.stop()
        try FileManager.default.removeItem(atPath: metadataPath(daemon))
        try daemon.start()
        try expectFailed(daemon, reason: "metadata file missing")
        #expect(!FileManager.default.fileExists(atPath: metadataPath(daemon)))
        try daemon.stop()
    }

    @Test func anotherResourcesMetadataFailsTheResource() throws {
        let daemon = try startWithSecondary()
        try create(daemon, name: "r1", role: "secondary")
        let other = try readFile(metadataPath(daemon, "r1"))
        try restart(daemon) { bytes in bytes = other }
        try expectFailed(daemon, reason: "metadata of resource 'r1', not 'r0'")
        try daemon.stop()
    }

    /// A metadata file describing less than the volume is a volume grown before `resize`
    /// (ResizeTests): it opens at the metadata's size. More than the volume holds fails.
    @Test func metadataOfALargerVolumeFailsTheResource() throws {
        let daemon = try startWithSecondary()
        try restart(daemon) { bytes in
            for slot in 0..<2 {
                let range = (slot * 4096)..<((slot + 1) * 4096)
                bytes.replaceSubrange(range, with: try resealed(bytes[range]) { $0.volumeSizeBytes = 32 << 20 })
            }
        }
        try expectFailed(daemon, reason: "describes a volume of 33554432 bytes, the volume has only 16777216")
        try daemon.stop()
    }

    @Test func aNewerFormatFailsTheResourceAskingForAnUpgrade() throws {
        let daemon = try startWithSecondary()
        try restart(daemon) { bytes in
            // Slot A as a format-4 tandemd would write it (magic TNDMMD04, version 4, sealed).
            bytes[7] = UInt8(ascii: "4")
            bytes[8] = 4
            for index in 12..<16 { bytes[index] = 0 }
            let crc = CRC32C.checksum(bytes[0..<4096])
            for index in 0..<4 { bytes[12 + index] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(index))) }
        }
        try expectFailed(daemon, reason: "metadata format 4 is newer than this tandemd (3): upgrade tandemd")
        try daemon.stop()
    }

    @Test func createRefusesAMetadataPathInUseAndInternalMetadata() throws {
        let daemon = try startWithSecondary()
        let refuse = { (extra: [String: Any], code: String) throws in
            var arguments: [String: Any] = [
                "name": "r1", "volume": daemon.directory.file("r1.vol"), "size_bytes": Self.sizeBytes,
                "nbd": ["socket": daemon.directory.file("r1.sock")],
            ]
            arguments.merge(extra) { $1 }
            let reply = try daemon.control().request("create", arguments)
            #expect(reply["ok"] as? Bool == false && reply["error"] as? String == code, "\(extra): \(reply)")
        }
        try refuse(["metadata_path": metadataPath(daemon)], "exists")  // r0's metadata
        try refuse(["metadata_path": daemon.directory.file("\(Self.name).vol")], "exists")  // r0's volume
        try refuse(["metadata_path": daemon.directory.file("r1.vol")], "invalid-argument")  // its own volume
        try refuse(["metadata": "internal", "metadata_path": daemon.directory.file("r1.md")], "invalid-argument")
        try refuse(["metadata_path": "relative.md"], "invalid-argument")
        // r0 is untouched: it still loads after a restart.
        try daemon.stop()
        try daemon.start()
        #expect(try status(daemon)["disk_state"] as? String != "Failed")
        try ok(try daemon.control().request("create", [
            "name": "r1", "volume": daemon.directory.file("r1.vol"), "size_bytes": Self.sizeBytes,
            "nbd": ["socket": daemon.directory.file("r1.sock")], "metadata_path": daemon.directory.file("elsewhere.md"),
        ]))
        #expect(try status(daemon, "r1")["metadata_path"] as? String == daemon.directory.file("elsewhere.md"))
        try daemon.stop()
    }

    // MARK: create-md

    @Test func createMDReinitialisesAFailedSecondaryWhichThenNeedsAFullCopy() throws {
        // initial_sync none: before format 3, a secondary whose record was lost counted
        // itself synced and consistent. Now it is Failed until create-md, then Inconsistent.
        let daemon = try startWithSecondary(initialSync: "none")
        try daemon.stop()
        try FileManager.default.removeItem(atPath: metadataPath(daemon))
        try daemon.start()
        try expectFailed(daemon, reason: "metadata file missing")
        let unforced = try daemon.control().request("create-md", ["name": Self.name])
        #expect(unforced["ok"] as? Bool == false && (unforced["message"] as? String ?? "").contains("force"), "\(unforced)")
        try ok(try daemon.control().request("create-md", ["name": Self.name, "force": true]))
        let fresh = try status(daemon)
        #expect(fresh["disk_state"] as? String == "Inconsistent", "a re-initialised copy claims to be in sync: \(fresh)")
        #expect(fresh["disk_error"] == nil, "\(fresh)")
        // Enabled: refused.
        try ok(try daemon.control().request("enable", ["name": Self.name]))
        let refused = try daemon.control().request("create-md", ["name": Self.name, "force": true])
        #expect(refused["ok"] as? Bool == false && refused["error"] as? String == "wrong-state", "\(refused)")
        // The state survives a restart.
        try daemon.stop()
        try daemon.start()
        #expect(try status(daemon)["disk_state"] as? String == "Inconsistent")
        try daemon.stop()
    }

    // MARK: conversion

    /// Rewrites r0's state as a tandemd of before format 3 left it: the resource file
    /// without metadata_path, and `.meta` (session 0x1234, durable epoch 9, synced) and
    /// `.enabled`. The daemon must be stopped.
    private func writeFormatTwoState(_ daemon: DaemonProcess) throws {
        let resourceFile = "\(daemon.stateDir)/resources/\(Self.name).json"
        var document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: resourceFile))) as! [String: Any]
        var spec = document["spec"] as! [String: Any]
        spec.removeValue(forKey: "metadata_path")
        spec.removeValue(forKey: "metadata")
        document["spec"] = spec
        try JSONSerialization.data(withJSONObject: document).write(to: URL(fileURLWithPath: resourceFile))
        try FileManager.default.removeItem(atPath: metadataPath(daemon))
        let record = ReplicationRecord(generation: 5, session: 0x1234, durableThroughEpoch: 9, synced: true)
        try writeFile("\(daemon.stateDir)/\(Self.name).meta",
                      MetadataConversion.encodeLegacySlot(record) + MetadataConversion.encodeLegacySlot(ReplicationRecord(generation: 4)))
        try writeFile("\(daemon.stateDir)/\(Self.name).enabled", [])
    }

    /// The converted superblock holds the old record and marker; the old files are gone.
    private func expectConverted(_ daemon: DaemonProcess, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let bytes = try readFile(metadataPath(daemon))
        let superblock = try MetadataLoad.decide(
            fileBytes: UInt64(bytes.count), slotA: Array(bytes[0..<4096]), slotB: Array(bytes[4096..<8192]),
            expected: MetadataExpectation(resourceName: Self.name, volumeSizeBytes: UInt64(Self.sizeBytes))).get().superblock
        #expect(superblock.session == 0x1234 && superblock.durableEpoch == 9 && superblock.enabled
                    && superblock.record.synced && superblock.recordWrites == 5, "\(superblock)", sourceLocation: sourceLocation)
        for suffix in ["meta", "enabled", "peer-failed"] {
            #expect(!FileManager.default.fileExists(atPath: "\(daemon.stateDir)/\(Self.name).\(suffix)"), "\(suffix)",
                    sourceLocation: sourceLocation)
        }
    }

    @Test func aFormatTwoStateDirectoryIsConvertedOnceWithAnEvent() throws {
        let daemon = try startWithSecondary(initialSync: "full")
        try daemon.stop()
        try writeFormatTwoState(daemon)
        try daemon.start()
        let converted = try status(daemon)
        #expect(converted["metadata_path"] as? String == metadataPath(daemon), "\(converted)")
        #expect(converted["enabled"] as? Bool == true, "the .enabled marker was lost: \(converted)")
        #expect(converted["disk_state"] as? String != "Failed", "\(converted)")
        try expectConverted(daemon)
        let log = (try? String(contentsOfFile: daemon.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("event metadata-converted"), "\(daemon.logTail())")
        // The resource file names the metadata now: the next start converts nothing.
        try daemon.stop()
        try daemon.start()
        let again = (try? String(contentsOfFile: daemon.logPath, encoding: .utf8)) ?? ""
        #expect(!again.contains("event metadata-converted"))
        #expect(try status(daemon)["disk_state"] as? String != "Failed")
        try daemon.stop()
    }

    /// kill -9 at each rename of the start that converts (the new metadata file's, then the
    /// resource file's): the next start converts or finds the converted file, losing nothing.
    @Test(arguments: 1...2)
    func aConversionKilledAtARenameCompletesAtTheNextStart(_ killAt: Int) throws {
        let daemon = try startWithSecondary(initialSync: "full")
        try daemon.stop()
        try writeFormatTwoState(daemon)
        daemon.launchPrefix = ["/usr/bin/strace", "-f", "-qq", "-o", "/dev/null",
                               "-e", "inject=rename:signal=KILL:when=\(killAt)"]
        do { try daemon.start() } catch {}  // killed before READY (or after)
        let deadline = Date().addingTimeInterval(20)
        while daemon.isRunning && Date() < deadline { usleep(10_000) }
        #expect(!daemon.isRunning, "no rename \(killAt) at the converting start")
        daemon.crashWithTracee()
        daemon.launchPrefix = []
        try daemon.start()
        let converted = try status(daemon)
        #expect(converted["disk_state"] as? String != "Failed", "\(converted)")
        #expect(converted["enabled"] as? Bool == true, "\(converted)")
        try expectConverted(daemon)
        try daemon.stop()
    }
}
}
