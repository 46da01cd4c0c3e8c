// WireSeeds: the seed corpus, encoded by WireEncoder and WirePayload as the daemon encodes.
// Every message type alone (but Resize, BitmapChunk, ReadRequest and ReadReply), whole
// sessions in both directions, a compressed block, and a few streams that break one rule
// each, so the error paths start covered.
import FuzzSupport
import TandemCore
import TandemIO

enum WireSeeds {
    static let hello = WireHello(
        role: .primary, nodeName: "alpha", resourceName: "r0", volumeSizeBytes: 1 << 30,
        generations: WireGenerations(current: 0xAAAA, bitmap: 0xBBBB, history: [1, 2, 3, 4]), promotionNumber: 7)

    static func encode(_ messages: [WireMessage], promotion: UInt64 = 7) -> [UInt8] {
        messages.flatMap { message in
            guard let bytes = try? WireEncoder.encode(message, promotionNumber: promotion) else {
                fatalError("seed message does not encode: \(message.type)")
            }
            return bytes
        }
    }

    static func data(sequence: UInt64, epoch: UInt64, block: [UInt8], compress: Bool = false) -> WireMessage {
        var scratch = [UInt8](repeating: 0, count: block.count)
        let (header, compressed) = block.withUnsafeBytes { source in
            scratch.withUnsafeMutableBytes { scratchBuffer in
                WirePayload.prepare(
                    block: source, epoch: epoch, sequence: sequence, offsetBytes: 4096 * sequence, fua: sequence % 2 == 0,
                    acknowledgedAfterApply: true, compress: compress, scratch: scratchBuffer)
            }
        }
        let payload = compressed.map { scratch[0..<$0] } ?? block[...]
        return .data(WireData(header: header, payload: payload))
    }

    static let everyType: [WireMessage] = [
        .hello(hello),
        .helloReply(WireHelloReply()),
        .helloReply(WireHelloReply(refusal: .splitBrain, reason: "both nodes wrote while apart")),
        data(sequence: 1, epoch: 1, block: [1, 2, 3, 4]),
        .epochBarrier(epoch: 1, writeCount: 1), .dataAck(epoch: 1, sequence: 1), .durableAck(epoch: 1),
        .flushRequest(epoch: 1), .ping(nonce: 0x1234), .pong(nonce: 0x1234), .resendComplete(throughSequence: 3),
        .syncComplete(throughSequence: 3), .failoverRequest(promotion: 8), .demoted(throughSequence: 3),
        .replicaHello(WireReplicaHello(durableThroughEpoch: 2, diskState: .consistent)),
        .catchUpInPlace(session: 9), .caughtUp(session: 9), .digestRequest(offsetBytes: 1 << 20, lengthBytes: 1 << 20),
        .digests(offsetBytes: 1 << 20, lengthBytes: 1 << 20, digest: RegionDigest(high: 1, low: 2)), .bitmapDone(setBlocks: 3),
        .groupBarrier(groupID: 5, epoch: 1), .epochTime(epoch: 1, wallClockNs: 1_796_616_727_300_000_000), .verifyEnd,
    ]

    /// A primary's side of a session: Hello, Data in two epochs (one compressed), barriers.
    static let validStream: [UInt8] = encode([
        .hello(hello),
        data(sequence: 1, epoch: 1, block: Array(repeating: 7, count: 512)),
        data(sequence: 2, epoch: 1, block: (0..<300).map { UInt8(truncatingIfNeeded: $0 * 37) }),
        .epochBarrier(epoch: 1, writeCount: 2),
        data(sequence: 3, epoch: 2, block: Array(repeating: 0, count: 4096), compress: true),
        .epochBarrier(epoch: 2, writeCount: 1), .flushRequest(epoch: 2), .ping(nonce: 1), .syncComplete(throughSequence: 3),
    ])

    static let secondaryStream: [UInt8] = encode([
        .helloReply(WireHelloReply()), .replicaHello(WireReplicaHello(durableThroughEpoch: 0, diskState: .inconsistent)),
        .dataAck(epoch: 1, sequence: 1), .dataAck(epoch: 1, sequence: 2), .durableAck(epoch: 1), .pong(nonce: 1),
        .durableAck(epoch: 2), .failoverRequest(promotion: 8),
    ])

    static func all() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(name: String, bytes: [UInt8])] = []
        for (index, message) in everyType.enumerated() {
            seeds.append(("type-\(index)-\(message.type)", FuzzInput.file(seed: UInt64(index), stream: encode([message]))))
        }
        seeds.append(("primary-session", FuzzInput.file(seed: 0xA11CE, stream: validStream)))
        seeds.append(("secondary-session", FuzzInput.file(seed: 0xB0B, stream: secondaryStream)))
        let gap = encode([data(sequence: 1, epoch: 1, block: [1]), data(sequence: 3, epoch: 1, block: [2])])
        seeds.append(("sequence-gap", FuzzInput.file(seed: 1, stream: gap)))
        let backwards = encode([.epochBarrier(epoch: 2, writeCount: 0), data(sequence: 1, epoch: 2, block: [3])])
        seeds.append(("data-in-closed-epoch", FuzzInput.file(seed: 2, stream: backwards)))
        seeds.append(("truncated", FuzzInput.file(seed: 3, stream: Array(validStream.dropLast(5)))))
        return seeds
    }
}
