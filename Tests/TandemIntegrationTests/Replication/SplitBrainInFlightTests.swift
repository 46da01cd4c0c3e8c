// Writes in flight at a cut between two real daemons (docs/replication.md, *Split brain and
// promotion numbers*): alpha sent a write before the link was cut, beta never got it (alpha's
// Data frames are stalled before the cut), and beta is promoted by force and writes too.
// - Acknowledged by alpha alone after the cut (the "B stays 0" hole), it is a write beta lacks
//   made after they parted: when the link heals both must report the split brain (not a
//   returned primary that yields and is resynced over, which would drop the write), with
//   `disconnect` neither volume changes, and alpha's changed bytes count it.
// - Held for the peer under `fencing: suspend-io`, it was never acknowledged: alpha wrote
//   nothing alone, so it yields as a returned primary; the yield's stop fails the write and
//   the FLUSH behind it (on one copy only), the client reads both answers, and the resync
//   from beta leaves both volumes identical.
import Foundation
import Testing

extension Replication {
@Suite(.serialized) struct SplitBrainInFlightTests {
    static let blockBytes = SplitBrainTests.blockBytes
    static let block = 300
    static let cookie: UInt64 = 7
    static let flushCookie: UInt64 = 8

    /// Sends alpha a write of `block` (cookie 7) whose Data frame never reaches beta, waits
    /// until alpha admitted it, then cuts the link (the stalled frame dies with it).
    /// `flush`: a FLUSH (cookie 8) follows in the same send, admitted in the same turn.
    static func sendWriteBetaNeverGets(_ p: SplitBrainTests.PartitionedPair, flush: Bool = false) throws -> RawNBDClient {
        p.toBeta.stall([.toTarget])
        let client = try RawNBDClient.transmitting(socketPath: p.pair.nbdSocket(p.pair.alpha),
                                                   exportName: ReplicatedPair.resource)
        let header = RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: cookie, offset: UInt64(block * blockBytes),
                                                length: UInt32(blockBytes))
        let flushHeader = RawNBDClient.requestHeader(type: NBDWire.cmdFlush, cookie: flushCookie, offset: 0, length: 0)
        try client.sendWithoutWaiting(header + SplitBrainTests.alphaPattern(block) + (flush ? flushHeader : []))
        try p.pair.waitFor(p.pair.alpha, "alpha holds the write unconfirmed") { ($0["unconfirmed_bytes"] as? Int ?? 0) > 0 }
        p.cut()
        p.toBeta.resume([.toTarget])
        return client
    }

    /// Heals the link and expects both nodes to report the split brain as primaries (not the
    /// old primary yielding); with `disconnect`, alpha keeps its write and no volume changes.
    static func expectSplitBrainKeepingAlphasWrite(_ p: SplitBrainTests.PartitionedPair) throws {
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
        let reader = try RawNBDClient.transmitting(socketPath: p.pair.nbdSocket(p.pair.alpha),
                                                   exportName: ReplicatedPair.resource)
        #expect(try reader.read(offset: UInt64(block * blockBytes), length: UInt32(blockBytes))
            == SplitBrainTests.alphaPattern(block), "alpha's acknowledged write is gone")
        reader.disconnect()
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == alphaBefore)
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.beta)) == betaBefore)
    }

    /// A sync write in flight at the cut, acknowledged by alpha alone (`dont-care`). This one
    /// passes with the daemon before `acknowledgedWithoutPeer` too: the sync loss goes Ahead,
    /// and the lag read after that event counts the held write.
    @Test func aSyncWriteInFlightAtTheCutAndAcknowledgedAloneMakesTheMeetingASplitBrain() throws {
        let p = try SplitBrainTests.PartitionedPair()
        let client = try Self.sendWriteBetaNeverGets(p)
        defer { client.disconnect() }
        let replies = try client.readReplies(1)
        #expect(replies[Self.cookie] == 0, "the in-flight write was not acknowledged alone: \(replies)")
        try p.pair.waitFor(p.pair.beta, "beta lost its peer") { $0["connection_state"] as? String != "Connected" }
        try p.promoteBetaAndWrite(200..<205)
        try Self.expectSplitBrainKeepingAlphasWrite(p)
    }

    /// The hole the sync case does not reach: an async write whose *local* write ends after
    /// the cut (alpha's disk is held across it). At the cut nothing acknowledged is unconfirmed
    /// (lag 0: the loss moves no B) and an async loss does not go Ahead; only the answer after
    /// the cut says alpha wrote what beta lacks. Its bytes count in alpha's changed bytes.
    /// With the rule taken out of the daemon (its `.acknowledgedWithoutPeer` ignored, as before
    /// the notice), this fails: alpha's B stays 0 after the answer ("acknowledged alone, the
    /// write moved B"), and at the meeting alpha yields as a returned primary: beta's status
    /// shows `returned_primary_resync` done, its digest compare of alpha's 4096 bytes found
    /// them differing and copied beta's block over alpha's acknowledged write. With the rule
    /// but the old count, alpha's `local_changed_bytes` were 0 (beta's `peer_changed_bytes` too).
    @Test func anAsyncWriteWhoseLocalWriteEndsAfterTheCutMakesTheMeetingASplitBrain() throws {
        let disk = try PausableVolume(sizeBytes: SplitBrainTests.sizeBytes)
        defer { disk.detach() }
        let p = try SplitBrainTests.PartitionedPair(mode: "async", alphaVolume: disk.path)
        try disk.pause()
        let client = try Self.sendWriteBetaNeverGets(p)
        defer { client.disconnect() }
        let cut = try p.pair.waitFor(p.pair.alpha, "alpha lost its peer") { $0["connection_state"] as? String != "Connected" }
        let unmoved = (cut["generations"] as? JSONObject)?["bitmap"] as? String
        #expect(cut["lag_bytes"] as? Int == 0 && unmoved == String(repeating: "0", count: 16),
                "the write is in flight, not acknowledged: nothing moved B at the cut: \(cut)")
        try disk.resume()
        let replies = try client.readReplies(1)
        #expect(replies[Self.cookie] == 0, "alpha's local write ended after the cut: acknowledged alone: \(replies)")
        let moved = (try p.pair.status(p.pair.alpha)["generations"] as? JSONObject)?["bitmap"] as? String
        #expect(moved != nil && moved != unmoved, "acknowledged alone, the write moved B")
        try p.pair.waitFor(p.pair.beta, "beta lost its peer") { $0["connection_state"] as? String != "Connected" }
        try p.promoteBetaAndWrite(200..<205)
        try Self.expectSplitBrainKeepingAlphasWrite(p)
        try SplitBrainTests.expectSplitBrainOnBoth(p, alphaChanged: Self.blockBytes, betaChanged: 5 * Self.blockBytes)
    }

    /// `fencing: suspend-io`: the held write, and the FLUSH after it, wait for the peer,
    /// unanswered. The meeting is a return (alpha's B = 0), so alpha yields and beta resyncs
    /// alpha's unconfirmed set from its own copy. The yield's stop fails both (EIO): the write
    /// is on one copy only, and a FLUSH answered 0 would say it is durable on both (the stop
    /// answered the write 0 before bstays0, and the FLUSH 0 until this change, from the local
    /// flush; PrimaryNodeFencedStopTests shows the decisions). The client reads both answers:
    /// before, the demotion closed the export in the turn of the stop, before the replies left,
    /// and the client saw only the connection drop.
    /// Beta, promoted and enabled, holds a write of its own for alpha (suspend-io). Its
    /// restart for the returned primary's resync stops its replicator, which fails that write
    /// too: the answer cannot promise both copies; the union resync then copies beta's block to
    /// alpha, so the failed write is on both in the end (EIO: either content).
    @Test func aWriteAndFlushHeldUnderSuspendIOFailWhenTheOldPrimaryYieldsAndTheClientReadsBoth() throws {
        let p = try SplitBrainTests.PartitionedPair(fencing: "suspend-io")
        let client = try Self.sendWriteBetaNeverGets(p, flush: true)
        defer { client.disconnect() }
        try p.pair.waitFor(p.pair.beta, "beta lost its peer") { $0["connection_state"] as? String != "Connected" }
        try p.promoteBetaAndWrite(200..<200)
        let betaClient = try RawNBDClient.transmitting(socketPath: p.pair.nbdSocket(p.pair.beta),
                                                       exportName: ReplicatedPair.resource)
        defer { betaClient.disconnect() }
        let betaOffset = UInt64(200 * Self.blockBytes)
        try betaClient.sendWithoutWaiting(RawNBDClient.requestHeader(
            type: NBDWire.cmdWrite, cookie: Self.cookie, offset: betaOffset, length: UInt32(Self.blockBytes))
            + SplitBrainTests.betaPattern(200))
        try p.pair.waitFor(p.pair.beta, "beta holds its write for alpha") { ($0["unconfirmed_bytes"] as? Int ?? 0) > 0 }
        p.heal()
        try p.pair.waitFor(p.pair.alpha, "alpha yields to the promoted beta") { $0["role"] as? String == "secondary" }
        let replies = try client.readReplies(2)
        #expect(replies == [Self.cookie: 5, Self.flushCookie: 5], "never on both copies, answered EIO: \(replies)")
        try p.pair.waitFor(p.pair.beta, "beta resynced alpha") {
            $0["connection_state"] as? String == "Connected" && $0["peer_disk_state"] as? String == "UpToDate"
        }
        #expect(try betaClient.readReplies(1) == [Self.cookie: 5], "beta's restart fails its held write")
        let alphaBlock = try VolumeFiles.bytes(p.pair.volume(p.pair.alpha), offset: betaOffset, count: Self.blockBytes)
        #expect(alphaBlock == SplitBrainTests.betaPattern(200), "beta's block reaches alpha with the resync")
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == VolumeFiles.sha256(p.pair.volume(p.pair.beta)))
    }
}
}
