import TandemCore
import TandemIO

// Simulation+Wire: bytes on the simulated link. Every message between the nodes is encoded
// as production encodes it (WireEncoder; a Data frame's payload through WirePayload.prepare:
// the CRC32C of the block and, when the scenario compresses, LZ4 where it pays) and decoded
// by a WireDecoder per direction of each connection, with the ordering checks the daemon's
// channel runs; a Data frame's payload goes through WirePayload.restore (decompress, check the
// CRC32C) before the secondary's node sees it, as SecondaryReplicator does. What the decoder
// or the payload check refuses drops the connection.
//
// The link stands for what TLS hands the codec (plaintext), so the faults (WireTamper) are
// corruption the codec itself must refuse: a bit flipped in a frame header (its CRC32C) or in
// a Data payload (the payload CRC32C), a Data frame or barrier duplicated (the order and count
// checks), and a connection that ends inside a frame (the decoder never yields a partial one).
// A flip in a control frame's body or in a Data frame's fixed fields is not injected: the
// format has no checksum over them, and in production only TLS's record integrity refuses it.
//
// Small payloads: a 4 KiB block of the simulation travels as `blockWireBytes` bytes (its value,
// four times), and a Data frame's offset and length count those bytes, so frames stay small.

/// What a wire fault does to the next frame that it fits on one direction of a connection.
enum WireTamper: CaseIterable, CustomStringConvertible {
    /// One bit of the 24-byte frame header flips.
    case flipHeaderBit
    /// One bit of a Data frame's payload flips (primary → secondary only).
    case flipPayloadBit
    /// A Data frame or an epoch barrier arrives twice (primary → secondary only).
    case duplicateFrame
    /// The connection ends after part of a frame.
    case cutInsideFrame

    var description: String {
        switch self {
        case .flipHeaderBit: "a header bit flips"
        case .flipPayloadBit: "a payload bit flips"
        case .duplicateFrame: "a frame arrives twice"
        case .cutInsideFrame: "the connection ends inside a frame"
        }
    }
}

/// The bytes one delivery event carries: one frame, or one a wire fault changed.
struct WireChunk: CustomStringConvertible {
    var bytes: [UInt8]
    var tamper: WireTamper?
    var description: String { "\(bytes.count) bytes" + (tamper.map { " (\($0))" } ?? "") }
}

/// One direction of a connection: the receiver's decoder, the sender's barrier count, and
/// a wire fault armed for the next frame it fits.
struct WireDirection {
    var decoder = WireDecoder()
    var barrierEpoch: UInt64 = 0
    var barrierCount: UInt32 = 0
    var armed: WireTamper?
}

extension Simulation {
    static let blockWireBytes = 32
    /// `SimulationScenario.blockSizeBytes` over `blockWireBytes`: wire offsets and lengths are
    /// the node's divided by this.
    static var wireScale: UInt64 { SimulationScenario.blockSizeBytes / UInt64(blockWireBytes) }
    static let garbageBytes = Array("GET / HTTP/1.1\r\nHost: tandem\r\n\r\n".utf8)

    /// The bytes of an extent as a Data frame's block carries them.
    static func wireBlock(_ extent: FakeDisk.Extent) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(extent.values.count * blockWireBytes)
        for value in extent.values {
            for _ in 0..<(blockWireBytes / 8) {
                withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
            }
        }
        return bytes
    }

    // MARK: Sending

    func encodeToSecondary(_ message: ToSecondary, _ direction: inout WireDirection) -> (bytes: [UInt8], isData: Bool) {
        let wire: WireMessage
        switch message {
        case let .hello(session, basis, nodeName, _):
            wire = .hello(WireHello(
                role: .primary, nodeName: nodeName, resourceName: Self.resourceName,
                volumeSizeBytes: UInt64(scenario.blockCount) * SimulationScenario.blockSizeBytes,
                generations: basis.wireGenerations(session: session), promotionNumber: 0))
        case let .message(.data(data)):
            return (encodeData(data, &direction), true)
        case let .message(.epochBarrier(epoch)):
            let count = direction.barrierEpoch == epoch ? direction.barrierCount : 0
            wire = .epochBarrier(epoch: epoch, writeCount: count)
        case let .message(.flushRequest(epoch)): wire = .flushRequest(epoch: epoch)
        case let .message(.resendComplete(through)): wire = .resendComplete(throughSequence: through)
        case let .message(.groupBarrier(groupID, epoch)): wire = .groupBarrier(groupID: groupID, epoch: epoch)
        case let .syncComplete(through): wire = .syncComplete(throughSequence: through)
        case .demoted: wire = .demoted(throughSequence: 0)
        case let .digestRequest(offset, length): wire = .digestRequest(offsetBytes: offset, lengthBytes: length)
        case .verifyEnd: wire = .verifyEnd
        case .garbage: return (Self.garbageBytes, false)
        case let .readRequest(request): wire = .readRequest(request)
        }
        return (Self.encode(wire), false)
    }

    /// A Data frame as PrimaryReplicator.sendData makes it: the barrier count, then
    /// WirePayload.prepare over the block (its CRC32C, LZ4 where it pays).
    private func encodeData(_ data: DataMessage, _ direction: inout WireDirection) -> [UInt8] {
        if direction.barrierEpoch != data.epoch {
            direction.barrierEpoch = data.epoch
            direction.barrierCount = 0
        }
        direction.barrierCount += 1
        let session = link.flatMap { $0.primary }.flatMap { nodes[$0].primary?.session } ?? 0
        guard let extent = payloads[PayloadKey(session: session, sequence: data.sequence)] else {
            fail("data \(data.sequence) of session \(session) is sent without a payload")
            return []
        }
        let block = Self.wireBlock(extent)
        var scratch = [UInt8](repeating: 0, count: block.count + 64)
        return block.withUnsafeBytes { block in
            scratch.withUnsafeMutableBytes { scratch in
                let (header, compressed) = WirePayload.prepare(
                    block: block, epoch: data.epoch, sequence: data.sequence,
                    offsetBytes: data.offsetBytes / Self.wireScale, fua: data.flags.contains(.fua),
                    acknowledgedAfterApply: data.flags.contains(.acknowledgedAfterApply),
                    compress: scenario.compression, scratch: scratch)
                if compressed != nil { wireCompressedFrames += 1 }
                let payload = compressed.map { Array(scratch[0..<$0]) } ?? Array(block)
                return Self.encode(.data(WireData(header: header, payload: payload[...])))
            }
        }
    }

    func encodeToPrimary(_ message: ToPrimary) -> [UInt8] {
        let wire: WireMessage
        switch message {
        case .accepted: wire = .helloReply(WireHelloReply())
        case let .refused(reason, code): wire = .helloReply(WireHelloReply(refusal: code, reason: reason))
        case let .message(.hello(durable, copy)):
            wire = .replicaHello(WireReplicaHello(durableThroughEpoch: durable, diskState: copy.wire))
        case let .message(.dataAck(sequence)): wire = .dataAck(epoch: 0, sequence: sequence)
        case let .message(.durableThroughEpoch(epoch)): wire = .durableAck(epoch: epoch)
        case .failoverRequest: wire = .failoverRequest(promotion: 0)
        case let .digests(offset, length, digest): wire = .digests(offsetBytes: offset, lengthBytes: length, digest: digest)
        case let .caughtUp(session): wire = .caughtUp(session: session)
        case let .readReply(tag, errno, values):
            // A read's payload is whole 4 KiB blocks on the wire (its CRC32C checked on decode).
            let payload = values.isEmpty ? [] : Self.readPayload(values)
            wire = .readReply(WireReadReply(tag: tag, errno: errno, crc32c: payload.isEmpty ? 0 : CRC32C.checksum(payload),
                                            payload: payload[...]))
        }
        return Self.encode(wire)
    }

    private static func encode(_ message: WireMessage) -> [UInt8] {
        do {
            return try WireEncoder.encode(message, promotionNumber: 0)
        } catch {
            preconditionFailure("the simulation encodes an invalid \(message.type): \(error)")
        }
    }

    /// An armed wire fault that fits this frame changes its bytes (drawn from the wire stream).
    func tamper(_ bytes: [UInt8], isData: Bool, isBarrier: Bool, _ direction: inout WireDirection) -> WireChunk? {
        guard let armed = direction.armed, bytes.count > WireFormat.headerBytes else { return nil }
        var tampered = bytes
        switch armed {
        case .flipHeaderBit:
            let bit = Int(wireRandom.below(UInt64(WireFormat.headerBytes * 8)))
            tampered[bit / 8] ^= 1 << UInt8(bit % 8)
        case .flipPayloadBit:
            guard isData else { return nil }
            let payloadBits = (bytes.count - WireEncoder.dataPrefixBytes) * 8
            let bit = Int(wireRandom.below(UInt64(payloadBits)))
            tampered[WireEncoder.dataPrefixBytes + bit / 8] ^= 1 << UInt8(bit % 8)
        case .duplicateFrame:
            guard isData || isBarrier else { return nil }
            tampered += bytes
        case .cutInsideFrame:
            tampered = Array(bytes[0..<Int(wireRandom.between(1, UInt64(bytes.count - 1)))])
        }
        direction.armed = nil
        wireTampered += 1
        return WireChunk(bytes: tampered, tamper: armed)
    }
}

extension Simulation {
    // MARK: Receiving

    /// The secondary's end receives one chunk: its decoder yields the frames, as the daemon's
    /// channel does; an error drops the connection.
    func receiveAtSecondary(_ chunk: WireChunk, linkID: Int) {
        let node = nodes[link!.secondary]
        if chunk.tamper != nil { wireTamperedDelivered += 1 }
        link!.toSecondary.decoder.feed(chunk.bytes)
        var outcome = ChunkOutcome()
        while let current = link, current.id == linkID {
            let frame: WireFrame?
            do throws(WireError) { frame = try link!.toSecondary.decoder.next() } catch {
                return refuse(chunk, by: node, reason: "\(error)")
            }
            guard let frame else { break }
            outcome.frames += 1
            trace("\(node.name) receives \(frame.message.type)")
            secondaryReceivedFrame(frame.message, node: node, chunk: chunk, outcome: &outcome)
        }
        delivered(chunk, linkID: linkID, to: node, outcome)
    }

    /// The primary's end receives one chunk.
    func receiveAtPrimary(_ chunk: WireChunk, linkID: Int) {
        guard let primaryIndex = link!.primary else { return }
        let node = nodes[primaryIndex]
        if chunk.tamper != nil { wireTamperedDelivered += 1 }
        link!.toPrimary.decoder.feed(chunk.bytes)
        var outcome = ChunkOutcome()
        while let current = link, current.id == linkID {
            let frame: WireFrame?
            do throws(WireError) { frame = try link!.toPrimary.decoder.next() } catch {
                return refuse(chunk, by: node, reason: "\(error)")
            }
            guard let frame else { break }
            outcome.frames += 1
            trace("\(node.name) receives \(frame.message.type)")
            guard let message = Self.toPrimary(frame.message) else {
                return refuse(chunk, by: node, reason: "protocol violation: a secondary sent \(frame.message)")
            }
            primaryReceived(message, node: node)
        }
        delivered(chunk, linkID: linkID, to: node, outcome)
    }

    struct ChunkOutcome {
        var frames = 0
        /// A tampered Data frame the secondary never restored (its node ignored it or took it
        /// for a re-send): its payload reaches no volume, so it need not be refused.
        var dataNotRestored = false
    }

    /// What PrimaryReplicator does with each frame a secondary may send (nil: a violation).
    static func toPrimary(_ message: WireMessage) -> ToPrimary? {
        switch message {
        case let .helloReply(reply): reply.refusal.map { .refused(reply.reason, $0) } ?? .accepted
        case let .replicaHello(hello):
            DiskState(wire: hello.diskState).map { .message(.hello(durableThroughEpoch: hello.durableThroughEpoch, copy: $0)) }
        case let .durableAck(epoch): .message(.durableThroughEpoch(epoch))
        case let .dataAck(_, sequence): .message(.dataAck(sequence: sequence))
        case .failoverRequest: .failoverRequest
        case let .digests(offset, length, digest): .digests(offsetBytes: offset, lengthBytes: length, digest: digest)
        case let .caughtUp(session): .caughtUp(session: session)
        case let .readReply(reply): .readReply(tag: reply.tag, errno: reply.errno, values: readValues(reply.payload))
        default: nil
        }
    }

    private func secondaryReceivedFrame(_ message: WireMessage, node: SimNode, chunk: WireChunk, outcome: inout ChunkOutcome) {
        guard node.alive, !node.isPrimary, node.secondary != nil else { return }
        switch message {
        case let .hello(hello):
            let namesPeer = link?.certificateNamesPeer ?? false
            driveSecondary(node, .hello(PrimaryHelloFacts(hello: hello, certificateNamesPeer: namesPeer,
                                                          certificateSubject: namesPeer ? hello.nodeName : "impostor")))
        case let .data(data): secondaryReceivedData(data, node: node, chunk: chunk, outcome: &outcome)
        case let .epochBarrier(epoch, _): secondaryReceived(.message(.epochBarrier(epoch: epoch)), node: node)
        case let .flushRequest(epoch): secondaryReceived(.message(.flushRequest(throughEpoch: epoch)), node: node)
        case let .resendComplete(through): secondaryReceived(.message(.resendComplete(throughSequence: through)), node: node)
        case let .syncComplete(through): secondaryReceived(.syncComplete(throughSequence: through), node: node)
        case .demoted: secondaryReceived(.demoted, node: node)
        case let .digestRequest(offset, length): secondaryReceived(.digestRequest(offsetBytes: offset, lengthBytes: length), node: node)
        case .verifyEnd: secondaryReceived(.verifyEnd, node: node)
        case let .readRequest(request): secondaryReadRequest(request, node: node)
        default: refuse(chunk, by: node, reason: "protocol violation: a primary sent \(message.type)")
        }
    }

    /// SecondaryReplicator.receiveData: the node classifies the frame; a new write's payload
    /// is restored and its CRC32C checked before the node sees it.
    private func secondaryReceivedData(_ data: WireData, node: SimNode, chunk: WireChunk, outcome: inout ChunkOutcome) {
        let header = data.header
        var flags: DataFlags = header.flags.contains(.fua) ? [.fua] : []
        if header.flags.contains(.acknowledgedAfterApply) { flags.insert(.acknowledgedAfterApply) }
        let message = DataMessage(epoch: header.epoch, sequence: header.sequence, offsetBytes: header.offsetBytes * Self.wireScale,
                                  lengthBytes: header.lengthBytes * UInt32(Self.wireScale), flags: flags)
        switch node.secondary!.classify(message) {
        case .ignore:
            outcome.dataNotRestored = true
            return
        case .duplicate:
            outcome.dataNotRestored = true
            return driveSecondary(node, .data(message))
        case .wait:
            // The simulated primary stays within the secondary's queue bound, so no frame waits.
            return fail("secondary \(node.name) has no room for data \(message.sequence)")
        case let .violation(reason):
            guard let link, link.impostor else { return fail("secondary \(node.name) refuses the real primary's data: \(reason)") }
            return disconnect("impostor: \(reason)", notifySecondary: true)
        case .new:
            break
        }
        let block: [UInt8]
        switch restore(data) {
        case let .success(restored): block = restored
        case let .failure(error): return refuse(chunk, by: node, reason: "refusing a Data frame: \(error.reason)")
        }
        let values = stride(from: 0, to: block.count, by: Self.blockWireBytes).map { Self.value(block, at: $0) }
        let extent = FakeDisk.Extent(firstBlock: Int(message.offsetBytes / SimulationScenario.blockSizeBytes), values: values)
        received[PayloadKey(session: node.secondary!.session, sequence: message.sequence)] = (extent, block)
        driveSecondary(node, .data(message))
    }

    /// A ReadReply's payload: each block's value, repeated over its 4 KiB.
    static func readPayload(_ values: [UInt64]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * Int(SimulationScenario.blockSizeBytes))
        for value in values {
            for _ in 0..<(Int(SimulationScenario.blockSizeBytes) / 8) {
                withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
            }
        }
        return bytes
    }

    static func readValues(_ payload: ArraySlice<UInt8>) -> [UInt64] {
        let block = Array(payload)
        return stride(from: 0, to: block.count, by: Int(SimulationScenario.blockSizeBytes)).map { value(block, at: $0) }
    }

    private static func value(_ block: [UInt8], at offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(block[offset + index]) << UInt64(8 * index) }
        return value
    }

    struct RestoreRefusal: Error {
        var reason: String
    }

    /// WirePayload.restore into a buffer of the restored length, or why it is refused. The
    /// seeded fault `payloadChecksumSkipped` restores without the check.
    private func restore(_ data: WireData) -> Result<[UInt8], RestoreRefusal> {
        let length: Int
        do throws(WirePayloadError) { length = try WirePayload.restoredBytes(data.header, payloadBytes: data.payload.count) } catch {
            return .failure(RestoreRefusal(reason: "\(error)"))
        }
        var block = [UInt8](repeating: 0, count: length)
        let failure: WirePayloadError? = block.withUnsafeMutableBytes { destination in
            data.payload.withUnsafeBytes { payload in
                guard scenario.testingFault == .payloadChecksumSkipped else {
                    do throws(WirePayloadError) { try WirePayload.restore(data.header, payload: payload, into: destination) } catch {
                        return error
                    }
                    return nil
                }
                guard data.header.flags.contains(.compressed) else {
                    destination.copyMemory(from: payload)
                    return nil
                }
                do throws(LZ4Error) { try LZ4.decompress(payload, into: destination) } catch { return .decompression(error) }
                return nil
            }
        }
        if let failure { return .failure(RestoreRefusal(reason: "\(failure)")) }
        guard block.count % Self.blockWireBytes == 0 else {
            return .failure(RestoreRefusal(reason: "a block of \(block.count) bytes is no whole number of simulated blocks"))
        }
        return .success(block)
    }

    /// The receiver refuses the bytes and drops the connection: expected of tampered bytes and
    /// an impostor's, a failure of the run for the real peer's untampered ones.
    func refuse(_ chunk: WireChunk, by node: SimNode, reason: String) {
        guard let link else { return }
        if chunk.tamper == nil && !link.impostor {
            return fail("\(node.name) refuses the real peer's untampered bytes: \(reason)")
        }
        if let tamper = chunk.tamper {
            wireRefused += 1
            wireKindsRefused.insert(tamper)
        }
        disconnect("\(node.name) refuses what arrived: \(reason)", notifySecondary: true)
    }

    /// After a chunk: a tampered one must have been refused (the connection is gone), except a
    /// Data frame whose payload was never restored; a cut one yields no frame, and its end of
    /// stream inside a frame drops the connection.
    private func delivered(_ chunk: WireChunk, linkID: Int, to node: SimNode, _ outcome: ChunkOutcome) {
        guard let tamper = chunk.tamper, let link, link.id == linkID, checksRefusal else { return }
        switch tamper {
        case .cutInsideFrame:
            guard outcome.frames == 0 else { return fail("\(node.name) decoded a frame from a cut one") }
            var decoder = node.index == link.secondary ? link.toSecondary.decoder : link.toPrimary.decoder
            do throws(WireError) {
                try decoder.finish()
                fail("\(node.name)'s decoder took the end of the stream inside a frame for a clean end")
            } catch {
                wireRefused += 1
                wireKindsRefused.insert(tamper)
                disconnect("the connection ends: \(error)")
            }
        case .flipPayloadBit where outcome.dataNotRestored:
            wireNotRestored += 1
        default:
            fail("\(node.name) accepted a frame although \(tamper)")
        }
    }
}
