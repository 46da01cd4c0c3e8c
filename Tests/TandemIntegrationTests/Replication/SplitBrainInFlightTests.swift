// The "B stays 0" hole between two real daemons (docs/replication.md, *Split brain and
// promotion numbers*): a sync write alpha sent before the link was cut and the peer never
// confirmed, acknowledged by alpha alone after the cut (`fencing: dont-care`). Beta is promoted
// by force and writes too. Alpha's write is one beta lacks, made after they parted: when the
// link heals both must report the split brain (not a returned primary that yields and is
// resynced over, which would drop the write), and with `disconnect` neither volume changes.
import Foundation
import Testing

extension Replication {
@Suite(.serialized) struct SplitBrainInFlightTests {
    static let blockBytes = SplitBrainTests.blockBytes

    @Test func aSyncWriteInFlightAtTheCutAndAcknowledgedAloneMakesTheMeetingASplitBrain() throws {
        let p = try SplitBrainTests.PartitionedPair()
        // Alpha's Data frames never reach beta from here on: the write waits for the peer.
        p.toBeta.stall([.toTarget])
        let client = try RawNBDClient.transmitting(socketPath: p.pair.nbdSocket(p.pair.alpha),
                                                   exportName: ReplicatedPair.resource)
        defer { client.disconnect() }
        let block = 300
        let header = RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: 7, offset: UInt64(block * Self.blockBytes),
                                                length: UInt32(Self.blockBytes))
        try client.sendWithoutWaiting(header + SplitBrainTests.alphaPattern(block))
        try p.pair.waitFor(p.pair.alpha, "alpha holds the write unconfirmed") { ($0["unconfirmed_bytes"] as? Int ?? 0) > 0 }
        p.cut()
        p.toBeta.resume([.toTarget])
        // Alone (dont-care), alpha acknowledges it: a write beta will never get on that link.
        let replies = try client.readReplies(1)
        #expect(replies[7] == 0, "the in-flight write was not acknowledged alone: \(replies)")
        try p.pair.waitFor(p.pair.beta, "beta lost its peer") { $0["connection_state"] as? String != "Connected" }
        let promoted = try p.pair.expectOK(try p.pair.beta.control().request(
            "failover", ["name": ReplicatedPair.resource, "force": true]))
        #expect(promoted["role"] as? String == "primary")
        try p.pair.expectOK(try p.pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        try SplitBrainTests.write(p.pair.nbdSocket(p.pair.beta), 200..<205, SplitBrainTests.betaPattern)
        let alphaBefore = try VolumeFiles.sha256(p.pair.volume(p.pair.alpha))
        let betaBefore = try VolumeFiles.sha256(p.pair.volume(p.pair.beta))
        p.heal()
        for daemon in [p.pair.alpha, p.pair.beta] {
            let status = try p.pair.waitFor(daemon, "the split brain reported, or the old primary yielded") {
                $0["split_brain"] as? Bool == true || $0["role"] as? String == "secondary"
            }
            #expect(status["split_brain"] as? Bool == true && status["role"] as? String == "primary",
                    "alpha acknowledged a write beta lacks after they parted: the meeting must be a split brain: \(status)")
        }
        // `disconnect`: nothing moves on either side until `resolve`; alpha keeps its write.
        let reader = try RawNBDClient.transmitting(socketPath: p.pair.nbdSocket(p.pair.alpha),
                                                   exportName: ReplicatedPair.resource)
        #expect(try reader.read(offset: UInt64(block * Self.blockBytes), length: UInt32(Self.blockBytes))
            == SplitBrainTests.alphaPattern(block), "alpha's acknowledged write is gone")
        reader.disconnect()
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == alphaBefore)
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.beta)) == betaBefore)
    }
}
}
