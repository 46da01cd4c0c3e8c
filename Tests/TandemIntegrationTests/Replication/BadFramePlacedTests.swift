// Bad frames whose payload the secondary decrypts straight into a pool buffer (a Data prefix
// in a TLS record of its own, the payload in the records after it, as a primary sends any
// payload above 8 KiB): a good one is written, a CRC32C mismatch and a stream that ends
// mid-payload drop the connection, keep the daemon running and write nothing.
import Foundation
import Testing
import TandemCore
import TandemIO

extension Replication.BadFrameTests {
    @Test func placedPayloadsAreCheckedAndAHalfPayloadWritesNothing() throws {
        let pair = try ReplicatedPair(sizeBytes: 8 << 20)
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none")
        try pair.expectOK(try pair.beta.control().request("enable", ["name": ReplicatedPair.resource]))
        let blockBytes = 64 << 10
        let good = (0..<blockBytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 1) }
        let prefixBytes = WireEncoder.dataPrefixBytes

        let fake = try FakePrimary(pair: pair)
        let goodFrame = try Self.dataFrame(offset: 0, payload: good, crc: CRC32C.checksum(good))
        try fake.sendRaw(Array(goodFrame[0..<prefixBytes]))
        try fake.sendRaw(Array(goodFrame[prefixBytes...]))
        var acked = false
        for _ in 0..<8 where !acked {
            if case .dataAck(_, let sequence) = try fake.nextMessage() { acked = sequence == 1 }
        }
        #expect(acked, "beta did not acknowledge the good write")
        let bad = [UInt8](repeating: 0xCD, count: blockBytes)
        let badFrame = try Self.dataFrame(offset: UInt64(blockBytes), payload: bad, crc: CRC32C.checksum(bad) ^ 1,
                                          sequence: 2)
        try fake.sendRaw(Array(badFrame[0..<prefixBytes]))
        try fake.sendRaw(Array(badFrame[prefixBytes...]))
        #expect(fake.closedByPeer(), "beta kept the connection after a placed payload's CRC32C mismatch")

        let half = try FakePrimary(pair: pair)
        let halfFrame = try Self.dataFrame(offset: UInt64(2 * blockBytes), payload: bad, crc: CRC32C.checksum(bad))
        try half.sendRaw(Array(halfFrame[0..<prefixBytes]))
        try half.sendRaw(Array(halfFrame[prefixBytes..<(prefixBytes + blockBytes / 2)]))
        half.stream.close()
        #expect(half.closedByPeer(), "beta kept the connection after half a payload")
        #expect(try pair.beta.control().request("ping")["ok"] as? Bool == true)

        try pair.beta.stop()
        let volume = pair.volume(pair.beta)
        #expect(try VolumeFiles.bytes(volume, offset: 0, count: blockBytes) == good)
        let zero = [UInt8](repeating: 0, count: 2 * blockBytes)
        #expect(try VolumeFiles.bytes(volume, offset: UInt64(blockBytes), count: 2 * blockBytes) == zero)
        #expect(try String(contentsOfFile: pair.beta.logPath, encoding: .utf8).contains("CRC32C mismatch"))
    }
}
