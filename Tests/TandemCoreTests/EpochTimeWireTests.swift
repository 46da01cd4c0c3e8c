// EpochTime (type 40, protocol 9; docs/protocol.md): the primary's wall-clock time of an
// epoch it closes. The frame round-trips through the codec, and a body of any other length
// is refused at the header.
import Testing
import TandemCore

@Suite struct EpochTimeWireTests {
    @Test func theEpochTimeFrameRoundTripsAndAWrongLengthIsRefused() throws {
        let message = WireMessage.epochTime(epoch: 42, wallClockNs: 1_796_616_727_300_000_000)
        let frames = try WireFixtures.decodeAll(try WireEncoder.encode(message, promotionNumber: 3))
        #expect(frames.map(\.message) == [message])
        #expect(WireMessageType(rawValue: 40) == .epochTime && WireFormat.wallClockVersion == 9)
        let short = WireFixtures.rawFrame(type: 40, body: WireFixtures.le(UInt64(42)))
        #expect(WireFixtures.firstError(short) != nil, "an 8-byte EpochTime decoded")
    }
}
