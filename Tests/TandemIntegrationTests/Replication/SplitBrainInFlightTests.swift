// Writes in flight at a cut between two real daemons (docs/replication.md, *Split brain and
// promotion numbers*): alpha sent a write before the link was cut, beta never got it (alpha's
// Data frames are stalled before the cut), and beta is promoted by force and writes too.
// - Acknowledged by alpha alone after the cut (the "B stays 0" hole), it is a write beta lacks
//   made after they parted: when the link heals both must report the split brain (not a
//   returned primary that yields and is resynced over, which would drop the write), with
//   `disconnect` neither volume changes, and alpha's changed bytes count it.
// - Held for the peer under `fencing: suspend-io`, it was never acknowledged: alpha wrote
//   nothing alone, so it yields as a returned primary; the yield's stop fails the write (it is
//   on one copy only), never reporting it written, and the resync from beta leaves both
//   volumes identical.
import Foundation
import Testing

extension Replication {
@Suite(.serialized) struct SplitBrainInFlightTests {
    static let blockBytes = SplitBrainTests.blockBytes
    static let block = 300
    static let cookie: UInt64 = 7

    /// Sends alpha a write of `block` (cookie 7) whose Data frame never reaches beta, waits
    /// until alpha admitted it, then cuts the link (the stalled frame dies with it).
    static func sendWriteBetaNeverGets(_ p: SplitBrainTests.PartitionedPair) throws -> RawNBDClient {
        p.toBeta.stall([.toTarget])
        let client = try RawNBDClient.transmitting(socketPath: p.pair.nbdSocket(p.pair.alpha),
                                                   exportName: ReplicatedPair.resource)
        let header = RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: cookie, offset: UInt64(block * blockBytes),
                                                length: UInt32(blockBytes))
        try client.sendWithoutWaiting(header + SplitBrainTests.alphaPattern(block))
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

    /// `fencing: suspend-io`: the held write waits for the peer, unanswered. The meeting is a
    /// return (alpha's B = 0), so alpha yields and beta resyncs alpha's unconfirmed set from
    /// its own copy. The yield's stop answered the held write from alpha's disk (0) before, and
    /// the resync then overwrote it; it fails now (EIO: PrimaryNodeAheadTests'
    /// `aSyncPrimaryWithFencingSuspendIOKeepsWaitingAndFailsTheHeldWriteAtTheStop` shows the
    /// decision, and failed on the old stop). Here the answer itself does not reach the client,
    /// before or after the fix: the demotion stops serving the export right after the stop and
    /// the connection closes first. So this checks the outcome the application can see: no
    /// success unless beta holds the write, and both volumes identical.
    /// (Beta, promoted, writes nothing: under suspend-io its own writes would wait for alpha.)
    @Test func aWriteHeldUnderSuspendIOFailsWhenTheOldPrimaryYields() throws {
        let p = try SplitBrainTests.PartitionedPair(fencing: "suspend-io")
        let client = try Self.sendWriteBetaNeverGets(p)
        defer { client.disconnect() }
        try p.pair.waitFor(p.pair.beta, "beta lost its peer") { $0["connection_state"] as? String != "Connected" }
        try p.promoteBetaAndWrite(200..<200)
        p.heal()
        try p.pair.waitFor(p.pair.alpha, "alpha yields to the promoted beta") { $0["role"] as? String == "secondary" }
        // Answered, or the connection closed by the demotion with no answer: never success
        // unless the write survives on beta.
        let reply = (try? client.readReplies(1))?[Self.cookie]
        try p.pair.waitFor(p.pair.beta, "beta resynced alpha") {
            $0["connection_state"] as? String == "Connected" && $0["peer_disk_state"] as? String == "UpToDate"
        }
        let offset = UInt64(Self.block * Self.blockBytes)
        let survivor = try VolumeFiles.bytes(p.pair.volume(p.pair.beta), offset: offset, count: Self.blockBytes)
        if reply == 0 {
            #expect(survivor == SplitBrainTests.alphaPattern(Self.block),
                    "the held write was acknowledged at the yield, and the resync from beta overwrote it")
        }
        #expect(reply != 0, "never on both copies, the held write was answered as written: \(String(describing: reply))")
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == VolumeFiles.sha256(p.pair.volume(p.pair.beta)))
    }
}
}
