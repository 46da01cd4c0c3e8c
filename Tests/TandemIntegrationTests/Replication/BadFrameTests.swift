// An authenticated peer (a real certificate, a correct Hello) that then sends bad frames:
// the secondary drops the connection, keeps running, and writes nothing.
import Foundation
import Testing
import TandemCore
import TandemIO

extension Replication {
@Suite struct BadFrameTests {
    /// A hand-driven "alpha": TLS with alpha's certificate, then the session handshake.
    final class FakePrimary {
        let fd: Int32
        let stream: TLSBlockingStream
        var decoder = WireDecoder(checksOrdering: false)
        private var buffer = [UInt8](repeating: 0, count: 64 << 10)

        /// Connects and sends a Hello; `refusal` is set when beta refused it.
        var refusal: WireHelloReply?

        init(pair: ReplicatedPair, resource: String = "r0", sizeBytes: Int? = nil) throws {
            let context = try TLSContext(
                role: .client, caFile: pair.certs.file("ca.crt"), certFile: pair.certs.file("alpha.crt"),
                keyFile: pair.certs.file("alpha.key"), expectedPeerName: "beta")
            fd = try connectTo(pair.betaAddress)
            stream = TLSBlockingStream(connection: try TLSConnection(context: context), fd: fd)
            try stream.handshake()
            try send(.hello(WireHello(role: .primary, nodeName: "alpha", resourceName: resource,
                                      volumeSizeBytes: UInt64(sizeBytes ?? pair.sizeBytes),
                                      generations: WireGenerations(current: 99, bitmap: 0), promotionNumber: 0)))
            let first = try nextMessage()
            if case .helloReply(let reply) = first, !reply.isAccepted {
                refusal = reply
                return
            }
            guard case .hello = first, case .helloReply(let reply) = try nextMessage(), reply.isAccepted
            else { throw HarnessError("beta did not accept the Hello") }
            try send(.helloReply(WireHelloReply()))
            guard case .replicaHello = try nextMessage() else { throw HarnessError("no ReplicaHello from beta") }
        }

        deinit { close(fd) }

        func send(_ message: WireMessage) throws { try stream.write(try WireEncoder.encode(message, promotionNumber: 0)) }
        func sendRaw(_ bytes: [UInt8]) throws { try stream.write(bytes) }

        func nextMessage() throws -> WireMessage {
            while true {
                if let frame = try decoder.next() { return frame.message }
                let count = try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }
                guard count > 0 else { throw HarnessError("beta closed the connection") }
                decoder.feed(buffer[0..<count])
            }
        }

        /// True once beta has ended the connection (anything read before is ignored).
        func closedByPeer(timeoutSeconds: Int = 10) -> Bool {
            var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            while true {
                do {
                    let count = try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }
                    if count == 0 { return true }
                } catch {
                    // A receive timeout means beta still holds the connection open.
                    return errno != EAGAIN && errno != EWOULDBLOCK
                }
            }
        }
    }

    static func dataFrame(offset: UInt64, payload: [UInt8], crc: UInt32, sequence: UInt64 = 1, epoch: UInt64 = 1)
        throws -> [UInt8]
    {
        let header = WireDataHeader(epoch: epoch, sequence: sequence, offsetBytes: offset,
                                    lengthBytes: UInt32(payload.count), crc32c: crc)
        var prefix = [UInt8](repeating: 0, count: WireEncoder.dataPrefixBytes)
        let count = try prefix.withUnsafeMutableBytes {
            try WireEncoder.encodeDataPrefix(header, payloadBytes: payload.count, promotionNumber: 0, into: $0)
        }
        return Array(prefix[0..<count]) + payload
    }

    @Test func badFramesFromAnAuthenticatedPeerDropTheConnectionAndWriteNothing() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        let block = [UInt8](repeating: 0xAB, count: 4096)
        // A well-formed header (valid CRC) announcing a body far beyond the Data bound.
        var header: [UInt8] = [0x54, 0x4E, 0x44, 0x4D, 1, 3, 0, 0, 0x00, 0x00, 0xFF, 0x7F] + [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: CRC32C.checksum(header).littleEndian) { header += $0 }
        let cases: [(String, [UInt8])] = [
            ("CRC32C mismatch", try Self.dataFrame(offset: 0, payload: block, crc: CRC32C.checksum(block) ^ 1)),
            ("garbage", [UInt8](repeating: 0x5A, count: 300)),
            ("oversized body", header),
            ("write past the end", try Self.dataFrame(offset: 8 << 20, payload: block, crc: CRC32C.checksum(block))),
            ("epoch out of order", try Self.dataFrame(offset: 0, payload: block, crc: CRC32C.checksum(block), epoch: 5)),
            ("truncated frame", Array(try Self.dataFrame(offset: 0, payload: block, crc: CRC32C.checksum(block)).prefix(100))),
        ]
        for (name, bytes) in cases {
            let fake = try FakePrimary(pair: pair)
            try fake.sendRaw(bytes)
            if name == "truncated frame" { fake.stream.close() }
            #expect(fake.closedByPeer(), "beta kept the connection after \(name)")
            #expect(try pair.beta.control().request("ping")["ok"] as? Bool == true, "beta died after \(name)")
        }
        try pair.beta.stop()
        let zero = [UInt8](repeating: 0, count: 4096)
        #expect(try VolumeFiles.bytes(pair.volume(pair.beta), offset: 0, count: 4096) == zero)
        // The whole log: the first case's reason is long out of the tail by now.
        #expect(try String(contentsOfFile: pair.beta.logPath, encoding: .utf8).contains("CRC32C mismatch"))
    }

    /// A compressed Data frame that claims a 4 MiB block in 16 bytes: LZ4 cannot expand that
    /// far, so the secondary refuses it by its size (WirePayload.restoredBytes, asked before
    /// the buffer is allocated), drops the connection and writes nothing.
    @Test func aCompressedFrameClaimingMoreThanItsPayloadCanHoldIsRefusedByItsSize() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "lz4")
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        let claimedBytes = 4 << 20
        let payload = [UInt8](repeating: 0x11, count: 16)
        let header = WireDataHeader(epoch: 1, sequence: 1, offsetBytes: 0, lengthBytes: UInt32(claimedBytes),
                                    flags: [.compressed], crc32c: 0)
        var prefix = [UInt8](repeating: 0, count: WireEncoder.dataPrefixBytes)
        let count = try prefix.withUnsafeMutableBytes {
            try WireEncoder.encodeDataPrefix(header, payloadBytes: payload.count, promotionNumber: 0, into: $0)
        }
        let fake = try FakePrimary(pair: pair)
        try fake.sendRaw(Array(prefix[0..<count]) + payload)
        #expect(fake.closedByPeer(), "beta kept the connection")
        #expect(try pair.beta.control().request("ping")["ok"] as? Bool == true)
        try pair.beta.stop()
        let log = try String(contentsOfFile: pair.beta.logPath, encoding: .utf8)
        #expect(log.contains("a compressed payload of 16 bytes cannot restore to \(claimedBytes) bytes"))
        #expect(try VolumeFiles.bytes(pair.volume(pair.beta), offset: 0, count: 4096) == [UInt8](repeating: 0, count: 4096))
    }

    @Test func helloForAnUnknownResourceOrAnotherSizeIsRefusedWithAReason() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        // A second connection from the same primary replaces a live one.
        let first = try FakePrimary(pair: pair)
        let second = try FakePrimary(pair: pair)
        #expect(first.closedByPeer())
        #expect(second.refusal == nil)
        let unknown = try FakePrimary(pair: pair, resource: "nope")
        #expect(unknown.refusal?.refusal == .unknownResource)
        let resized = try FakePrimary(pair: pair, sizeBytes: 4 << 20)
        #expect(resized.refusal?.refusal == .sizeMismatch)
        #expect(resized.refusal?.reason.contains("4194304") == true)
        #expect(try pair.beta.control().request("ping")["ok"] as? Bool == true)
    }
}
}

func connectTo(_ address: String) throws -> Int32 {
    let port = UInt16(address.split(separator: ":").last!)!
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_addr.s_addr = inet_addr("127.0.0.1")
    sin.sin_port = port.bigEndian
    let ok = withUnsafePointer(to: &sin) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard ok else {
        close(fd)
        throw HarnessError("connect to \(address) failed")
    }
    return fd
}
