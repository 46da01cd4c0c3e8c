// A peer that sends garbage in the bitmap exchange of a split brain's resolve (docs/protocol.md
// *Bitmap exchange*) is refused with a clear error and changes nothing. The survivor is a real
// daemon (alpha) after a real split brain; the loser is hand-driven: a TLS listener with
// beta's certificate at beta's address (beta itself stopped) that completes each handshake
// alpha dials and then sends one kind of garbage. For each kind alpha must drop the link,
// say why (status `last_error`), leave its metadata file and its parted bitmap on disk byte
// for byte as they were, decide no resync plan, and go on serving; at the end the real beta
// comes back and the resolve completes by the union, the volumes identical. A primary that
// never asked for a bitmap (no split brain) refuses one as well, as does a secondary.
import Foundation
import Testing
import TandemCore
import TandemIO

extension Replication {
@Suite(.serialized) struct SplitBrainBitmapGarbageTests {
    typealias PartitionedPair = SplitBrainTests.PartitionedPair
    static let blockBytes: UInt32 = 4096
    /// 16 MiB in 4 KiB blocks: what the fake loser's chunks cover.
    static let volumeBlocks: UInt32 = UInt32(SplitBrainTests.sizeBytes) / blockBytes

    /// The runs of a chunk as they travel (u32 little-endian each).
    static func runs(_ values: [UInt32]) -> [UInt8] {
        values.flatMap { value in (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    }

    static func chunk(_ first: UInt64, _ count: UInt32, _ runValues: [UInt32], blockBytes: UInt32 = blockBytes) -> WireMessage {
        .bitmapChunk(WireBitmapChunk(firstBlock: first, blockCount: count, blockBytes: blockBytes, runs: runs(runValues)))
    }

    /// Each kind of garbage: its frames and the words alpha's error must hold.
    static var garbage: [(name: String, frames: [WireMessage], error: String)] {
        let half = volumeBlocks / 2
        return [
            ("runs that do not add up", [chunk(0, volumeBlocks, [100, 10])],
             "bitmap chunk runs cover 110 blocks, the chunk says \(volumeBlocks)"),
            ("an empty run after the first", [chunk(0, volumeBlocks, [volumeBlocks - 4, 0, 4])],
             "bitmap chunk run 1 is empty"),
            ("bits past the volume's end", [chunk(0, volumeBlocks * 2, [volumeBlocks * 2 - 8, 8])],
             "outside the bitmap's \(volumeBlocks) blocks"),
            ("a chunk beyond the volume after a good one", [chunk(0, half, [half]), chunk(UInt64(half), volumeBlocks, [volumeBlocks])],
             "outside the bitmap's \(volumeBlocks) blocks"),
            ("chunks out of order", [chunk(0, half, [half]), chunk(UInt64(half) + 16, half - 16, [half - 16])],
             "starts at block \(half + 16), expected \(half)"),
            ("a chunk sent twice", [chunk(0, half, [half - 1, 1]), chunk(0, half, [half - 1, 1])],
             "starts at block 0, expected \(half)"),
            ("a block size that changes", [chunk(0, half, [half]), chunk(UInt64(half), half / 2, [half / 2], blockBytes: 8192)],
             "changed block size from 4096 to 8192"),
            ("a total that disagrees with the chunks", [chunk(0, volumeBlocks, [volumeBlocks - 96, 96]), .bitmapDone(setBlocks: 97)],
             "BitmapDone says 97 set bits, its chunks carried 96"),
            ("BitmapDone before the chunks covered the volume", [chunk(0, half, [half - 2, 2]), .bitmapDone(setBlocks: 2)],
             "BitmapDone came after \(half) of \(volumeBlocks) blocks"),
            ("BitmapDone without chunks", [.bitmapDone(setBlocks: 0)], "BitmapDone came after 0 of 0 blocks"),
            // The decoder's own refusal (the encoder will not write it: `rawChunkWithPartialRun`).
            ("runs that are not whole u32 runs", [], "runs of 6 bytes are not whole u32 runs"),
        ]
    }

    /// A BitmapChunk frame whose runs are 6 bytes (a run and a half), header sealed.
    static func rawChunkWithPartialRun(promotion: UInt64) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: WireBitmapChunk.fixedBytes)
        body[8] = 2  // two blocks
        body[13] = 0x10  // 4096 bytes each
        body += [1, 0, 0, 0, 1, 0]
        var header = [UInt8](repeating: 0, count: WireFormat.headerBytes)
        header.withUnsafeMutableBytes {
            WireFrameHeader(type: .bitmapChunk, bodyBytes: body.count, promotionNumber: promotion).encode(into: $0)
        }
        return header + body
    }

    /// A hand-driven loser at beta's address: accepts alpha's dials one at a time.
    final class FakeLoser {
        private var fd: Int32
        private var connection: Int32 = -1
        private var stream: TLSBlockingStream?
        private var decoder = WireDecoder(checksOrdering: false)
        private var buffer = [UInt8](repeating: 0, count: 64 << 10)

        init(address: String) throws {
            let port = UInt16(address.split(separator: ":").last!)!
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var on: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
            var local = LinkProxy.Engine.loopback(port: Int(port))
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0, listen(fd, 8) == 0 else {
                close(fd)
                throw HarnessError("listen on \(address): errno \(errno)")
            }
        }

        deinit { release() }

        /// Closes the connection and the listener (beta's address is free again).
        func release() {
            if connection >= 0 { close(connection) }
            if fd >= 0 { close(fd) }
            connection = -1
            fd = -1
        }

        /// Accepts the next dial and answers its Hello as a loser that parted at the Hello's
        /// generation; returns alpha's Hello.
        func acceptHandshake(pair: ReplicatedPair) throws -> WireHello {
            if connection >= 0 { close(connection) }
            connection = -1
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 30_000) > 0 else { throw HarnessError("alpha did not dial within 30 s") }
            connection = LinkProxy.Engine.acceptCloseOnExec(fd)
            guard connection >= 0 else { throw HarnessError("accept: errno \(errno)") }
            var timeout = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let context = try TLSContext(
                role: .server, caFile: pair.certs.file("ca.crt"), certFile: pair.certs.file("beta.crt"),
                keyFile: pair.certs.file("beta.key"), expectedPeerName: "alpha")
            stream = TLSBlockingStream(connection: try TLSConnection(context: context), fd: connection)
            decoder = WireDecoder(checksOrdering: false)
            try stream!.handshake()
            guard case .hello(let hello) = try nextMessage(), let tail = hello.node else {
                throw HarnessError("alpha's first frame is no Hello with generations")
            }
            let promotion = hello.promotionNumber
            try send(.hello(WireHello(role: .secondary, nodeName: "beta", resourceName: ReplicatedPair.resource,
                                      volumeSizeBytes: UInt64(pair.sizeBytes), generations: WireGenerations(current: 0, bitmap: 0),
                                      promotionNumber: promotion, node: WireNodeGenerations(current: 0, bitmap: tail.bitmap))),
                     promotion: promotion)
            try send(.helloReply(WireHelloReply()), promotion: promotion)
            guard case .helloReply(let reply) = try nextMessage(), reply.isAccepted else {
                throw HarnessError("alpha did not accept the fake loser")
            }
            return hello
        }

        func send(_ message: WireMessage, promotion: UInt64) throws {
            try stream!.write(try WireEncoder.encode(message, promotionNumber: promotion))
        }

        func sendRaw(_ bytes: [UInt8]) throws { try stream!.write(bytes) }

        func nextMessage() throws -> WireMessage {
            while true {
                if let frame = try decoder.next() { return frame.message }
                let count = try buffer.withUnsafeMutableBytes { try stream!.read(into: $0) }
                guard count > 0 else { throw HarnessError("alpha closed the connection") }
                decoder.feed(buffer[0..<count])
            }
        }

        /// True once alpha has ended the connection (its pings and the like are skipped);
        /// false if it still holds it after the receive timeout.
        func closedByPeer() -> Bool {
            do {
                while true { _ = try nextMessage() }
            } catch let error as HarnessError {
                return error.description.contains("closed")
            } catch {
                return errno != EAGAIN && errno != EWOULDBLOCK
            }
        }
    }

    static func files(_ daemon: DaemonProcess) -> (metadata: Data?, parted: Data?) {
        (FileManager.default.contents(atPath: "\(daemon.stateDir)/\(ReplicatedPair.resource).md"),
         FileManager.default.contents(atPath: "\(daemon.stateDir)/\(ReplicatedPair.resource).parted-bitmap"))
    }

    @Test func aLoserSendingGarbageBitmapFramesIsRefusedAndChangesNothing() throws {
        let p = try PartitionedPair()
        let alphaBlocks = 0..<16
        try p.partitionAndWriteOnBoth(alphaBlocks: alphaBlocks, betaBlocks: 100..<116)
        p.heal()
        for daemon in [p.pair.alpha, p.pair.beta] {
            try p.pair.waitFor(daemon, "split brain reported") { $0["split_brain"] as? Bool == true }
        }
        try p.pair.beta.stop()
        let fake = try FakeLoser(address: p.pair.betaAddress)
        try p.pair.expectOK(try p.pair.alpha.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "peer"]))

        // The first dial: the survivor asks for the bitmap since the generation it parted at.
        let hello = try fake.acceptHandshake(pair: p.pair)
        let tail = try #require(hello.node)
        #expect(tail.flags.contains(.splitBrainResync) && tail.bitmap != 0, "\(tail)")
        let before = Self.files(p.pair.alpha)
        #expect(before.metadata != nil && before.parted != nil, "alpha keeps its metadata and parted bitmap")
        var first = true
        for (name, frames, error) in Self.garbage {
            let asked = first ? hello : try fake.acceptHandshake(pair: p.pair)
            first = false
            #expect(asked.node?.flags.contains(.splitBrainResync) == true, "\(name): alpha stopped asking")
            for frame in frames { try fake.send(frame, promotion: asked.promotionNumber) }
            if frames.isEmpty { try fake.sendRaw(Self.rawChunkWithPartialRun(promotion: asked.promotionNumber)) }
            #expect(fake.closedByPeer(), "alpha kept the link after \(name)")
            let status = try p.pair.waitFor(p.pair.alpha, "alpha's error after \(name)") {
                ($0["last_error"] as? String)?.contains(error) == true
            }
            #expect((status["last_error"] as? String)?.contains("protocol violation") == true, "\(name): \(status)")
            #expect(status["split_brain_resync"] == nil, "\(name) decided a resync: \(status)")
            let after = Self.files(p.pair.alpha)
            #expect(after.metadata == before.metadata, "\(name) changed alpha's metadata on disk")
            #expect(after.parted == before.parted, "\(name) changed alpha's parted bitmap on disk")
            #expect(try p.pair.alpha.control().request("ping")["ok"] as? Bool == true, "alpha died after \(name)")
        }
        // Alpha serves on: its writes are there; then the real loser resolves by the union.
        let reader = try RawNBDClient.transmitting(socketPath: p.pair.nbdSocket(p.pair.alpha), exportName: ReplicatedPair.resource)
        #expect(try reader.read(offset: 0, length: 4096) == SplitBrainTests.alphaPattern(0))
        reader.disconnect()
        fake.release()
        try p.pair.beta.start()
        try p.pair.expectOK(try p.pair.beta.control().request("resolve", ["name": ReplicatedPair.resource, "discard": "local"]))
        try p.pair.waitFor(p.pair.beta, "the loser secondary and UpToDate") {
            $0["role"] as? String == "secondary" && $0["disk_state"] as? String == "UpToDate"
        }
        let settled = try p.pair.waitFor(p.pair.alpha, "the survivor's peer UpToDate") {
            $0["peer_disk_state"] as? String == "UpToDate" && $0["out_of_sync_bytes"] as? Int == 0
        }
        #expect((settled["split_brain_resync"] as? JSONObject)?["plan"] as? String == "split-brain-union", "\(settled)")
        try p.pair.alpha.stop()
        try p.pair.beta.stop()
        #expect(try VolumeFiles.sha256(p.pair.volume(p.pair.alpha)) == VolumeFiles.sha256(p.pair.volume(p.pair.beta)))
    }

    /// A primary in no split brain asked for no bitmap: a BitmapChunk is a protocol violation
    /// (it was ignored before), the link drops, and the primary serves on.
    @Test func aPrimaryThatAskedForNoBitmapRefusesAChunk() throws {
        let pair = try ReplicatedPair(sizeBytes: SplitBrainTests.sizeBytes)
        let fake = try FramePromotionTests.FakeSecondary()
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", fake.listener.address), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.expectOK(try pair.alpha.control().request("enable", ["name": ReplicatedPair.resource]))
        let frame = try fake.acceptHandshake(pair: pair, promotion: 0)
        guard case .hello(let hello) = frame.message else { throw HarnessError("alpha sent \(frame.message.type) first") }
        #expect(hello.node?.flags.contains(.splitBrainResync) != true, "\(hello)")
        try fake.send(Self.chunk(0, Self.volumeBlocks, [Self.volumeBlocks - 1, 1]), promotion: 0)
        #expect(fake.closedByPeer(), "alpha kept the link")
        try pair.waitFor(pair.alpha, "alpha's error") {
            ($0["last_error"] as? String)?.contains("protocol violation: a bitmapChunk outside a split-brain resolve") == true
        }
        #expect(try pair.status(pair.alpha)["split_brain_resync"] == nil)
        let client = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: ReplicatedPair.resource)
        #expect(try client.read(offset: 0, length: 4096) == [UInt8](repeating: 0, count: 4096))
        client.disconnect()
        try pair.alpha.stop()
    }

    /// A secondary never asks for a bitmap: its primary's BitmapChunk drops the link and
    /// changes nothing on disk.
    @Test func aSecondaryRefusesABitmapChunkFromItsPrimary() throws {
        let pair = try ReplicatedPair(sizeBytes: SplitBrainTests.sizeBytes)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        let fake = try BadFrameTests.FakePrimary(pair: pair)
        #expect(fake.refusal == nil)
        let before = Self.files(pair.beta)
        try fake.send(Self.chunk(0, Self.volumeBlocks, [Self.volumeBlocks]))
        #expect(fake.closedByPeer(), "beta kept the link")
        #expect(try pair.beta.control().request("ping")["ok"] as? Bool == true)
        #expect(Self.files(pair.beta).metadata == before.metadata, "the chunk changed beta's metadata on disk")
        try pair.beta.stop()
        #expect(try String(contentsOfFile: pair.beta.logPath, encoding: .utf8).contains("a primary sent bitmapChunk"))
    }
}
}
