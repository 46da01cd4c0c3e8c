// The NBD receive path parses requests in batches (issue 15 item 3): one receive into the
// connection's 64 KiB staging buffer carries many 28-byte headers, a header may straddle two
// receives, and a bad one in the middle of a batch ends the connection without obeying what
// follows it. Real daemon, hand-written requests (RawNBDClient), checked against the volume.
import Foundation
import Testing

extension Integration {
    @Suite struct NBDRequestBatch {
        static let volumeBytes = 16 << 20
        static let blockBytes = 4096

        @Test func aBatchLargerThanTheReceiveBufferAndTheSlotsIsAnsweredInFull() throws {
            let export = try NBDExport(sizeBytes: Self.volumeBytes, content: .random)
            let client = try RawNBDClient.transmitting(socketPath: export.socketPath, exportName: export.name)
            // 2,400 headers are 67,200 bytes: more than the 64 KiB staging buffer (so one header
            // lies across its end and is completed by a later receive), and far more than the
            // connection's 128 request slots (so parsing stops and resumes as replies leave).
            let count = 2_400
            let blocks = Self.volumeBytes / Self.blockBytes
            var batch: [UInt8] = []
            batch.reserveCapacity(count * 28)
            for index in 0..<count {
                let block = index * 7 % blocks
                batch += RawNBDClient.requestHeader(type: NBDWire.cmdRead, cookie: UInt64(index),
                                                    offset: UInt64(block * Self.blockBytes), length: UInt32(Self.blockBytes))
            }
            try client.sendWithoutWaiting(batch)
            let volume = try VolumeFiles.bytes(export.volumePath, offset: 0, count: Self.volumeBytes)
            var answered = Set<UInt64>()
            for _ in 0..<count {
                let (outcome, reply) = client.readSimpleReply(dataBytes: Self.blockBytes)
                guard outcome == .data, let reply else {
                    Issue.record("reply \(answered.count + 1) of \(count): \(outcome)")
                    return
                }
                #expect(reply.error == 0, "read \(reply.cookie) failed with NBD error \(reply.error)")
                #expect(answered.insert(reply.cookie).inserted, "cookie \(reply.cookie) answered twice")
                let start = Int(reply.cookie) * 7 % blocks * Self.blockBytes
                let right = reply.data[...] == volume[start..<(start + Self.blockBytes)]
                #expect(right, "read \(reply.cookie): wrong bytes")
            }
            #expect(answered == Set((0..<count).map(UInt64.init)))
        }

        @Test func aRequestSentInPiecesIsParsedWhole() throws {
            let export = try NBDExport(sizeBytes: Self.volumeBytes, content: .random)
            let client = try RawNBDClient.transmitting(socketPath: export.socketPath, exportName: export.name)
            let bystander = try RawNBDClient.transmitting(socketPath: export.socketPath, exportName: export.name)
            let payload = (0..<Self.blockBytes).map { UInt8(truncatingIfNeeded: $0 * 31 + 5) }
            let offset = UInt64(9 * Self.blockBytes)
            let write = RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: 41, offset: offset,
                                                   length: UInt32(Self.blockBytes)) + payload
            // Cuts inside the magic, inside the handle, at the header's end and inside the
            // payload. Between pieces a read on another connection of the same daemon makes it
            // likely (not certain: the kernel may still join pieces) that each piece is received
            // on its own; the outcome must be the same either way.
            var start = 0
            for cut in [3, 13, 27, 28, 1000, write.count] {
                try client.sendWithoutWaiting(Array(write[start..<cut]))
                start = cut
                _ = try bystander.read(offset: 0, length: 4096, cookie: UInt64(cut))
            }
            let (outcome, reply) = client.readSimpleReply(dataBytes: 0)
            #expect(outcome == .data && reply?.cookie == 41 && reply?.error == 0, "write reply: \(outcome) \(String(describing: reply))")
            let readBack = try client.read(offset: offset, length: UInt32(Self.blockBytes), cookie: 42) == payload
            #expect(readBack, "the write's bytes were not read back")
            let onDisk = try VolumeFiles.bytes(export.volumePath, offset: offset, count: Self.blockBytes) == payload
            #expect(onDisk, "the write's bytes are not on the volume")
        }

        @Test func badMagicInTheMiddleOfABatchEndsTheConnectionAndNothingAfterItIsObeyed() throws {
            let export = try NBDExport(sizeBytes: Self.volumeBytes, content: .random)
            let client = try RawNBDClient.transmitting(socketPath: export.socketPath, exportName: export.name)
            let block = { (index: Int) in UInt64(index * Self.blockBytes) }
            let before = try VolumeFiles.bytes(export.volumePath, offset: 0, count: Self.volumeBytes)
            let fill = [UInt8](repeating: 0xA5, count: Self.blockBytes)
            var batch = RawNBDClient.requestHeader(type: NBDWire.cmdRead, cookie: 1, offset: block(1), length: 4096)
            batch += RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: 2, offset: block(2), length: 4096) + fill
            batch += RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: 3, offset: block(3), length: 4096,
                                                magic: 0x2560_9514) + fill
            batch += RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: 4, offset: block(4), length: 4096) + fill
            batch += RawNBDClient.requestHeader(type: NBDWire.cmdRead, cookie: 5, offset: block(5), length: 4096)
            try client.sendWithoutWaiting(batch)
            // The server hangs up (the stream cannot be resynchronised); the requests before the
            // bad one may or may not have been carried out, none after it is.
            #expect(client.stream.awaitPeerClose(), "the server kept the connection open after a bad magic")
            #expect(export.serverIsAlive, "the server died")
            let after = try VolumeFiles.bytes(export.volumePath, offset: 0, count: Self.volumeBytes)
            for index in [3, 4] {
                let range = Int(block(index))..<(Int(block(index)) + Self.blockBytes)
                let unchanged = after[range] == before[range]
                #expect(unchanged, "block \(index), after the bad request, was written")
            }
            var untouched = after
            untouched.replaceSubrange(Int(block(2))..<(Int(block(2)) + Self.blockBytes),
                                      with: before[Int(block(2))..<(Int(block(2)) + Self.blockBytes)])
            let outsideUnchanged = untouched == before
            #expect(outsideUnchanged, "bytes outside the batch's valid write changed")
            let fresh = try RawNBDClient.transmitting(socketPath: export.socketPath, exportName: export.name)
            let served = try fresh.read(offset: block(6), length: 4096, cookie: 9)[...] == before[Int(block(6))..<Int(block(7))]
            #expect(served, "a new client was not served the volume's bytes")
        }
    }
}
