// A Data payload placed outside the decoder (WireDecoder.placeablePayload, beginPlacing):
// offered only for an uncompressed frame whose fields have arrived and whose payload has
// not, with the part already buffered handed over; the frame comes out of `next` in order,
// its fields validated and ordered as any frame's, and an unfinished one is truncated.
import Testing

@testable import TandemCore

@Suite struct WireDecoderPlacingTests {
    typealias F = WireFixtures

    private func encoded(_ message: WireMessage) throws -> [UInt8] {
        try WireEncoder.encode(message, promotionNumber: 3)
    }

    private func block(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13) } }

    @Test func aPayloadIsPlacedAndItsFrameComesOutInOrder() throws {
        let payload = block(20_000)
        let data = F.data(sequence: 1, epoch: 1, payload: payload)
        let frame = try encoded(data)
        let prefixBytes = WireFormat.headerBytes + WireFormat.dataFixedBytes
        var decoder = WireDecoder()
        decoder.feed(try encoded(.ping(nonce: 1)) + frame[0..<(prefixBytes + 1000)])
        // The ping comes first: nothing is offered while a frame before the Data waits.
        #expect(decoder.placeablePayload(minimumRemainingBytes: 1) == nil)
        #expect(try decoder.next()?.message == .ping(nonce: 1))
        #expect(decoder.placeablePayload(minimumRemainingBytes: 19_001) == nil)  // only 19,000 to come
        guard case .data(let expected) = data, let header = decoder.placeablePayload(minimumRemainingBytes: 4096) else {
            Issue.record("no placeable payload")
            return
        }
        #expect(header == expected.header)
        var placed: [UInt8] = []
        try decoder.beginPlacing { placed += $0 }
        #expect(placed == Array(payload[0..<1000]))
        #expect(decoder.placedPayloadRemainingBytes == 19_000)
        #expect(decoder.bufferedBytes == prefixBytes + 1000)
        #expect(try decoder.next() == nil)
        placed += payload[1000...]
        decoder.placedPayloadReceived(19_000)
        // Bytes after the payload go into the decoder again.
        decoder.feed(try encoded(.ping(nonce: 2)))
        let frames = [try decoder.next(), try decoder.next()]
        #expect(frames.map { $0?.message } == [
            .data(WireData(header: expected.header, payload: [], placedPayloadBytes: payload.count)), .ping(nonce: 2),
        ])
        #expect(frames.first??.header.promotionNumber == 3)
        #expect(placed == payload)
        try decoder.finish()
    }

    @Test func compressedAndCompleteFramesAreNotOffered() throws {
        let header = WireDataHeader(epoch: 1, sequence: 1, offsetBytes: 0, lengthBytes: 65_536, flags: [.compressed],
                                    crc32c: 0)
        let compressed = try encoded(.data(WireData(header: header, payload: block(30_000)[...])))
        var decoder = WireDecoder()
        decoder.feed(compressed[0..<100])
        #expect(decoder.placeablePayload(minimumRemainingBytes: 1) == nil)
        decoder.feed(compressed[100...])
        #expect(try decoder.next()?.message == .data(WireData(header: header, payload: block(30_000)[...])))
        decoder.feed(try encoded(F.data(sequence: 2, epoch: 1, payload: block(8192))))
        #expect(decoder.placeablePayload(minimumRemainingBytes: 1) == nil)  // all of it is here
    }

    @Test func aPlacedFrameIsCheckedForOrderAndTruncatedWhenTheStreamEnds() throws {
        var decoder = WireDecoder()
        decoder.feed(try encoded(F.data(sequence: 1, epoch: 1)))
        _ = try decoder.next()
        decoder.feed(try encoded(F.data(sequence: 5, epoch: 1, payload: block(20_000))).prefix(200))
        #expect(decoder.placeablePayload(minimumRemainingBytes: 4096) != nil)
        #expect(throws: WireError.self) { try decoder.beginPlacing { _ in Issue.record("an out-of-order payload was placed") } }
        #expect(throws: WireError.self) { try decoder.next() }

        var truncated = WireDecoder()
        truncated.feed(try encoded(F.data(sequence: 1, epoch: 1, payload: block(20_000))).prefix(100))
        #expect(truncated.placeablePayload(minimumRemainingBytes: 4096) != nil)
        try truncated.beginPlacing { _ in }
        truncated.placedPayloadReceived(5000)
        #expect(throws: WireError.truncated(bufferedBytes: 100 + 5000)) { try truncated.finish() }
    }

    @Test func invalidFieldsFailTheDecoderBeforeAnyPayloadIsPlaced() throws {
        var fields = F.le(UInt64(1)) + F.le(UInt64(1)) + F.le(UInt64(0)) + F.le(UInt32(20_000))
        fields += F.le(UInt16(0)) + F.le(UInt16(7)) + F.le(UInt32(0))  // reserved field set
        var decoder = WireDecoder()
        decoder.feed(F.rawFrame(type: WireMessageType.data.rawValue, body: fields, bodyLength: UInt32(fields.count + 20_000)))
        #expect(decoder.placeablePayload(minimumRemainingBytes: 1) == nil)
        #expect(throws: WireError.inconsistentBody(type: .data, reason: "reserved field is not zero")) { try decoder.next() }
    }
}
