// ReadRequest and ReadReply (types 29, 30; protocol 6): they round-trip, the reply's prefix
// encoder agrees with the whole-message encoder, and the decoder refuses what a peer must
// never send (a region that is not whole 4 KiB blocks, bytes with an errno, a bad checksum).
import TandemCore
import Testing

@Suite struct WireReadTests {
    @Test func readRequestAndReplyRoundTrip() throws {
        let request = WireMessage.readRequest(WireReadRequest(tag: 0x1234_0005, offsetBytes: 1 << 30, lengthBytes: 8192))
        let payload = [UInt8]((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let reply = WireMessage.readReply(WireReadReply(tag: 0x1234_0005, errno: 0, crc32c: CRC32C.checksum(payload), payload: payload[...]))
        let refusal = WireMessage.readReply(WireReadReply(tag: 9, errno: 16))
        var bytes: [UInt8] = []
        for message in [request, reply, refusal] { bytes += try WireEncoder.encode(message, promotionNumber: 3) }
        let frames = try WireFixtures.decodeAll(bytes)
        #expect(frames.map(\.message) == [request, reply, refusal])
    }

    @Test func theReplyPrefixIsTheWholeEncodersPrefix() throws {
        let payload = [UInt8](repeating: 0xA5, count: 4096)
        let whole = try WireEncoder.encode(
            .readReply(WireReadReply(tag: 77, errno: 0, crc32c: CRC32C.checksum(payload), payload: payload[...])), promotionNumber: 2)
        var prefix = [UInt8](repeating: 0, count: WireReadReply.prefixBytes)
        let written = prefix.withUnsafeMutableBytes {
            WireReadReply.encodePrefix(tag: 77, errno: 0, crc32c: CRC32C.checksum(payload), payloadBytes: 4096,
                                       promotionNumber: 2, into: $0)
        }
        #expect(written == WireReadReply.prefixBytes && Array(whole.prefix(written)) == prefix)
    }

    @Test func badReadFramesAreRefused() {
        func body(_ tag: UInt64, _ offset: UInt64, _ length: UInt32, _ reserved: UInt32 = 0) -> [UInt8] {
            WireFixtures.le(tag) + WireFixtures.le(offset) + WireFixtures.le(length) + WireFixtures.le(reserved)
        }
        for bad in [body(1, 512, 4096), body(1, 0, 1000), body(1, 0, 0), body(1, 0, UInt32(WireFormat.readBytesMax) + 4096),
                    body(1, 0, 4096, 1)] {
            #expect(WireFixtures.firstError(WireFixtures.rawFrame(type: 29, body: bad)) != nil)
        }
        let block = [UInt8](repeating: 1, count: 4096)
        let withErrno = WireFixtures.le(UInt64(1)) + WireFixtures.le(UInt32(5)) + WireFixtures.le(CRC32C.checksum(block)) + block
        let badChecksum = WireFixtures.le(UInt64(1)) + WireFixtures.le(UInt32(0)) + WireFixtures.le(UInt32(7)) + block
        let noBytes = WireFixtures.le(UInt64(1)) + WireFixtures.le(UInt32(0)) + WireFixtures.le(UInt32(0))
        for bad in [withErrno, badChecksum, noBytes] {
            #expect(WireFixtures.firstError(WireFixtures.rawFrame(type: 30, body: bad)) != nil)
        }
    }
}
