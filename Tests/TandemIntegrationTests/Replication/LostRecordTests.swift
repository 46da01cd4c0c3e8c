// A secondary that lost its record while its primary kept running (re-initialised with
// create-md, or a slot lost so that an older one is used) claims less than it confirmed. The
// primary released what it lacks, so no re-send can repair it: the primary starts a new
// session that copies the volume (event `peer-needs-full-copy`) instead of refusing the
// secondary's hello as a protocol violation on every redial, which left the pair apart until
// the primary restarted.
import Foundation
import TandemCore
import Testing

extension Replication {
@Suite struct LostRecordTests {
    @Test func aSecondaryReinitialisedWithCreateMDGetsAFullCopyFromTheRunningPrimary() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        try pair.createAndEnable(mode: "async")
        try pair.waitInSync()
        try RawNBDClient.writePatterns(socketPath: pair.nbdSocket(pair.alpha), blocks: 0..<256)
        try pair.waitInSync()
        let beta = try pair.beta.control()
        for (command, arguments) in [("disable", [:]), ("create-md", ["force": true]), ("enable", [:])] as [(String, JSONObject)] {
            var request = arguments
            request["name"] = ReplicatedPair.resource
            let reply = try beta.request(command, request)
            #expect(reply["ok"] as? Bool == true, "\(command): \(reply)")
        }
        // The full copy brings beta back to UpToDate while alpha keeps running.
        try pair.waitInSync(timeoutSeconds: 60)
        let log = try String(contentsOfFile: pair.alpha.logPath, encoding: .utf8)
        #expect(log.contains("lost its record"), "alpha's log does not say why it copies:\n\(pair.alpha.logTail())")
        try RawNBDClient.writePatterns(socketPath: pair.nbdSocket(pair.alpha), blocks: 256..<320)
        try pair.waitInSync()
        try pair.alpha.stop()
        try pair.beta.stop()
        #expect(try VolumeFiles.sha256(pair.volume(pair.alpha)) == VolumeFiles.sha256(pair.volume(pair.beta)))
    }

    /// A secondary whose metadata cannot be proven is Failed; its primary is told why (the
    /// peer's disk failed, naming the file) rather than "no resource", and detaches.
    @Test func aSecondaryWhoseMetadataCannotBeProvenIsReportedAsAFailedPeerDisk() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        try pair.createAndEnable(mode: "async")
        try pair.waitInSync()
        try pair.beta.stop()
        let path = "\(pair.beta.stateDir)/\(ReplicatedPair.resource).md"
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.write(contentsOf: Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }))
        try handle.close()
        try pair.beta.start()
        try pair.waitFor(pair.alpha, "alpha told beta's disk failed") {
            $0["peer_disk_state"] as? String == "Failed"
                && ($0["last_error"] as? String ?? "").contains("could not be opened here")
        }
        let beta = try pair.status(pair.beta)
        #expect(beta["disk_state"] as? String == "Failed", "\(beta)")
        try pair.alpha.stop()
        try pair.beta.stop()
    }
}
}
