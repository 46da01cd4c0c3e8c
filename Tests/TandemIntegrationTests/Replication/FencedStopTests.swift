// What a stop answers for a write and the FLUSH after it, both held for the peer under
// `fencing: suspend-io`, between real daemons and real clients (docs/replication.md,
// *Fencing*). A FLUSH answered 0 says every write before it is durable on both copies, so it
// is answered as the write it covers:
// - the control plane's `outdate-peer`, or the operator's `disable`, lets the primary serve
//   alone: both are answered 0 (the FLUSH after the local flush) and B moves first (qemu-io);
// - a shutdown, after which the node serves nothing, fails both with EIO, and the client
//   reads both answers before the connection closes (they were lost with the export);
// - a split brain's own stop fails both too: the verdict (or the operator's `resolve`)
//   decides only after the answer whether this copy survives. The node keeps its data and
//   keeps serving its volume; the written block holds the write (EIO: either content).
import Foundation
import Testing

extension Replication {
@Suite(.serialized) struct FencedStopTests {
    static let blockBytes = 4096
    static let block = 300
    static let writeCookie: UInt64 = 7
    static let flushCookie: UInt64 = 8
    static let noGeneration = String(repeating: "0", count: 16)
    static let eio: UInt32 = 5

    static func bitmapGeneration(_ status: JSONObject) -> String? {
        (status["generations"] as? JSONObject)?["bitmap"] as? String
    }

    /// A WRITE of `block` and a FLUSH after it, in one send (the server takes both from one
    /// receive in one turn), over a connection of their own; returns once alpha holds the
    /// write for its absent peer (so the FLUSH, admitted with it, waits too).
    static func sendWriteAndFlushHeld(_ pair: ReplicatedPair) throws -> RawNBDClient {
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha),
                                                   exportName: ReplicatedPair.resource)
        let offset = UInt64(block * blockBytes)
        try client.sendWithoutWaiting(
            RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: writeCookie, offset: offset,
                                       length: UInt32(blockBytes)) + AcknowledgedWriter.pattern(block)
                + RawNBDClient.requestHeader(type: NBDWire.cmdFlush, cookie: flushCookie, offset: 0, length: 0))
        try pair.waitFor(pair.alpha, "the write held for the absent peer") {
            $0["connection_state"] as? String != "Connected" && $0["unconfirmed_bytes"] as? Int == blockBytes
        }
        return client
    }

    /// `outdate-peer` and `disable` release a frozen primary to serve alone: qemu-io's write
    /// and the FLUSH it sends behind it, waiting for the crashed peer, both succeed, and B has
    /// moved (a peer promoted meanwhile would meet a split brain, not resync over them; a
    /// write submitted once the loss was seen moved it already, one in flight at the loss
    /// moves it with its answer).
    @Test(arguments: ["outdate-peer", "disable"])
    func aWriteAndFlushHeldForAGonePeerSucceedOnceTheNodeServesAlone(release: String) throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        try pair.createAndEnable(fencing: "suspend-io")
        try pair.waitInSync()
        pair.beta.crash()
        let uri = "nbd+unix:///\(ReplicatedPair.resource)?socket=\(pair.nbdSocket(pair.alpha))"
        let log = pair.alpha.directory.file("qemu-io.log")
        let qemuIO = try ChildProcess(
            executable: try ExternalTool.locate("qemu-io"),
            arguments: ["-f", "raw", "-c", "aio_write -P 0x5a 8k 4k", "-c", "flush", uri], outputPath: log)
        defer { qemuIO.signal(SIGKILL) }
        try pair.waitFor(pair.alpha, "the write held for the gone peer") {
            $0["connection_state"] as? String != "Connected" && $0["unconfirmed_bytes"] as? Int == Self.blockBytes
        }
        #expect(qemuIO.exitStatus == nil, "suspend-io: the write waits for the peer")
        try pair.expectOK(try pair.alpha.control().request(release, ["name": ReplicatedPair.resource]))
        #expect(qemuIO.wait(timeoutSeconds: 30), "\(release) did not release the held requests")
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(qemuIO.exitStatus == 0 && output.contains("wrote 4096/4096 bytes at offset 8192")
            && !output.contains("failed"), "qemu-io after \(release): \(output)")
        let alone = try pair.status(pair.alpha)
        #expect(Self.bitmapGeneration(alone) != Self.noGeneration, "answered alone, B moves: \(alone)")
        try ExternalTool.check("qemu-io", ["-f", "raw", "-c", "read -P 0x5a 8k 4k", uri])
    }

    /// A shutdown: the node serves nothing after it, so the write and the FLUSH it holds for
    /// the crashed peer fail (the FLUSH was answered 0 once the local disk was flushed), and
    /// the client reads both answers before the connection closes: the export used to close
    /// first, the answers lost with it (the client saw only the connection drop).
    @Test func aShutdownFailsTheHeldWriteAndFlushAndTheClientReadsBothAnswers() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        try pair.createAndEnable(fencing: "suspend-io")
        try pair.waitInSync()
        pair.beta.crash()
        let client = try Self.sendWriteAndFlushHeld(pair)
        defer { client.disconnect() }
        #expect(try pair.alpha.stop() == 0)
        let replies = try client.readReplies(2)
        #expect(replies == [Self.writeCookie: Self.eio, Self.flushCookie: Self.eio], "\(replies)")
        let (outcome, _) = client.readSimpleReply(dataBytes: 0)
        #expect(outcome == .closed, "then the connection closes")
    }

    /// A split brain's own stop under `suspend-io` (alpha wrote alone while disabled, enabled
    /// again, and holds a write and a FLUSH for beta, which was promoted by force and wrote):
    /// both fail, delivered on the open connection, as at any stop after which the answer
    /// cannot promise both copies — with `disconnect` the operator decides later which copy
    /// survives, and `discard-local` would copy beta's block over the write. Alpha keeps its
    /// data (the block holds the write: EIO means either content) and keeps serving.
    @Test func aSplitBrainsStopFailsTheHeldWriteAndFlushAndTheNodeKeepsServing() throws {
        let p = try SplitBrainTests.PartitionedPair(fencing: "suspend-io")
        let pair = p.pair
        p.cut()
        try pair.waitFor(pair.alpha, "alpha lost its peer") { $0["connection_state"] as? String != "Connected" }
        try pair.waitFor(pair.beta, "beta lost its peer") { $0["connection_state"] as? String != "Connected" }
        try pair.expectOK(try pair.alpha.control().request("disable", ["name": ReplicatedPair.resource]))
        try SplitBrainTests.write(pair.nbdSocket(pair.alpha), 100..<101, SplitBrainTests.alphaPattern)
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        let client = try Self.sendWriteAndFlushHeld(pair)
        defer { client.disconnect() }
        try pair.expectOK(try pair.beta.control().request("failover", ["name": ReplicatedPair.resource, "force": true]))
        try SplitBrainTests.write(pair.nbdSocket(pair.beta), 200..<201, SplitBrainTests.betaPattern)
        p.heal()
        for daemon in [pair.alpha, pair.beta] {
            let status = try pair.waitFor(daemon, "the split brain reported") { $0["split_brain"] as? Bool == true }
            #expect(status["role"] as? String == "primary", "\(status)")
        }
        let replies = try client.readReplies(2)
        #expect(replies == [Self.writeCookie: Self.eio, Self.flushCookie: Self.eio], "\(replies)")
        let offset = UInt64(Self.block * Self.blockBytes)
        #expect(try client.read(offset: offset, length: UInt32(Self.blockBytes)) == AcknowledgedWriter.pattern(Self.block),
                "nothing of either volume changes at the detection")
        try client.write(offset: offset + UInt64(Self.blockBytes), data: AcknowledgedWriter.pattern(Self.block + 1))
    }
}
}
