// The ciphertext queues under a TLS session: bytes handed to the socket stay where they are
// while OpenSSL writes more, lent ciphertext is read where it lies and only what the session
// left unread is kept, and a whole channel works when its socket sends straight from them.
import TandemCore
import Testing

@testable import TandemIO

@Suite struct CiphertextQueueTests {
    @Test func bytesBeingSentStayPutWhileMoreAreWritten() {
        let outgoing = OutgoingCiphertext()
        let first = [UInt8](repeating: 0xA1, count: 40_000)
        outgoing.append(first, count: first.count)
        let inFlight = outgoing.nextSend()
        #expect(inFlight.count == first.count)
        // OpenSSL writes more while the socket's send of `inFlight` is in flight: enough to
        // make a single queue grow (and move) its storage.
        for round in 0..<8 {
            let more = [UInt8](repeating: UInt8(round), count: 100_000)
            outgoing.append(more, count: more.count)
        }
        #expect(Array(inFlight) == first)
        #expect(outgoing.nextSend().baseAddress == inFlight.baseAddress)
        outgoing.sent(10_000)
        let rest = outgoing.nextSend()
        #expect(rest.baseAddress == inFlight.baseAddress! + 10_000 && rest.count == 30_000)
        outgoing.sent(30_000)
        // Then the bytes written meanwhile, in order.
        var seen: [UInt8] = []
        while true {
            let next = outgoing.nextSend()
            if next.isEmpty { break }
            seen += next
            outgoing.sent(next.count)
        }
        #expect(seen.count == 800_000)
        #expect(seen.first == 0 && seen[100_000] == 1 && seen.last == 7)
        #expect(outgoing.count == 0)
    }

    @Test func lentBytesAreReadInPlaceAndOnlyTheRestIsKept() {
        let queue = CiphertextQueue()
        let bytes = (0..<1000).map { UInt8($0 & 0xFF) }
        var taken = [UInt8](repeating: 0, count: 600)
        bytes.withUnsafeBytes { lent in
            queue.lending(lent) {
                #expect(queue.count == 1000)
                #expect(taken.withUnsafeMutableBytes { queue.read(into: $0.baseAddress!, maxBytes: 600) } == 600)
                // Nothing was copied in: the queue owns no room yet.
                #expect(queue.capacity == 0)
            }
        }
        #expect(Array(taken) == Array(bytes[0..<600]))
        #expect(queue.count == 400)
        #expect(Array(queue.ownedBytes) == Array(bytes[600...]))
    }

    /// Two channels whose ciphertext moves as a PeerSocket moves it: sent from where it lies
    /// (`nextBytesToSend`/`sent`, in pieces) and received by lending.
    @Test func channelsExchangeDataSentFromTheQueueInPlace() throws {
        let certs = TestCertificates.shared
        let client = TLSWireChannel(
            connection: try TLSConnection(context: certs.context(.client, node: "alpha", expecting: "beta")),
            promotionNumber: 1)
        let server = TLSWireChannel(
            connection: try TLSConnection(context: certs.context(.server, node: "beta", expecting: "alpha")),
            promotionNumber: 1)
        try client.start()
        for _ in 0..<10 {
            try Self.send(from: client, to: server)
            try Self.send(from: server, to: client)
        }
        #expect(client.isEstablished && server.isEstablished)
        var sent: [WireDataHeader] = []
        for sequence in 1...6 {
            let block = [UInt8](repeating: UInt8(sequence), count: 256 << 10)
            let header = WireDataHeader(epoch: 1, sequence: UInt64(sequence), offsetBytes: UInt64(sequence) << 20,
                                        lengthBytes: UInt32(block.count), flags: [], crc32c: CRC32C.checksum(block))
            try block.withUnsafeBytes { try client.sendData(header, payload: $0) }
            sent.append(header)
        }
        try Self.send(from: client, to: server)
        var received: [WireData] = []
        while let frame = try server.nextFrame() {
            if case .data(let data) = frame.message { received.append(data) }
        }
        #expect(received.map(\.header) == sent)
        #expect(received.allSatisfy { CRC32C.checksum($0.payload) == $0.header.crc32c })
    }

    /// Sends in pieces of at most 5,000 bytes, as a socket with a small send window would.
    private static func send(from source: TLSWireChannel, to destination: TLSWireChannel) throws {
        try source.flush()
        while true {
            let next = source.nextBytesToSend()
            if next.isEmpty { return }
            let piece = UnsafeRawBufferPointer(rebasing: next[0..<min(next.count, 5000)])
            _ = try destination.receiveCiphertext(piece)
            source.sent(piece.count)
        }
    }
}
