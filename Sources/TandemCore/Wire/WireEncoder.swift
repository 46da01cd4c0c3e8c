// Encodes messages into caller-provided buffers. The hot path (Data) writes only the header
// and the fixed fields; the payload stays where it is and is handed to the transport next to
// the prefix, so no payload byte is copied here.

public enum WireEncoder {
    /// Bytes `encodeDataPrefix` writes: frame header plus the fixed Data fields.
    public static let dataPrefixBytes = WireFormat.headerBytes + WireFormat.dataFixedBytes

    /// Writes the frame header and Data fields for a payload of `payloadBytes` that the caller
    /// sends right after. Returns `dataPrefixBytes`.
    public static func encodeDataPrefix(
        _ header: WireDataHeader, payloadBytes: Int, promotionNumber: UInt64,
        into buffer: UnsafeMutableRawBufferPointer
    ) throws(WireEncodeError) -> Int {
        try validate(header, payloadBytes: payloadBytes)
        guard buffer.count >= dataPrefixBytes else {
            throw .bufferTooSmall(needed: dataPrefixBytes, available: buffer.count)
        }
        let frame = WireFrameHeader(
            type: .data, bodyBytes: WireFormat.dataFixedBytes + payloadBytes, promotionNumber: promotionNumber)
        frame.encode(into: buffer)
        var writer = WireByteWriter(buffer, at: WireFormat.headerBytes)
        writer.put(header.epoch)
        writer.put(header.sequence)
        writer.put(header.offsetBytes)
        writer.put(header.lengthBytes)
        writer.put(header.flags.rawValue)
        writer.put(UInt16(0))
        writer.put(header.crc32c)
        return writer.index
    }

    /// The size `encode` needs for `message`.
    public static func encodedBytes(_ message: WireMessage) -> Int {
        WireFormat.headerBytes + bodyBytes(message)
    }

    /// Encodes a whole frame (for Data, including a copy of the payload) into `buffer` and
    /// returns the number of bytes written.
    public static func encode(
        _ message: WireMessage, promotionNumber: UInt64, into buffer: UnsafeMutableRawBufferPointer
    ) throws(WireEncodeError) -> Int {
        try validate(message)
        let total = encodedBytes(message)
        guard buffer.count >= total else { throw .bufferTooSmall(needed: total, available: buffer.count) }
        if case .data(let data) = message {
            var written = try encodeDataPrefix(
                data.header, payloadBytes: data.payload.count, promotionNumber: promotionNumber, into: buffer)
            data.payload.withUnsafeBytes { payload in
                UnsafeMutableRawBufferPointer(rebasing: buffer[written...]).copyMemory(from: payload)
            }
            written += data.payload.count
            return written
        }
        WireFrameHeader(type: message.type, bodyBytes: bodyBytes(message), promotionNumber: promotionNumber)
            .encode(into: buffer)
        var writer = WireByteWriter(buffer, at: WireFormat.headerBytes)
        writeBody(message, &writer)
        assert(writer.index == total)
        return total
    }

    /// Convenience for tests and cold paths: a freshly allocated frame.
    public static func encode(_ message: WireMessage, promotionNumber: UInt64) throws(WireEncodeError) -> [UInt8] {
        try validate(message)
        var bytes = [UInt8](repeating: 0, count: encodedBytes(message))
        let result = bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(WireEncodeError) -> Int in
                try encode(message, promotionNumber: promotionNumber, into: buffer)
            }
        }
        _ = try result.get()
        return bytes
    }

    static func bodyBytes(_ message: WireMessage) -> Int {
        switch message {
        case .hello(let hello):
            return WireHello.fixedBytes + hello.nodeName.utf8.count + hello.resourceName.utf8.count
                + (hello.protocolVersion >= WireFormat.generationsVersion ? WireNodeGenerations.bytes : 0)
        case .helloReply(let reply):
            return WireHelloReply.fixedBytes + truncatedReason(reply.reason).count
        case .data(let data):
            return WireFormat.dataFixedBytes + data.payload.count
        case .epochBarrier, .dataAck, .replicaHello, .digestRequest, .groupBarrier, .epochTime:
            return 16
        case .digests:
            return 32
        case .resize:
            return WireResize.bodyBytes
        case .bitmapChunk(let chunk):
            return chunk.bodyBytes
        case .bitmapDone:
            return 8
        case .readRequest:
            return WireReadRequest.bodyBytes
        case .readReply(let reply):
            return WireReadReply.fixedBytes + reply.payload.count
        case .durableAck, .flushRequest, .ping, .pong, .resendComplete, .syncComplete, .failoverRequest, .demoted:
            return 8
        case .catchUpInPlace, .caughtUp:
            return 8
        case .verifyEnd:
            return 0
        }
    }

    private static func writeBody(_ message: WireMessage, _ writer: inout WireByteWriter) {
        switch message {
        case .hello(let hello): writeHello(hello, &writer)
        case .helloReply(let reply):
            let reason = truncatedReason(reply.reason)
            writer.put(reply.protocolVersion)
            writer.put(reply.refusal?.rawValue ?? 0)
            writer.put(UInt8(0))
            writer.put(UInt16(reason.count))
            writer.put(bytes: reason)
        case .data: preconditionFailure("data is encoded by encodeDataPrefix")
        case .epochBarrier(let epoch, let writeCount):
            writer.put(epoch)
            writer.put(writeCount)
            writer.put(UInt32(0))
        case .dataAck(let epoch, let sequence):
            writer.put(epoch)
            writer.put(sequence)
        case .epochTime(let epoch, let wallClockNs):
            writer.put(epoch)
            writer.put(wallClockNs)
        case .groupBarrier(let groupID, let epoch):
            writer.put(groupID)
            writer.put(epoch)
        case .digestRequest(let offset, let length):
            writer.put(offset)
            writer.put(length)
        case .digests(let offset, let length, let digest):
            writer.put(offset)
            writer.put(length)
            writer.put(digest.high)
            writer.put(digest.low)
        case .resize(let resize):
            writer.put(resize.sizeBytes)
            writer.put(resize.kind.rawValue)
            writer.put(resize.force ? UInt8(1) : 0)
            writer.put(resize.refusalCode)
            writer.put(UInt32(0))
            writer.put(resize.senderBytes)
        case .bitmapChunk(let chunk):
            chunk.write(&writer)
        case .bitmapDone(let setBlocks):
            writer.put(setBlocks)
        case .verifyEnd:
            break
        case .readRequest(let request):
            request.encode(&writer)
        case .readReply(let reply):
            writer.put(reply.tag)
            writer.put(UInt32(bitPattern: reply.errno))
            writer.put(reply.crc32c)
            writer.put(bytes: reply.payload)
        case .replicaHello(let hello):
            writer.put(hello.durableThroughEpoch)
            writer.put(hello.diskState.rawValue)
            for _ in 0..<7 { writer.put(UInt8(0)) }
        case .durableAck(let value), .flushRequest(let value), .ping(let value), .pong(let value),
            .resendComplete(let value), .syncComplete(let value), .failoverRequest(let value), .demoted(let value):
            writer.put(value)
        case .catchUpInPlace(let session), .caughtUp(let session):
            writer.put(session)
        }
    }

    private static func writeHello(_ hello: WireHello, _ writer: inout WireByteWriter) {
        writer.put(hello.protocolVersion)
        writer.put(hello.role.wireCode)
        writer.put(UInt8(0))
        writer.put(hello.volumeSizeBytes)
        writer.put(hello.generations.current)
        writer.put(hello.generations.bitmap)
        for entry in hello.generations.history { writer.put(entry) }
        writer.put(hello.promotionNumber)
        writer.put(UInt8(hello.nodeName.utf8.count))
        writer.put(UInt8(hello.resourceName.utf8.count))
        writer.put(bytes: hello.nodeName.utf8)
        writer.put(bytes: hello.resourceName.utf8)
        guard hello.protocolVersion >= WireFormat.generationsVersion else { return }
        let node = hello.node ?? WireNodeGenerations(current: 0, bitmap: 0)
        writer.put(node.current)
        writer.put(node.bitmap)
        writer.put(node.changedBytes)
        writer.put(node.flags.rawValue)
        writer.put(node.afterSplitBrain.wireCode)
        writer.put(UInt8(0))
        writer.put(UInt16(0))
    }

    /// Reasons are for people; a long one is cut at a character boundary rather than refused.
    static func truncatedReason(_ reason: String) -> ArraySlice<UInt8> {
        let utf8 = Array(reason.utf8)
        guard utf8.count > WireFormat.maxReasonBytes else { return utf8[...] }
        var end = WireFormat.maxReasonBytes
        while end > 0 && (utf8[end] & 0xC0) == 0x80 { end -= 1 }
        return utf8[0..<end]
    }

    private static func validate(_ message: WireMessage) throws(WireEncodeError) {
        switch message {
        case .hello(let hello):
            try checkName("node name", hello.nodeName)
            try checkName("resource name", hello.resourceName)
            guard hello.generations.history.count == WireFormat.generationHistoryCount else {
                throw .invalidData("generation history must have \(WireFormat.generationHistoryCount) entries")
            }
        case .data(let data):
            try validate(data.header, payloadBytes: data.payload.count)
        case .bitmapChunk(let chunk):
            guard chunk.blockCount > 0, !chunk.runs.isEmpty, chunk.runs.count % 4 == 0,
                chunk.runs.count <= WireBitmapChunk.runsBytesMax, DirtyBitmap.isValidBlockBytes(UInt64(chunk.blockBytes))
            else { throw .invalidData("bitmap chunk: \(chunk.runs.count) bytes of runs for \(chunk.blockCount) blocks of \(chunk.blockBytes) bytes") }
        default:
            break
        }
    }

    private static func checkName(_ field: String, _ name: String) throws(WireEncodeError) {
        let count = name.utf8.count
        guard count <= WireFormat.maxNameBytes else {
            throw .fieldTooLong(field: field, bytes: count, maxBytes: WireFormat.maxNameBytes)
        }
    }

    /// The same rules the decoder enforces, so that this node never sends what a peer refuses.
    static func validate(_ header: WireDataHeader, payloadBytes: Int) throws(WireEncodeError) {
        let length = Int(header.lengthBytes)
        guard length > 0, length <= WireFormat.maxPayloadBytes else {
            throw .invalidData("length \(length) outside 1...\(WireFormat.maxPayloadBytes)")
        }
        guard header.flags.isSubset(of: .known) else {
            throw .invalidData("unknown flags 0x\(String(header.flags.rawValue, radix: 16))")
        }
        if header.flags.contains(.compressed) {
            guard payloadBytes > 0, payloadBytes < length else {
                throw .invalidData("compressed payload of \(payloadBytes) bytes for a \(length)-byte block")
            }
        } else if payloadBytes != length {
            throw .invalidData("payload of \(payloadBytes) bytes for a \(length)-byte block")
        }
    }
}
