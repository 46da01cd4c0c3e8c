// `metadata: internal` on real daemons (docs/metadata.md, *Internal metadata*): the metadata
// lives in the volume's last bytes, the resource serves the data area before it. A pair with
// internal metadata on both file volumes takes fio's verified writes, survives kill -9 of
// each node mid-workload, catches up, and ends with identical data areas (only the data
// area is compared: each node's metadata is its own) and the verified pattern intact. A
// volume too small, one holding another resource's metadata, a resize and a path beside
// `internal` are refused and change nothing; create-md --force rewrites the area.
import Foundation
import Testing

extension Replication {
@Suite struct InternalMetadataTests {
    static let dataBytes = 32 << 20
    static let areaBytes = 1 << 20
    static var internalSettings: [String: Any] { ["metadata": "internal"] }

    private func createPair(_ pair: ReplicatedPair) throws {
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "full", compression: "none", settings: Self.internalSettings)
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: "sync",
                        initialSync: "full", compression: "none", settings: Self.internalSettings)
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
    }

    /// fio's verified sequential pattern over the export's second half, up to its last byte
    /// (right beside the metadata area); `verifyOnly` reads it back and checks every block.
    private func fioPattern(_ socket: String, verifyOnly: Bool) throws {
        var arguments = [
            "--name=pattern", "--ioengine=nbd", "--uri=nbd+unix:///r0?socket=\(socket)", "--rw=write", "--bs=64k",
            "--offset=\(Self.dataBytes / 2)", "--size=\(Self.dataBytes / 2)", "--iodepth=4", "--verify=crc32c",
            "--verify_fatal=1", "--randseed=7",
        ]
        arguments.append(verifyOnly ? "--verify_only=1" : "--do_verify=0")
        let result = try ExternalTool.run("fio", arguments, timeoutSeconds: 120)
        #expect(result.succeeded, "fio \(verifyOnly ? "verify" : "write"): \(result)")
    }

    private func dataArea(_ path: String) throws -> [UInt8] {
        try VolumeFiles.bytes(path, offset: 0, count: Self.dataBytes)
    }

    @Test func aPairWithInternalMetadataSurvivesKill9OfEachNodeAndEndsIdentical() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.dataBytes, throughProxy: true)
        let proxy = try #require(pair.proxy)
        try createPair(pair)
        for daemon in [pair.alpha, pair.beta] {
            let status = try pair.status(daemon)
            #expect(status["metadata"] as? String == "internal", "\(status)")
            #expect(status["size_bytes"] as? Int == Self.dataBytes, "the data area: \(status)")
            #expect(status["metadata_bytes"] as? Int == Self.areaBytes, "\(status)")
            #expect(status["metadata_path"] as? String == pair.volume(daemon), "\(status)")
            #expect(try VolumeFiles.sizeBytes(pair.volume(daemon)) == UInt64(Self.dataBytes + Self.areaBytes))
            #expect(!FileManager.default.fileExists(atPath: "\(daemon.stateDir)/r0.md"), "no external file")
            let magic = try VolumeFiles.bytes(pair.volume(daemon), offset: UInt64(Self.dataBytes), count: 8)
            #expect(String(decoding: magic, as: UTF8.self) == "TNDMMD03", "the superblock behind the data")
        }
        try pair.waitInSync()
        let exportSize = try ExternalTool.check("nbdinfo", ["--size", "nbd+unix:///r0?socket=\(pair.nbdSocket(pair.alpha))"])
        #expect(exportSize.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "\(Self.dataBytes)")
        try fioPattern(pair.nbdSocket(pair.alpha), verifyOnly: false)

        // beta killed mid-workload, restarted: alpha catches it up.
        proxy.resetCounters()
        var fio = try FioJob(socket: pair.nbdSocket(pair.alpha), regionBytes: Self.dataBytes / 2, runtimeSeconds: 6,
                             rateIOPS: 1500)
        #expect(proxy.waitForForwarded(.toTarget, atLeast: 1 << 20, timeoutSeconds: 15), "no workload crossed the link")
        pair.beta.crash()
        try pair.waitFor(pair.alpha, "alpha sees beta gone") { $0["connection_state"] as? String != "Connected" }
        try pair.beta.start()
        #expect(try fio.finish().errorCode == 0)
        try CatchUpTests.waitCaughtUp(pair)

        // alpha killed mid-workload, restarted: its activity log's extents are caught up.
        proxy.resetCounters()
        fio = try FioJob(socket: pair.nbdSocket(pair.alpha), regionBytes: Self.dataBytes / 2, runtimeSeconds: 30,
                         rateIOPS: 1500, seed: 21)
        #expect(proxy.waitForForwarded(.toTarget, atLeast: 1 << 20, timeoutSeconds: 15), "no workload crossed the link")
        pair.alpha.crash()
        _ = try? fio.finish()  // its export died with alpha
        try pair.alpha.start()
        let restarted = try pair.status(pair.alpha)
        #expect(restarted["disk_state"] as? String != "Failed", "the internal metadata loads: \(restarted)")
        #expect(restarted["session_start"] as? String == "catch-up", "\(restarted)")
        try CatchUpTests.waitCaughtUp(pair)
        try fioPattern(pair.nbdSocket(pair.alpha), verifyOnly: true)

        try pair.alpha.stop()
        try pair.beta.stop()
        let alphaData = try dataArea(pair.volume(pair.alpha))
        let betaData = try dataArea(pair.volume(pair.beta))
        let firstDifference = BlockBytes.firstDifference(alphaData, betaData)
        #expect(alphaData.count == Self.dataBytes && betaData.count == Self.dataBytes)
        #expect(firstDifference == nil, "the data areas differ first at byte \(firstDifference ?? -1)")
        // Each node's metadata area is its own (its UUID, its record): never compared.
        try pair.alpha.start()
        try pair.beta.start()
        try pair.waitInSync()
    }

    /// alpha internal, beta external, both created with the same `size_bytes`: the data
    /// sizes match, the pair syncs, writes reach beta, and the data areas are identical.
    /// beta's volume the size of alpha's whole file instead: the Hello is refused for the size.
    @Test(arguments: [true, false])
    func anInternalAndAnExternalNodeReplicateWhenTheirDataSizesMatch(matching: Bool) throws {
        let pair = try ReplicatedPair(sizeBytes: Self.dataBytes)
        let betaBytes = matching ? Self.dataBytes : Self.dataBytes + Self.areaBytes
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "full", compression: "none", settings: ["size_bytes": betaBytes])
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: "sync",
                        initialSync: "full", compression: "none", settings: Self.internalSettings)
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        guard matching else {
            try pair.waitFor(pair.alpha, "alpha refused for the size") { status in
                let message = status["last_error"] as? String ?? ""
                return message.contains("\(Self.dataBytes)") && message.contains("\(betaBytes)")
            }
            #expect(try pair.status(pair.alpha)["connection_state"] as? String != "Connected")
            return
        }
        try pair.waitInSync()
        try fioPattern(pair.nbdSocket(pair.alpha), verifyOnly: false)
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sizeBytes(pair.volume(pair.beta)) == UInt64(Self.dataBytes))
        let alphaData = try dataArea(pair.volume(pair.alpha))
        let betaData = try dataArea(pair.volume(pair.beta))
        let firstDifference = BlockBytes.firstDifference(alphaData, betaData)
        #expect(firstDifference == nil, "the data areas differ first at byte \(firstDifference ?? -1)")
    }

    /// Both slots of the area zeroed while the daemon is stopped: the resource is Failed
    /// naming the volume (never loaded as fresh); create-md --force rewrites the area of a
    /// resource that could not open it, and it opens.
    @Test func anUnprovableAreaFailsTheResourceAndCreateMDRepairsIt() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.dataBytes)
        try pair.beta.stop()
        let daemon = pair.alpha
        try pair.expectOK(try daemon.control().request("create", [
            "name": "r0", "volume": pair.volume(daemon), "size_bytes": Self.dataBytes, "metadata": "internal",
            "nbd": ["socket": pair.nbdSocket(daemon)],
        ]))
        try daemon.stop()
        let handle = try #require(FileHandle(forUpdatingAtPath: pair.volume(daemon)))
        try handle.seek(toOffset: UInt64(Self.dataBytes))
        try handle.write(contentsOf: Data(count: 8192))
        try handle.close()
        try daemon.start()
        let failed = try pair.status(daemon)
        #expect(failed["disk_state"] as? String == "Failed", "\(failed)")
        #expect((failed["disk_error"] as? JSONObject)?["operation"] as? String == "metadata open", "\(failed)")
        let message = failed["last_error"] as? String ?? ""
        #expect(message.contains(pair.volume(daemon)) && message.contains("no valid superblock"), "\(failed)")
        #expect(failed["metadata"] as? String == "internal", "\(failed)")
        try pair.expectOK(try daemon.control().request("create-md", ["name": "r0", "force": true]))
        let repaired = try pair.status(daemon)
        #expect(repaired["disk_state"] as? String != "Failed", "\(repaired)")
        #expect(repaired["size_bytes"] as? Int == Self.dataBytes && repaired["metadata_bytes"] as? Int == Self.areaBytes)
        try daemon.stop()
    }

    @Test func tooSmallForeignResizeAndAPathAreRefusedAndCreateMDRewritesTheArea() throws {
        let pair = try ReplicatedPair(sizeBytes: Self.dataBytes)
        let daemon = pair.alpha
        try pair.beta.stop()
        func create(_ name: String, volume: String, _ extra: [String: Any]) throws -> JSONObject {
            var arguments: [String: Any] = [
                "name": name, "volume": volume, "metadata": "internal", "nbd": ["socket": daemon.directory.file("\(name).sock")],
            ]
            arguments.merge(extra) { $1 }
            return try daemon.control().request("create", arguments)
        }
        func refused(_ reply: JSONObject, _ code: String, _ words: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(reply["ok"] as? Bool == false && reply["error"] as? String == code, "\(reply)", sourceLocation: sourceLocation)
            #expect((reply["message"] as? String ?? "").contains(words), "\(reply)", sourceLocation: sourceLocation)
        }
        // Too small: 1 MiB holds the metadata area and no data.
        let small = daemon.directory.file("small.vol")
        #expect(FileManager.default.createFile(atPath: small, contents: Data(count: 1 << 20)))
        refused(try create("s", volume: small, [:]), "invalid-argument", "too small for internal metadata")
        #expect(try VolumeFiles.bytes(small, offset: 0, count: 1 << 20).allSatisfy { $0 == 0 }, "untouched")
        refused(try create("p", volume: daemon.directory.file("p.vol"), ["size_bytes": Self.dataBytes,
                                                                        "metadata_path": daemon.directory.file("p.md")]),
                "invalid-argument", "metadata_path")

        // A create refused after it wrote the area (its NBD socket cannot be bound) wipes
        // it again: the next create on that volume is not refused for a ghost.
        let reused = daemon.directory.file("reused.vol")
        #expect(FileManager.default.createFile(atPath: reused, contents: nil))
        try FileHandle(forWritingAtPath: reused)!.truncate(atOffset: UInt64(Self.dataBytes + Self.areaBytes))
        var ghost: [String: Any] = ["nbd": ["socket": daemon.directory.file("missing-dir/g.sock")]]
        #expect(try create("g", volume: reused, ghost)["ok"] as? Bool == false)
        ghost["nbd"] = ["socket": daemon.directory.file("g.sock")]
        try pair.expectOK(try create("g", volume: reused, ghost))
        #expect(try pair.expectOK(try daemon.control().request("status", ["name": "g"]))["size_bytes"] as? Int == Self.dataBytes)

        // r1 with internal metadata; a second resource on the same volume file (another
        // daemon) is refused: the area proves r1's superblock.
        let shared = daemon.directory.file("shared.vol")
        try pair.expectOK(try create("r1", volume: shared, ["size_bytes": Self.dataBytes]))
        let areaBefore = try VolumeFiles.bytes(shared, offset: UInt64(Self.dataBytes), count: Self.areaBytes)
        try pair.beta.start()
        var arguments: [String: Any] = [
            "name": "r2", "volume": shared, "metadata": "internal", "nbd": ["socket": pair.beta.directory.file("r2.sock")],
        ]
        refused(try pair.beta.control().request("create", arguments), "exists", "internal metadata of resource 'r1'")
        #expect(try VolumeFiles.bytes(shared, offset: UInt64(Self.dataBytes), count: Self.areaBytes) == areaBefore,
                "r1's metadata is not overwritten")

        // resize: unsupported, nothing changes.
        let resize = try daemon.control().request("resize", ["name": "r1", "size_bytes": 2 * Self.dataBytes])
        refused(resize, "unsupported", "internal")
        let status = try pair.expectOK(try daemon.control().request("status", ["name": "r1"]))
        #expect(status["size_bytes"] as? Int == Self.dataBytes)

        // create-md --force rewrites the area: a new UUID, the resource loads after a restart.
        try pair.expectOK(try daemon.control().request("create-md", ["name": "r1", "force": true]))
        let areaAfter = try VolumeFiles.bytes(shared, offset: UInt64(Self.dataBytes), count: 8192)
        #expect(Array(areaAfter[24..<40]) != Array(areaBefore[24..<40]), "a new resource UUID in slot A")
        try daemon.stop()
        try daemon.start()
        let reopened = try pair.expectOK(try daemon.control().request("status", ["name": "r1"]))
        #expect(reopened["disk_state"] as? String != "Failed", "\(reopened)")
        #expect(reopened["metadata"] as? String == "internal" && reopened["size_bytes"] as? Int == Self.dataBytes)

        // Deleted, r1's area proves nothing: r2 may take the volume.
        try pair.expectOK(try daemon.control().request("delete", ["name": "r1"]))
        #expect(FileManager.default.fileExists(atPath: shared), "delete keeps the volume")
        arguments["size_bytes"] = Self.dataBytes
        try pair.expectOK(try pair.beta.control().request("create", arguments))
        try daemon.stop()
        try pair.beta.stop()
    }
}
}
