// A streaming decoder for the peer protocol: bytes go in in pieces of any size, whole frames
// come out, or the first error, after which the decoder stays failed (the connection must be
// dropped). No input can make it trap: every length is checked before it is used, and a
// frame's body is only buffered once its header has been validated against the limits.
// A transport may place a Data frame's payload in a buffer of its own instead of the
// decoder's (`placeablePayload`, `beginPlacing`): the secondary decrypts payloads straight
// into the buffer it writes to disk from, and the decoder only sees the frame's fields.

/// A decoded frame: the header (which carries the sender's promotion number) and the message.
public struct WireFrame: Equatable, Sendable {
    public var header: WireFrameHeader
    public var message: WireMessage
}

public struct WireDecoder: Sendable {
    /// Once this many consumed bytes sit at the front of the buffer, they are compacted away.
    static let compactThresholdBytes = 64 << 10

    /// Valid bytes are `readIndex..<writeIndex`; the rest is room for the next receive. The
    /// buffer grows to the largest frame seen (plus one receive) and is kept for reuse.
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var writeIndex = 0
    private var pendingHeader: WireFrameHeader?
    private var failure: WireError?
    private var order = WireOrderCheck()
    private let checksOrdering: Bool
    /// The Data frame whose payload the transport is placing (or has placed, until `next`
    /// returns it): its header and fields are consumed, its payload is not in `buffer`.
    private var placing: Placing?

    private struct Placing: Sendable {
        var frame: WireFrameHeader
        var data: WireDataHeader
        var payloadBytes: Int
        var receivedBytes: Int
    }

    /// `checksOrdering`: refuse Data whose sequence is not the previous plus one, Data or
    /// barriers whose epoch goes backwards, and durable acks that go backwards.
    public init(checksOrdering: Bool = true) {
        self.checksOrdering = checksOrdering
    }

    /// Bytes received but not yet returned as frames (including a validated pending header).
    public var bufferedBytes: Int {
        let placed = placing.map { WireFormat.headerBytes + WireFormat.dataFixedBytes + $0.receivedBytes } ?? 0
        return unreadBytes + (pendingHeader == nil ? 0 : WireFormat.headerBytes) + placed
    }

    /// The room the decoder holds, used or not (for the idle-memory checks).
    public var capacityBytes: Int { buffer.count }

    /// Frees the buffer when it is larger than `keepingBytes` and holds no unread bytes (an
    /// idle link's decoder after a large frame); the next receive allocates again.
    public mutating func releaseIdleBuffer(keepingBytes: Int) {
        guard unreadBytes == 0, buffer.count > keepingBytes else { return }
        buffer = []
        readIndex = 0
        writeIndex = 0
    }

    private var unreadBytes: Int { writeIndex - readIndex }

    /// The error that failed this decoder, if any.
    public var error: WireError? { failure }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil, !bytes.isEmpty else { return }
        _ = receive(upTo: bytes.count) { tail in
            tail.copyMemory(from: bytes)
            return bytes.count
        }
    }

    public mutating func feed<C: Collection<UInt8>>(_ bytes: C) {
        guard failure == nil, !bytes.isEmpty else { return }
        if bytes.withContiguousStorageIfAvailable({ feed(UnsafeRawBufferPointer($0)) }) == nil {
            Array(bytes).withUnsafeBytes { feed($0) }
        }
    }

    /// Lets a transport decrypt straight into the decoder's buffer, saving the copy `feed`
    /// makes: `body` gets `maxBytes` of writable space and returns how many bytes it wrote.
    /// Does nothing once the decoder has failed.
    @discardableResult
    public mutating func receive(upTo maxBytes: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        guard failure == nil, maxBytes > 0 else { return 0 }
        precondition(placedPayloadRemainingBytes == 0, "a placed payload's bytes went into the decoder")
        reserveTail(maxBytes)
        let start = writeIndex
        let written = buffer.withUnsafeMutableBytes { all in
            body(UnsafeMutableRawBufferPointer(rebasing: all[start..<(start + maxBytes)]))
        }
        precondition(written >= 0 && written <= maxBytes, "receive body reported more bytes than it was given")
        writeIndex += written
        return written
    }

    /// The next complete frame, nil when more bytes are needed. Call until nil after each feed.
    public mutating func next() throws(WireError) -> WireFrame? {
        if let failure { throw failure }
        do {
            return try decodeNext()
        } catch {
            failure = error
            throw error
        }
    }

    /// Call when the stream has ended: a partial frame left behind is an error.
    public mutating func finish() throws(WireError) {
        if let failure { throw failure }
        if bufferedBytes > 0 {
            failure = .truncated(bufferedBytes: bufferedBytes)
            throw .truncated(bufferedBytes: bufferedBytes)
        }
    }

    private mutating func decodeNext() throws(WireError) -> WireFrame? {
        if let placed = placing {
            guard placed.receivedBytes == placed.payloadBytes else { return nil }
            placing = nil
            let data = WireData(header: placed.data, payload: [], placedPayloadBytes: placed.payloadBytes)
            return WireFrame(header: placed.frame, message: .data(data))
        }
        guard let header = try decodePendingHeader(), unreadBytes >= header.bodyBytes else { return nil }
        let body = buffer[readIndex..<(readIndex + header.bodyBytes)]
        let message = try WireBodyDecoder.decode(header.type, body)
        if checksOrdering { try order.check(message) }
        readIndex += header.bodyBytes
        pendingHeader = nil
        return WireFrame(header: header, message: message)
    }

    /// The frame header at the front, decoded and consumed once all of it has arrived.
    private mutating func decodePendingHeader() throws(WireError) -> WireFrameHeader? {
        if pendingHeader == nil {
            guard unreadBytes >= WireFormat.headerBytes else { return nil }
            let headerBytes = buffer[readIndex..<(readIndex + WireFormat.headerBytes)]
            pendingHeader = try WireFrameHeader.decode(headerBytes)
            readIndex += WireFormat.headerBytes
        }
        return pendingHeader
    }

    // MARK: Placed payloads

    /// Bytes of the payload being placed that have not arrived yet (0 when none is).
    public var placedPayloadRemainingBytes: Int { placing.map { $0.payloadBytes - $0.receivedBytes } ?? 0 }

    /// The next frame's Data header, when it is an uncompressed Data frame whose fields have
    /// arrived and of whose payload at least `minimumRemainingBytes` (≥ 1) have not: the
    /// transport may then place the payload (`beginPlacing`). nil otherwise, while another
    /// payload is placed and not yet returned by `next`, and once the decoder has failed (a
    /// frame that fails here fails the decoder; `next` reports it).
    public mutating func placeablePayload(minimumRemainingBytes: Int) -> WireDataHeader? {
        precondition(minimumRemainingBytes >= 1, "a payload that has all arrived is not placed")
        guard failure == nil, placing == nil else { return nil }
        do throws(WireError) {
            guard let header = try decodePendingHeader(), header.type == .data,
                header.bodyBytes > WireFormat.dataFixedBytes, unreadBytes >= WireFormat.dataFixedBytes
            else { return nil }
            let payloadBytes = header.bodyBytes - WireFormat.dataFixedBytes
            guard payloadBytes - (unreadBytes - WireFormat.dataFixedBytes) >= minimumRemainingBytes else { return nil }
            let data = try dataFields(payloadBytes: payloadBytes)
            return data.flags.contains(.compressed) ? nil : data
        } catch {
            failure = error
            return nil
        }
    }

    /// Begins placing the payload of the frame `placeablePayload` just returned: the frame's
    /// order is checked and its fields consumed, and the payload bytes already buffered are
    /// handed to `body` (to copy into the transport's buffer) and consumed. Until
    /// `placedPayloadRemainingBytes` is 0 the rest goes into that buffer, reported by
    /// `placedPayloadReceived`, not into `receive`; `next` then returns the frame as Data
    /// with `placedPayloadBytes` set.
    public mutating func beginPlacing(_ body: (UnsafeRawBufferPointer) -> Void) throws(WireError) {
        guard failure == nil, placing == nil, let header = pendingHeader, header.type == .data,
            unreadBytes >= WireFormat.dataFixedBytes
        else { preconditionFailure("beginPlacing without a placeable payload") }
        let payloadBytes = header.bodyBytes - WireFormat.dataFixedBytes
        let data: WireDataHeader
        do {
            data = try dataFields(payloadBytes: payloadBytes)
            if checksOrdering { try order.check(.data(WireData(header: data, payload: []))) }
        } catch {
            failure = error
            throw error
        }
        readIndex += WireFormat.dataFixedBytes
        pendingHeader = nil
        let buffered = min(unreadBytes, payloadBytes)
        let from = readIndex
        buffer.withUnsafeBytes { all in body(UnsafeRawBufferPointer(rebasing: all[from..<(from + buffered)])) }
        readIndex += buffered
        placing = Placing(frame: header, data: data, payloadBytes: payloadBytes, receivedBytes: buffered)
    }

    /// `count` more bytes of the placed payload arrived in the transport's buffer.
    public mutating func placedPayloadReceived(_ count: Int) {
        precondition(count >= 0 && count <= placedPayloadRemainingBytes, "more placed bytes than the payload has")
        placing!.receivedBytes += count
    }

    /// The Data fields at the front of the buffer (after the frame header), validated.
    private func dataFields(payloadBytes: Int) throws(WireError) -> WireDataHeader {
        var reader = WireByteReader(buffer[readIndex..<(readIndex + WireFormat.dataFixedBytes)])
        return try WireBodyDecoder.dataHeader(&reader, payloadBytes: payloadBytes)
    }

    /// The room is not zero-filled: every receive writes before the decoder reads, and
    /// untouched pages of the room stay out of memory (an idle link's decoder, which has seen
    /// a handshake and a few pings, holds a page or two of its 64 KiB room, not all of it).
    private mutating func reserveTail(_ count: Int) {
        compact()
        let room = buffer.count - writeIndex
        guard room < count else { return }
        let grownCount = buffer.count + max(count - room, buffer.count)
        let valid = writeIndex
        buffer = [UInt8](unsafeUninitializedCapacity: grownCount) { storage, initializedCount in
            buffer.withUnsafeBytes { old in
                UnsafeMutableRawBufferPointer(storage).copyMemory(from: UnsafeRawBufferPointer(rebasing: old[..<valid]))
            }
            initializedCount = grownCount  // UInt8 is trivial: the room past `valid` is written before it is read
        }
    }

    private mutating func compact() {
        if readIndex == writeIndex {
            readIndex = 0
            writeIndex = 0
        } else if readIndex >= Self.compactThresholdBytes || readIndex > buffer.count / 2 {
            let (from, count) = (readIndex, unreadBytes)
            buffer.withUnsafeMutableBytes { all in
                all.baseAddress!.copyMemory(from: all.baseAddress! + from, byteCount: count)
            }
            readIndex = 0
            writeIndex = count
        }
    }
}

/// Per-connection ordering rules that the codec can see on its own (see docs/protocol.md).
struct WireOrderCheck: Sendable {
    private var lastSequence: UInt64?
    private var lastDataEpoch: UInt64?
    private var lastClosedEpoch: UInt64?
    private var lastDurableEpoch: UInt64?
    /// Data frames of `lastDataEpoch` on this connection: what its barrier must count.
    private var dataInLastEpoch: UInt64 = 0

    mutating func check(_ message: WireMessage) throws(WireError) {
        switch message {
        case .data(let data): try checkData(data.header)
        case .epochBarrier(let epoch, let writeCount): try checkBarrier(epoch, writeCount: writeCount)
        case .durableAck(let epoch):
            if let last = lastDurableEpoch, epoch < last {
                throw .outOfOrder(type: .durableAck, reason: "durable epoch \(epoch) after \(last)")
            }
            lastDurableEpoch = epoch
        default:
            break
        }
    }

    private mutating func checkData(_ header: WireDataHeader) throws(WireError) {
        if let last = lastSequence, last == UInt64.max || header.sequence != last + 1 {
            throw .outOfOrder(type: .data, reason: "sequence \(header.sequence) after \(last)")
        }
        if let last = lastDataEpoch, header.epoch < last {
            throw .outOfOrder(type: .data, reason: "epoch \(header.epoch) after data of epoch \(last)")
        }
        if let closed = lastClosedEpoch, header.epoch <= closed {
            throw .outOfOrder(
                type: .data, reason: "epoch \(header.epoch) was already closed by a barrier for \(closed)")
        }
        dataInLastEpoch = lastDataEpoch == header.epoch ? dataInLastEpoch + 1 : 1
        lastSequence = header.sequence
        lastDataEpoch = header.epoch
    }

    /// The barrier's write count is the number of Data frames of its epoch sent on this
    /// connection (docs/protocol.md): all of them arrived before it (no Data of an epoch may
    /// follow its barrier, and epochs do not go back), so a count that differs means frames
    /// were lost, duplicated or invented on the way.
    private mutating func checkBarrier(_ epoch: UInt64, writeCount: UInt32) throws(WireError) {
        if let closed = lastClosedEpoch, epoch <= closed {
            throw .outOfOrder(type: .epochBarrier, reason: "barrier for epoch \(epoch) after barrier for \(closed)")
        }
        if let last = lastDataEpoch, epoch < last {
            throw .outOfOrder(type: .epochBarrier, reason: "barrier for epoch \(epoch) after data of epoch \(last)")
        }
        let arrived = lastDataEpoch == epoch ? dataInLastEpoch : 0
        guard UInt64(writeCount) == arrived else {
            throw .outOfOrder(
                type: .epochBarrier, reason: "barrier for epoch \(epoch) counts \(writeCount) writes, \(arrived) arrived")
        }
        lastClosedEpoch = epoch
    }
}

/// Parses bodies whose length the header already bounded.
enum WireBodyDecoder {
    /// A verify region: 4 KiB multiples, 1 ... `digestRegionBytesMax` bytes, not past 2^63.
    private static func digestRegion(
        _ type: WireMessageType, _ reader: inout WireByteReader
    ) throws(WireError) -> (UInt64, UInt64) {
        let offset = reader.u64()!
        let length = reader.u64()!
        guard length > 0, length <= WireFormat.digestRegionBytesMax, offset % 4096 == 0, length % 4096 == 0,
            offset <= UInt64(Int64.max) - length
        else { throw .inconsistentBody(type: type, reason: "verify region \(offset)+\(length) is not a whole 4 KiB run of at most 1 MiB") }
        return (offset, length)
    }

    static func decode(_ type: WireMessageType, _ body: ArraySlice<UInt8>) throws(WireError) -> WireMessage {
        var reader = WireByteReader(body)
        let message: WireMessage
        switch type {
        case .hello: message = .hello(try hello(&reader))
        case .helloReply: message = .helloReply(try helloReply(&reader))
        case .data: message = .data(try data(&reader))
        case .epochBarrier:
            let epoch = reader.u64()!
            let count = reader.u32()!
            guard reader.u32()! == 0 else { throw .inconsistentBody(type: type, reason: "reserved field is not zero") }
            message = .epochBarrier(epoch: epoch, writeCount: count)
        case .dataAck: message = .dataAck(epoch: reader.u64()!, sequence: reader.u64()!)
        case .groupBarrier:
            let groupID = reader.u64()!
            let epoch = reader.u64()!
            guard groupID != 0 else { throw .inconsistentBody(type: type, reason: "group id 0 names no group") }
            message = .groupBarrier(groupID: groupID, epoch: epoch)
        case .durableAck: message = .durableAck(epoch: reader.u64()!)
        case .epochTime: message = .epochTime(epoch: reader.u64()!, wallClockNs: reader.u64()!)
        case .flushRequest: message = .flushRequest(epoch: reader.u64()!)
        case .ping: message = .ping(nonce: reader.u64()!)
        case .pong: message = .pong(nonce: reader.u64()!)
        case .resendComplete: message = .resendComplete(throughSequence: reader.u64()!)
        case .syncComplete: message = .syncComplete(throughSequence: reader.u64()!)
        case .failoverRequest: message = .failoverRequest(promotion: reader.u64()!)
        case .demoted: message = .demoted(throughSequence: reader.u64()!)
        case .catchUpInPlace: message = .catchUpInPlace(session: reader.u64()!)
        case .caughtUp: message = .caughtUp(session: reader.u64()!)
        case .digestRequest:
            let (offset, length) = try digestRegion(type, &reader)
            message = .digestRequest(offsetBytes: offset, lengthBytes: length)
        case .digests:
            let (offset, length) = try digestRegion(type, &reader)
            message = .digests(offsetBytes: offset, lengthBytes: length,
                               digest: RegionDigest(high: reader.u64()!, low: reader.u64()!))
        case .resize: message = .resize(try WireResize.decode(&reader))
        case .bitmapChunk: message = .bitmapChunk(try WireBitmapChunk.decode(&reader))
        case .bitmapDone: message = .bitmapDone(setBlocks: reader.u64()!)
        case .verifyEnd: message = .verifyEnd
        case .readRequest: message = .readRequest(try WireReadRequest.decode(&reader))
        case .readReply: message = .readReply(try WireReadReply.decode(&reader))
        case .replicaHello:
            let epoch = reader.u64()!
            let state = WireDiskState(rawValue: reader.u8()!)
            for _ in 0..<7 {
                guard reader.u8()! == 0 else { throw .inconsistentBody(type: type, reason: "reserved field is not zero") }
            }
            message = .replicaHello(WireReplicaHello(durableThroughEpoch: epoch, diskState: state))
        }
        guard reader.remaining == 0 else {
            throw .inconsistentBody(type: type, reason: "\(reader.remaining) bytes left after the last field")
        }
        return message
    }

    private static func hello(_ reader: inout WireByteReader) throws(WireError) -> WireHello {
        // The header guaranteed at least `WireHello.fixedBytes`, so the fixed reads succeed.
        let version = reader.u16()!
        let roleCode = reader.u8()!
        guard let role = ResourceRole(wireCode: roleCode) else {
            throw .inconsistentBody(type: .hello, reason: "unknown role \(roleCode)")
        }
        guard reader.u8()! == 0 else { throw .inconsistentBody(type: .hello, reason: "reserved field is not zero") }
        let size = reader.u64()!
        let current = reader.u64()!
        let bitmap = reader.u64()!
        var history: [UInt64] = []
        for _ in 0..<WireFormat.generationHistoryCount { history.append(reader.u64()!) }
        let promotion = reader.u64()!
        let nodeCount = Int(reader.u8()!)
        let resourceCount = Int(reader.u8()!)
        // Version 4 and later append the generation tail; older Hellos end with the names.
        let tailBytes = version >= WireFormat.generationsVersion ? WireNodeGenerations.bytes : 0
        guard reader.remaining == nodeCount + resourceCount + tailBytes else {
            throw .inconsistentBody(
                type: .hello,
                reason: "names of \(nodeCount)+\(resourceCount) bytes and a tail of \(tailBytes) in \(reader.remaining) remaining")
        }
        let node = try utf8(reader.bytes(nodeCount)!, field: "node name", type: .hello)
        let resource = try utf8(reader.bytes(resourceCount)!, field: "resource name", type: .hello)
        var tail: WireNodeGenerations?
        if tailBytes > 0 {
            let nodeCurrent = reader.u64()!
            let nodeBitmap = reader.u64()!
            let changed = reader.u64()!
            let flags = WireNodeGenerations.Flags(rawValue: reader.u32()!)
            guard WireNodeGenerations.Flags.known.isSuperset(of: flags) else {
                throw .inconsistentBody(type: .hello, reason: "unknown generation flags \(flags.rawValue)")
            }
            let policyCode = reader.u8()!
            guard let policy = AfterSplitBrain(wireCode: policyCode) else {
                throw .inconsistentBody(type: .hello, reason: "unknown after_split_brain code \(policyCode)")
            }
            guard reader.u8()! == 0, reader.u16()! == 0 else {
                throw .inconsistentBody(type: .hello, reason: "reserved field is not zero")
            }
            tail = WireNodeGenerations(current: nodeCurrent, bitmap: nodeBitmap, changedBytes: changed, flags: flags,
                                       afterSplitBrain: policy)
        }
        return WireHello(
            protocolVersion: version, role: role, nodeName: node, resourceName: resource, volumeSizeBytes: size,
            generations: WireGenerations(current: current, bitmap: bitmap, history: history),
            promotionNumber: promotion, node: tail)
    }

    private static func helloReply(_ reader: inout WireByteReader) throws(WireError) -> WireHelloReply {
        let version = reader.u16()!
        let status = reader.u8()!
        guard reader.u8()! == 0 else {
            throw .inconsistentBody(type: .helloReply, reason: "reserved field is not zero")
        }
        let reasonCount = Int(reader.u16()!)
        guard reasonCount <= WireFormat.maxReasonBytes, let reasonBytes = reader.bytes(reasonCount) else {
            throw .inconsistentBody(type: .helloReply, reason: "reason of \(reasonCount) bytes does not fit the body")
        }
        let reason = try utf8(reasonBytes, field: "reason", type: .helloReply)
        return WireHelloReply(
            protocolVersion: version, refusal: status == 0 ? nil : WireRefusal(rawValue: status), reason: reason)
    }

    private static func data(_ reader: inout WireByteReader) throws(WireError) -> WireData {
        let payloadBytes = reader.remaining - WireFormat.dataFixedBytes
        let header = try dataHeader(&reader, payloadBytes: payloadBytes)
        return WireData(header: header, payload: reader.bytes(reader.remaining)!)
    }

    /// A Data frame's fixed fields, validated for a payload of `payloadBytes` (which the
    /// reader need not hold: a placed payload is elsewhere).
    static func dataHeader(_ reader: inout WireByteReader, payloadBytes: Int) throws(WireError) -> WireDataHeader {
        let epoch = reader.u64()!
        let sequence = reader.u64()!
        let offset = reader.u64()!
        let length = reader.u32()!
        let flags = WireDataFlags(rawValue: reader.u16()!)
        let reserved = reader.u16()!
        let crc = reader.u32()!
        let header = WireDataHeader(
            epoch: epoch, sequence: sequence, offsetBytes: offset, lengthBytes: length, flags: flags, crc32c: crc)
        guard reserved == 0 else { throw .inconsistentBody(type: .data, reason: "reserved field is not zero") }
        do {
            try WireEncoder.validate(header, payloadBytes: payloadBytes)
        } catch {
            throw .inconsistentBody(type: .data, reason: error.description.replacingPrefix("invalid data message: "))
        }
        guard offset <= UInt64.max - UInt64(length) else {
            throw .inconsistentBody(type: .data, reason: "offset \(offset) + length \(length) overflows")
        }
        return header
    }

    private static func utf8(_ bytes: ArraySlice<UInt8>, field: String, type: WireMessageType) throws(WireError)
        -> String
    {
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw .inconsistentBody(type: type, reason: "\(field) is not valid UTF-8")
        }
        return string
    }
}

extension String {
    fileprivate func replacingPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self
    }
}
