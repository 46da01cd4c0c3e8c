// The receive side's placed payloads: a large uncompressed Data payload is decrypted straight
// into a pool buffer, checksummed as it arrives; small, staged and compressed payloads stay
// in the decoder; a session that ends mid-payload is truncated and gives the buffer back;
// a receiver that stops taking frames stops decryption; idle channels give their buffers back.
import TandemCore
import Testing

@testable import TandemIO

/// What a receiver saw of one frame: the message, and a placed payload's bytes and checksum.
private struct Arrival {
    var message: WireMessage
    var placedBytes: [UInt8]?
    var placedCRC: UInt32?
}

extension TLSWireChannelTests {
    /// Moves `source`'s ciphertext to `destination`, taking frames between decrypted pieces
    /// as a link does (placed payloads are copied out and released); `stopAfter` frames
    /// makes the receiver refuse more, as a paused link does.
    private func moveDelivering(
        from source: TLSWireChannel, to destination: TLSWireChannel, into arrivals: inout [Arrival],
        chunkBytes: Int = 48 << 10, stopAfter: Int = .max
    ) throws {
        var buffer = [UInt8](repeating: 0, count: chunkBytes)
        try source.flush()
        while true {
            let count = buffer.withUnsafeMutableBytes { source.takeCiphertext(into: $0) }
            if count == 0 { break }
            _ = try buffer[0..<count].withUnsafeBytes {
                try receive($0, at: destination, into: &arrivals, stopAfter: stopAfter)
            }
        }
    }

    @discardableResult
    private func receive(
        _ bytes: UnsafeRawBufferPointer, at channel: TLSWireChannel, into arrivals: inout [Arrival], stopAfter: Int
    ) throws -> Bool {
        var collected = arrivals
        defer { arrivals = collected }
        return try channel.receiveCiphertext(bytes) { () throws(PeerChannelError) -> Bool in
            while collected.count < stopAfter, let frame = try channel.nextFrame() {
                var arrival = Arrival(message: frame.message)
                if let payload = channel.takeFramePayload() {
                    arrival.placedBytes = Array(UnsafeRawBufferPointer(start: payload.pointer, count: payload.bytes))
                    arrival.placedCRC = payload.crc32c
                    channel.release(payload)
                }
                collected.append(arrival)
            }
            return collected.count < stopAfter
        }
    }

    private func dataFrame(sequence: UInt64, size: Int, flags: WireDataFlags = []) -> (WireDataHeader, [UInt8]) {
        let block = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(sequence)) }
        let length = flags.contains(.compressed) ? size * 2 : size
        let header = WireDataHeader(epoch: 1, sequence: sequence, offsetBytes: sequence * 4096,
                                    lengthBytes: UInt32(length), flags: flags, crc32c: CRC32C.checksum(block))
        return (header, block)
    }

    @Test func largePayloadsAreDecryptedIntoPoolBuffersAndSmallOnesStayInTheDecoder() throws {
        let (client, server) = try pair()
        let pool = try BufferPool(totalBytes: 4 << 20)
        server.placementPool = pool
        let sizes = [512, 4096, TLSWireChannel.stagedPayloadMax, TLSWireChannel.stagedPayloadMax + 4096, 64 << 10,
                     1 << 20, 256 << 10 + 512]
        var sent: [(WireDataHeader, [UInt8])] = []
        for (index, size) in sizes.enumerated() {
            let (header, block) = dataFrame(sequence: UInt64(index + 1), size: size)
            try block.withUnsafeBytes { try client.sendData(header, payload: $0) }
            try client.send(.ping(nonce: UInt64(index)))
            sent.append((header, block))
        }
        // A compressed payload is never placed: it is decompressed from the decoder.
        let (compressed, compressedBlock) = dataFrame(sequence: UInt64(sizes.count + 1), size: 64 << 10,
                                                      flags: [.compressed])
        try compressedBlock.withUnsafeBytes { try client.sendData(compressed, payload: $0) }
        var arrivals: [Arrival] = []
        try moveDelivering(from: client, to: server, into: &arrivals)
        #expect(arrivals.count == sizes.count * 2 + 1)
        for (index, (header, block)) in sent.enumerated() {
            let arrival = arrivals[index * 2]
            #expect(arrivals[index * 2 + 1].message == .ping(nonce: UInt64(index)))
            guard case .data(let data) = arrival.message else {
                Issue.record("frame \(index * 2) is \(arrival.message.type)")
                continue
            }
            #expect(data.header == header)
            if block.count > TLSWireChannel.stagedPayloadMax {
                #expect(data.placedPayloadBytes == block.count && data.payload.isEmpty, "size \(block.count)")
                #expect(arrival.placedBytes == block, "size \(block.count)")
                #expect(arrival.placedCRC == header.crc32c, "size \(block.count)")
            } else {
                #expect(data.placedPayloadBytes == nil && Array(data.payload) == block, "size \(block.count)")
            }
        }
        #expect(arrivals.last?.message == .data(WireData(header: compressed, payload: compressedBlock[...])))
        #expect(pool.freeBytes == pool.totalBytes)
    }

    @Test func aPayloadLargerThanThePoolCanGiveStaysInTheDecoder() throws {
        let (client, server) = try pair()
        let pool = try BufferPool(totalBytes: 64 << 10)
        server.placementPool = pool
        let (header, block) = dataFrame(sequence: 1, size: 128 << 10)
        try block.withUnsafeBytes { try client.sendData(header, payload: $0) }
        var arrivals: [Arrival] = []
        try moveDelivering(from: client, to: server, into: &arrivals)
        #expect(arrivals.map(\.message) == [.data(WireData(header: header, payload: block[...]))])
        #expect(pool.freeBytes == pool.totalBytes)
    }

    /// The checksum travels with the placed bytes: a frame whose carried CRC32C does not
    /// match arrives with the computed one, for the receiver to refuse.
    @Test func aPlacedPayloadCarriesTheChecksumOfWhatArrived() throws {
        let (client, server) = try pair()
        let pool = try BufferPool(totalBytes: 1 << 20)
        server.placementPool = pool
        var (header, block) = dataFrame(sequence: 1, size: 64 << 10)
        let actual = header.crc32c
        header.crc32c ^= 1
        try block.withUnsafeBytes { try client.sendData(header, payload: $0) }
        var arrivals: [Arrival] = []
        try moveDelivering(from: client, to: server, into: &arrivals)
        #expect(arrivals.count == 1 && arrivals.first?.placedCRC == actual && arrivals.first?.placedBytes == block)
    }

    @Test func aSessionEndingMidPayloadIsTruncatedAndGivesTheBufferBack() throws {
        let (client, server) = try pair()
        let pool = try BufferPool(totalBytes: 1 << 20)
        server.placementPool = pool
        let (header, block) = dataFrame(sequence: 1, size: 64 << 10)
        var prefix = [UInt8](repeating: 0, count: WireEncoder.dataPrefixBytes)
        let prefixBytes = try prefix.withUnsafeMutableBytes {
            try WireEncoder.encodeDataPrefix(header, payloadBytes: block.count, promotionNumber: 4, into: $0)
        }
        try prefix[0..<prefixBytes].withUnsafeBytes { try client.connection.writePlaintext($0) }
        try block[0..<(20 << 10)].withUnsafeBytes { try client.connection.writePlaintext($0) }
        client.close()
        var arrivals: [Arrival] = []
        var buffer = [UInt8](repeating: 0, count: 256 << 10)
        let count = buffer.withUnsafeMutableBytes { client.takeCiphertext(into: $0) }
        let open = try buffer[0..<count].withUnsafeBytes { try receive($0, at: server, into: &arrivals, stopAfter: .max) }
        #expect(open == false && arrivals.isEmpty)
        #expect(pool.freeBytes < pool.totalBytes)  // the payload was being placed
        #expect(throws: PeerChannelError.wire(.truncated(bufferedBytes: prefixBytes + (20 << 10)))) {
            try server.finish()
        }
        server.discardPlacedPayloads()
        #expect(pool.freeBytes == pool.totalBytes)
    }

    /// A receiver that stops taking frames (a paused link) stops decryption: the rest waits
    /// as ciphertext and arrives, in order, from a later call with no new bytes.
    @Test func aReceiverThatStopsTakingFramesStopsDecryption() throws {
        let (client, server) = try pair()
        let pool = try BufferPool(totalBytes: 4 << 20)
        server.placementPool = pool
        var sent: [WireDataHeader] = []
        for sequence in 1...6 {
            let (header, block) = dataFrame(sequence: UInt64(sequence), size: 128 << 10)
            try block.withUnsafeBytes { try client.sendData(header, payload: $0) }
            sent.append(header)
        }
        var arrivals: [Arrival] = []
        // All of it in one receive, as a socket's buffer would hold it.
        try moveDelivering(from: client, to: server, into: &arrivals, chunkBytes: 1 << 20, stopAfter: 2)
        #expect(arrivals.count == 2)
        #expect(server.connection.ciphertextCapacityBytes > 3 * (128 << 10))  // kept as ciphertext
        #expect(pool.freeBytes == pool.totalBytes)  // no payload placed ahead of its frame
        try receive(UnsafeRawBufferPointer(start: nil, count: 0), at: server, into: &arrivals, stopAfter: .max)
        let headers = arrivals.map { arrival -> WireDataHeader? in
            if case .data(let data) = arrival.message { return data.header }
            return nil
        }
        #expect(headers == sent)
        #expect(arrivals.allSatisfy { $0.placedBytes?.count == 128 << 10 })
    }

    @Test func anIdleChannelGivesBackWhatItGrew() throws {
        let (client, server) = try pair()
        let (header, block) = dataFrame(sequence: 1, size: 1 << 20)
        try block.withUnsafeBytes { try client.sendData(header, payload: $0) }
        try move(from: client, to: server)
        #expect(try server.nextFrame()?.message == .data(WireData(header: header, payload: block[...])))
        // A megabyte of acks waits unsent: the server's outgoing queue grows to hold it.
        for sequence in 1...40_000 { try server.send(.dataAck(epoch: 1, sequence: UInt64(sequence))) }
        try server.flush()
        // The receiver's decoder grew to hold the megabyte (no pool to place it in).
        #expect(server.retainedBufferBytes > 2 << 20)
        server.releaseIdleMemory()
        #expect(server.retainedBufferBytes > 1 << 20)  // the unsent acks keep their queue
        try move(from: server, to: client)
        var acks = 0
        while case .dataAck? = try client.nextFrame()?.message { acks += 1 }
        #expect(acks == 40_000)
        server.releaseIdleMemory()
        client.releaseIdleMemory()
        #expect(server.retainedBufferBytes <= TLSWireChannel.idleRetainedBytesMax)
        #expect(client.retainedBufferBytes <= TLSWireChannel.idleRetainedBytesMax)
        // Both work as before once traffic resumes, and a small exchange grows nothing back.
        try client.send(.ping(nonce: 5))
        try move(from: client, to: server)
        #expect(try server.nextFrame()?.message == .ping(nonce: 5))
        #expect(server.retainedBufferBytes <= TLSWireChannel.idleRetainedBytesMax)
    }
}
