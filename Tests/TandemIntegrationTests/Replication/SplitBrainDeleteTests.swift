// `delete` of a resource leaves none of its state files behind: a primary that wrote while
// its peer was gone keeps its changes since parting in `<name>.parted-bitmap` across its
// restart (the file a split brain's union resync needs); deleting the resource removes that
// file with the metadata, the staging journal's place and format 2's files, so that a resource
// created later under the same name starts from nothing of the old one's.
import Foundation
import Testing

extension Replication {
@Suite(.serialized) struct SplitBrainDeleteTests {
    /// The files of resource r0 in the state directory (its spec lives in `resources/`).
    static func stateFiles(_ daemon: DaemonProcess) throws -> [String] {
        let names = try FileManager.default.contentsOfDirectory(atPath: daemon.stateDir)
        return names.filter { $0.hasPrefix(ReplicatedPair.resource + ".") }.sorted()
    }

    @Test func deleteRemovesThePartedBitmapAndEveryStateFile() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.createAndEnable()
        try pair.waitInSync()
        _ = try pair.beta.stop()
        try pair.waitFor(pair.alpha, "alpha lost its peer") { $0["connection_state"] as? String != "Connected" }
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: ReplicatedPair.resource)
        try client.write(offset: 1 << 20, data: [UInt8](repeating: 0x7E, count: 64 << 10), fua: true)
        client.disconnect()
        #expect(try pair.status(pair.alpha)["parted_bytes"] as? Int == 64 << 10)

        // A stop keeps the set (and the restart proves it: parted_bytes again).
        _ = try pair.alpha.stop()
        let partedPath = pair.alpha.stateDir + "/\(ReplicatedPair.resource).parted-bitmap"
        let afterStop = try Self.stateFiles(pair.alpha)
        #expect(FileManager.default.fileExists(atPath: partedPath), "no parted bitmap after the stop: \(afterStop)")
        try pair.alpha.start()
        #expect(try pair.status(pair.alpha)["parted_bytes"] as? Int == 64 << 10)
        // What a crash in the middle of a rewrite leaves, a survivor's union resync left, format 2's files.
        for suffix in [".parted-bitmap.new", ".union-resync", ".union-resync.new", ".meta", ".enabled", ".peer-failed"] {
            #expect(FileManager.default.createFile(atPath: pair.alpha.stateDir + "/r0" + suffix, contents: Data([1])))
        }

        try pair.expectOK(try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource]))
        try pair.expectOK(try pair.alpha.control().request("delete", ["name": ReplicatedPair.resource]))
        #expect(try Self.stateFiles(pair.alpha) == [], "left behind by delete")
        #expect(!FileManager.default.fileExists(atPath: pair.alpha.stateDir + "/resources/r0.json"))

        // And after a restart nothing of it comes back; a new r0 has no parted set.
        _ = try pair.alpha.stop()
        try pair.alpha.start()
        #expect(try Self.stateFiles(pair.alpha) == [])
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: "sync",
                        initialSync: "full", compression: "none")
        #expect(try pair.status(pair.alpha)["parted_bytes"] == nil)
    }
}
}
