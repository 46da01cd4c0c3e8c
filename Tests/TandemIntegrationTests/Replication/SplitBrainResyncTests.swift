// A split brain resolved by the union of both bitmaps, between two real daemons whose links
// both run through LinkProxies (SplitBrainTests.PartitionedPair) on a 256 MiB volume: after
// the cut alpha (the old primary) writes 3 MiB, beta (promoted by force) writes 2 MiB, and
// both write the same 1 MiB region. Resolved either way (operator or policy), the volumes end
// byte-identical and equal to the survivor's image (its writes there, the loser's gone), and
// the proxies count what crossed the wire: the union of the dirty blocks (6 MiB) and the
// bitmap exchange, not the 256 MiB a full copy moves.
import Foundation
import TandemCore
import TandemIO
import Testing

extension Replication {
@Suite(.serialized) struct SplitBrainResyncTests {
    typealias PartitionedPair = SplitBrainTests.PartitionedPair
    static let sizeBytes = 256 << 20
    static let blockBytes = 4096
    /// Blocks of 4 KiB: alpha only, beta only, and both.
    static let alphaOnly = 1_000..<1_768
    static let betaOnly = 40_000..<40_512
    static let overlap = 20_000..<20_256
    static var unionBlocks: Int { alphaOnly.count + betaOnly.count + overlap.count }
    /// TLS handshakes, Hellos, acks, barriers and pings of the resync's links, and the
    /// bitmap exchange (a few runs each way): far below one MiB.
    static let overheadBytesMax = 512 << 10

    static func pattern(_ side: UInt8, _ index: Int) -> [UInt8] {
        var block = [UInt8](repeating: side, count: blockBytes)
        withUnsafeBytes(of: UInt64(index).littleEndian) { block.replaceSubrange(8..<16, with: $0) }
        return block
    }

    static func alphaPattern(_ index: Int) -> [UInt8] { pattern(0xA1, index) }
    static func betaPattern(_ index: Int) -> [UInt8] { pattern(0xB2, index) }

    /// Writes `blocks` in 256 KiB requests, each block its own pattern.
    static func write(_ socket: String, _ blocks: Range<Int>, _ pattern: (Int) -> [UInt8]) throws {
        let client = try RawNBDClient.transmitting(socketPath: socket, exportName: ReplicatedPair.resource)
        defer { client.disconnect() }
        var index = blocks.lowerBound
        while index < blocks.upperBound {
            let end = min(index + 64, blocks.upperBound)
            let data = (index..<end).flatMap(pattern)
            try client.write(offset: UInt64(index * blockBytes), data: data, fua: true)
            index = end
        }
    }

    /// Cut; alpha writes its regions; beta is promoted by force and writes its own; heal: both
    /// report the split brain.
    static func splitBrainWithWritesOnBoth(policy: String? = nil) throws -> PartitionedPair {
        let p = try PartitionedPair(policy: policy, sizeBytes: sizeBytes)
        p.cut()
        try p.pair.waitFor(p.pair.alpha, "alpha lost its peer") { $0["connection_state"] as? String != "Connected" }
        try p.pair.waitFor(p.pair.beta, "beta lost its peer") { $0["connection_state"] as? String != "Connected" }
        for range in [alphaOnly, overlap] { try write(p.pair.nbdSocket(p.pair.alpha), range, alphaPattern) }
        try p.pair.expectOK(try p.pair.beta.control().request("failover", ["name": ReplicatedPair.resource, "force": true]))
        try p.pair.expectOK(try p.pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        for range in [betaOnly, overlap] { try write(p.pair.nbdSocket(p.pair.beta), range, betaPattern) }
        // Each side tracked its own regions since parting (the promoted one too).
        #expect(try p.pair.status(p.pair.alpha)["parted_bytes"] as? Int == (alphaOnly.count + overlap.count) * blockBytes)
        #expect(try p.pair.status(p.pair.beta)["parted_bytes"] as? Int == (betaOnly.count + overlap.count) * blockBytes)
        return p
    }

    /// The loser secondary and `UpToDate`, then the survivor connected with nothing owed: its status.
    @discardableResult
    static func settled(_ p: PartitionedPair, survivor: DaemonProcess, loser: DaemonProcess) throws -> JSONObject {
        try p.pair.waitFor(loser, "the loser secondary and UpToDate") {
            $0["role"] as? String == "secondary" && $0["disk_state"] as? String == "UpToDate"
        }
        return try p.pair.waitFor(survivor, "the survivor connected, its peer UpToDate, nothing out of sync") {
            $0["connection_state"] as? String == "Connected" && $0["peer_disk_state"] as? String == "UpToDate"
                && $0["out_of_sync_bytes"] as? Int == 0 && $0["unconfirmed_bytes"] as? Int == 0
        }
    }

    /// The proxies' counters reset, beta discards and alpha survives (`enableAlpha`: a disabled
    /// alpha resyncs once enabled): alpha's status once settled.
    static func resolvedWithAlphaSurviving(_ p: PartitionedPair, enableAlpha: Bool = false) throws -> JSONObject {
        p.toBeta.resetCounters()
        p.toAlpha.resetCounters()
        try p.pair.expectOK(try p.pair.beta.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "local"]))
        try p.pair.expectOK(try p.pair.alpha.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "peer"]))
        if enableAlpha { try p.pair.expectOK(try p.pair.alpha.control().request("enable", ["name": ReplicatedPair.resource])) }
        return try settled(p, survivor: p.pair.alpha, loser: p.pair.beta)
    }

    /// Both daemons stopped: `written` (each block `pattern(side, index)`) is on both volumes,
    /// which end byte-identical.
    static func expectOnBothAndIdentical(_ p: PartitionedPair, written: Range<Int>, side: UInt8) throws {
        try p.pair.alpha.stop()
        try p.pair.beta.stop()
        for daemon in [p.pair.alpha, p.pair.beta] {
            let bytes = try VolumeFiles.bytes(p.pair.volume(daemon), offset: UInt64(written.lowerBound * blockBytes),
                                              count: written.count * blockBytes)
            #expect(bytes == written.flatMap { pattern(side, $0) }, "the acknowledged write on \(daemon === p.pair.alpha ? "alpha" : "beta")")
        }
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == VolumeFiles.sha256(p.pair.volume(p.pair.beta)))
    }

    static func forwardedBytes(_ p: PartitionedPair) -> Int {
        [p.toBeta, p.toAlpha].reduce(0) { $0 + $1.forwardedBytes(.toTarget) + $1.forwardedBytes(.fromTarget) }
    }

    /// The survivor's image on both (its writes, the loser's only regions zero as before the
    /// cut), the volumes byte-identical, and only the union on the wire.
    static func expectUnionResync(_ p: PartitionedPair, survivor: DaemonProcess, loser: DaemonProcess,
                                  survivorPattern: @escaping (Int) -> [UInt8], survivorOnly: Range<Int>,
                                  loserOnly: Range<Int>) throws {
        let settled = try Self.settled(p, survivor: survivor, loser: loser)
        let moved = forwardedBytes(p)
        let unionBytes = unionBlocks * blockBytes
        #expect(settled["session_start"] as? String == "split-brain-union", "\(settled)")
        let report = settled["split_brain_resync"] as? JSONObject
        #expect(report?["plan"] as? String == "split-brain-union", "\(settled)")
        #expect(report?["union_bytes"] as? Int == unionBytes, "\(settled)")
        #expect(report?["local_changed_bytes"] as? Int == (survivorOnly.count + overlap.count) * blockBytes, "\(settled)")
        #expect(report?["peer_changed_bytes"] as? Int == (loserOnly.count + overlap.count) * blockBytes, "\(settled)")
        #expect(report?["moved_bytes"] as? Int == unionBytes, "\(settled)")
        let exchange = report?["bitmap_exchange_bytes"] as? Int
        #expect(exchange.map { $0 > 0 && $0 < 4096 } == true, "\(settled)")
        #expect(Double(moved) <= 1.1 * Double(unionBytes) + Double((exchange ?? 0) + overheadBytesMax),
                "\(moved) bytes crossed the proxies for a union of \(unionBytes) (the volume: \(sizeBytes))")

        let reader = try RawNBDClient.transmitting(socketPath: p.pair.nbdSocket(survivor), exportName: ReplicatedPair.resource)
        for index in [survivorOnly.lowerBound, survivorOnly.upperBound - 1, overlap.lowerBound, overlap.upperBound - 1] {
            #expect(try reader.read(offset: UInt64(index * blockBytes), length: UInt32(blockBytes)) == survivorPattern(index))
        }
        for index in [loserOnly.lowerBound, loserOnly.upperBound - 1] {
            #expect(try reader.read(offset: UInt64(index * blockBytes), length: UInt32(blockBytes))
                        == [UInt8](repeating: 0, count: blockBytes), "the loser's block \(index) survived")
        }
        reader.disconnect()
        try p.pair.alpha.stop()
        try p.pair.beta.stop()
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == VolumeFiles.sha256(p.pair.volume(p.pair.beta)))
    }

    @Test(arguments: ["alpha", "beta"])
    func resolveCopiesOnlyTheUnionOfBothBitmaps(survivorName: String) throws {
        let p = try Self.splitBrainWithWritesOnBoth()
        p.heal()
        for daemon in [p.pair.alpha, p.pair.beta] {
            try p.pair.waitFor(daemon, "split brain reported") { $0["split_brain"] as? Bool == true }
        }
        let (survivor, loser) = survivorName == "alpha" ? (p.pair.alpha, p.pair.beta) : (p.pair.beta, p.pair.alpha)
        p.toBeta.resetCounters()
        p.toAlpha.resetCounters()
        try p.pair.expectOK(try loser.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "local"]))
        try p.pair.expectOK(try survivor.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "peer"]))
        if survivorName == "alpha" {
            try Self.expectUnionResync(p, survivor: survivor, loser: loser, survivorPattern: Self.alphaPattern,
                                       survivorOnly: Self.alphaOnly, loserOnly: Self.betaOnly)
        } else {
            try Self.expectUnionResync(p, survivor: survivor, loser: loser, survivorPattern: Self.betaPattern,
                                       survivorOnly: Self.betaOnly, loserOnly: Self.alphaOnly)
        }
    }

    /// A loser that wrote after the detection and crashed keeps its set (its write went into
    /// the file first: SplitBrainStandAloneCrashTests); one whose file was then spoilt by hand
    /// has no proven bitmap: it refuses to send one, the survivor copies every block, and the
    /// event and status say why. The volumes still end equal.
    @Test func aLoserWhoseBitmapWasLostIsCopiedWholeAndStatusSaysWhy() throws {
        let p = try Self.splitBrainWithWritesOnBoth()
        p.heal()
        for daemon in [p.pair.alpha, p.pair.beta] {
            try p.pair.waitFor(daemon, "split brain reported") { $0["split_brain"] as? Bool == true }
        }
        try Self.write(p.pair.nbdSocket(p.pair.beta), 60_000..<60_001, Self.betaPattern)
        p.pair.beta.crash()
        // One byte of the file's frames flipped: its CRC32C no longer proves it.
        let file = "\(p.pair.beta.stateDir)/\(ReplicatedPair.resource).parted-bitmap"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        bytes[40] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        try p.pair.beta.start()
        // No set: status says why, and what it lacks from the peer's view is the whole volume.
        let restarted = try p.pair.status(p.pair.beta)
        #expect(restarted["parted_bytes"] == nil, "\(restarted)")
        #expect((restarted["parted_lost_reason"] as? String)?.contains("cannot be proven") == true, "\(restarted)")
        #expect(restarted["out_of_sync_bytes"] as? Int == Self.sizeBytes && restarted["lag_bytes"] as? Int == Self.sizeBytes,
                "\(restarted)")
        let settled = try Self.resolvedWithAlphaSurviving(p)
        let report = settled["split_brain_resync"] as? JSONObject
        #expect(report?["plan"] as? String == "split-brain-full-copy", "\(settled)")
        #expect((report?["reason"] as? String)?.contains("keeps no bitmap") == true, "\(settled)")
        #expect(report?["moved_bytes"] as? Int == Self.sizeBytes, "\(settled)")
        #expect(Self.forwardedBytes(p) >= Self.sizeBytes)
        try p.pair.alpha.stop()
        try p.pair.beta.stop()
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == VolumeFiles.sha256(p.pair.volume(p.pair.beta)))
    }

    /// A hand-driven survivor asks a secondary that lost no split brain for its bitmap: it
    /// keeps none, so it refuses `unrelated-data` with the reason (the survivor would copy
    /// every block), stays up and wrote nothing; a Hello that does not ask is accepted.
    @Test func aSecondaryWithoutABitmapRefusesASurvivorsRequestForIt() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        func firstAnswer(asking: Bool) throws -> WireMessage {
            let context = try TLSContext(
                role: .client, caFile: pair.certs.file("ca.crt"), certFile: pair.certs.file("alpha.crt"),
                keyFile: pair.certs.file("alpha.key"), expectedPeerName: "beta")
            let fd = try connectTo(pair.betaAddress)
            defer { close(fd) }
            let stream = TLSBlockingStream(connection: try TLSConnection(context: context), fd: fd)
            try stream.handshake()
            let tail = WireNodeGenerations(current: 0x5151, bitmap: 0x4242, flags: asking ? [.splitBrainResync] : [])
            try stream.write(try WireEncoder.encode(.hello(WireHello(
                role: .primary, nodeName: "alpha", resourceName: ReplicatedPair.resource, volumeSizeBytes: 8 << 20,
                generations: WireGenerations(current: 99, bitmap: 0), promotionNumber: 1, node: tail)), promotionNumber: 1))
            var decoder = WireDecoder(checksOrdering: false)
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                if let frame = try decoder.next() { return frame.message }
                let count = try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }
                guard count > 0 else { throw HarnessError("beta closed without answering") }
                decoder.feed(buffer[0..<count])
            }
        }
        guard case .helloReply(let reply) = try firstAnswer(asking: true) else {
            throw HarnessError("beta answered a Hello asking for its bitmap with something else than a refusal")
        }
        #expect(reply.refusal == .unrelatedData, "\(reply)")
        #expect(reply.reason.contains("keeps no bitmap"), "\(reply)")
        guard case .hello = try firstAnswer(asking: false) else { throw HarnessError("beta refused a plain Hello") }
        #expect(try pair.beta.control().request("ping")["ok"] as? Bool == true)
    }

    /// `discard-least-changes` picks beta (2 MiB + 1 MiB against 3 MiB + 1 MiB) as the loser
    /// at the heal, and takes the same path.
    @Test func aPolicyResolvesByTheUnionToo() throws {
        let p = try Self.splitBrainWithWritesOnBoth(policy: "discard-least-changes")
        p.toBeta.resetCounters()
        p.toAlpha.resetCounters()
        p.heal()
        try Self.expectUnionResync(p, survivor: p.pair.alpha, loser: p.pair.beta, survivorPattern: Self.alphaPattern,
                                   survivorOnly: Self.alphaOnly, loserOnly: Self.betaOnly)
    }
}
}
