// TLSWireChannel: the peer protocol over one TLSConnection, with no socket. Ciphertext from
// the socket engine goes in, decoded frames come out; messages go in, ciphertext to send comes
// out. Messages are encoded into a plaintext staging buffer (allocated on first use) and encrypted
// together by `flush`, which the owner calls once per loop turn: a turn's acknowledgements
// and small writes become one TLS record instead of one or two each. A Data payload above
// `stagedPayloadMax` is not copied: it goes from the caller's buffer straight into TLS
// encryption, after whatever was staged before it.
// On the receiving side, with a `placementPool`, a large uncompressed Data payload is
// decrypted straight into a pool buffer (PlacedPayload) once its frame's fields have arrived,
// not into the decoder: the secondary then writes it to disk from there. A receiver that
// passes `deliver` to `receiveCiphertext` takes frames between decrypted pieces, so each
// payload can be placed (only one at a time is) and can stop decryption (backpressure).
// Idle links give their buffers back (`releaseIdleMemory`).
import TandemCore

public enum PeerChannelError: Error, Equatable, Sendable, CustomStringConvertible {
    case tls(TLSError)
    case wire(WireError)
    case encode(WireEncodeError)

    public var description: String {
        switch self {
        case .tls(let error): return error.description
        case .wire(let error): return "peer protocol violation: \(error.description)"
        case .encode(let error): return "cannot encode message: \(error.description)"
        }
    }
}

/// Told when the socket has taken ciphertext (the copy trace, CopyTrace).
public protocol CiphertextSendObserver: AnyObject {
    func ciphertextSent(through totalBytes: UInt64)
}

/// Confined to one thread (the event loop that owns the connection).
public final class TLSWireChannel: PeerSocketOutput, @unchecked Sendable {
    /// Plaintext is decrypted in pieces of up to this size straight into the decoder's buffer.
    public static let plaintextChunkBytes = 64 << 10
    /// Staged plaintext: four full TLS records.
    public static let stagingBytes = 64 << 10
    /// Larger payloads are encrypted from where they lie rather than copied into staging.
    public static let stagedPayloadMax = 8 << 10
    /// A Data payload is placed only when at least this much of it is still to arrive: what
    /// came in the record of its header (a staged payload, all of a small one) is in the
    /// decoder already, and a small remainder is not worth a buffer of its own.
    public static let placedRemainderMin = 4 << 10

    public let connection: TLSConnection
    /// Stamped into every frame header this channel sends.
    public var promotionNumber: UInt64
    private var decoder: WireDecoder
    /// Allocated on the first message sent (a link that only receives never allocates it).
    private var stagingBuffer: UnsafeMutableRawBufferPointer?
    private var stagedBytes = 0
    /// Where large Data payloads are decrypted to (nil: into the decoder, as every other frame).
    public var placementPool: BufferPool?
    /// The payload being placed, or placed and waiting for `nextFrame` to return its frame.
    private var placing: PlacedPayload?
    /// The payload of the frame `nextFrame` returned last, until it is taken.
    private var framePayload: PlacedPayload?

    public init(connection: TLSConnection, promotionNumber: UInt64, checksOrdering: Bool = true) {
        self.connection = connection
        self.promotionNumber = promotionNumber
        self.decoder = WireDecoder(checksOrdering: checksOrdering)
    }

    deinit {
        stagingBuffer?.deallocate()
        discardPlacedPayloads()
    }

    public var isEstablished: Bool { connection.state == .established }

    /// Starts the handshake (a client has something to send before anything arrives).
    public func start() throws(PeerChannelError) {
        do { _ = try connection.handshake() } catch { throw .tls(error) }
    }

    /// Hands ciphertext from the socket to the session, advancing the handshake and decoding
    /// what it can. Returns false when the peer has closed the session.
    ///
    /// `deliver` runs before each piece of plaintext is decrypted: it takes the
    /// frames decoded so far (`nextFrame`) and returns whether decryption may go on. When it
    /// says no (delivery paused, link closed), the rest of `bytes` waits in the session as
    /// ciphertext, for a later call (with empty `bytes`) to decrypt.
    @discardableResult
    public func receiveCiphertext(_ bytes: UnsafeRawBufferPointer) throws(PeerChannelError) -> Bool {
        try receiveCiphertext(bytes) { () throws(PeerChannelError) -> Bool in true }
    }

    /// Non-escaping, so a call allocates no closure context.
    @discardableResult
    public func receiveCiphertext(
        _ bytes: UnsafeRawBufferPointer, deliver: () throws(PeerChannelError) -> Bool
    ) throws(PeerChannelError) -> Bool {
        // OpenSSL reads the records from `bytes` where they lie (the socket's buffer).
        let result: Result<Bool, PeerChannelError> = connection.lendingCiphertext(bytes) {
            do throws(PeerChannelError) { return .success(try decryptReceived(deliver)) } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func decryptReceived(_ deliver: () throws(PeerChannelError) -> Bool) throws(PeerChannelError) -> Bool {
        do {
            if connection.state == .handshaking, try !connection.handshake() { return true }
        } catch {
            throw .tls(error)
        }
        while true {
            if try !deliver() { return true }
            if decoder.error != nil { return true }  // nextFrame reports it
            let result: TLSConnection.ReadResult
            if decoder.placedPayloadRemainingBytes > 0 {
                result = try decryptIntoPlaced()
            } else if beginPlacing() {
                continue
            } else {
                result = try decryptIntoDecoder()
            }
            switch result {
            case .bytes: continue
            case .needsCiphertext: return true
            case .closed: return false
            }
        }
    }

    /// Starts placing the next frame's payload in a pool buffer, when it is a Data payload
    /// worth placing and the pool has room; the part of it already decoded is copied over
    /// (checksummed as it is copied). False: decrypt into the decoder as usual.
    private func beginPlacing() -> Bool {
        guard let pool = placementPool, placing == nil,
            let header = decoder.placeablePayload(minimumRemainingBytes: Self.placedRemainderMin),
            let buffer = pool.allocate(bytes: Int(header.lengthBytes))
        else { return false }
        var payload = PlacedPayload(buffer: buffer, bytes: Int(header.lengthBytes), crc32c: 0)
        do throws(WireError) {
            try decoder.beginPlacing { part in
                let target = UnsafeMutableRawBufferPointer(start: buffer.pointer, count: part.count)
                payload.crc32c = FastCRC32C.copyChecksum(from: part, into: target)
            }
        } catch {
            pool.release(buffer)  // the frame failed the decoder: nextFrame reports why
            return false
        }
        placing = payload
        return true
    }

    /// Decrypts one piece (at most a TLS record) of the placed payload into its buffer and
    /// checksums it there, from the cache.
    private func decryptIntoPlaced() throws(PeerChannelError) -> TLSConnection.ReadResult {
        guard var payload = placing else { return .needsCiphertext }  // discarded: the link closed
        let remaining = decoder.placedPayloadRemainingBytes
        let piece = UnsafeMutableRawBufferPointer(start: payload.pointer + (payload.bytes - remaining), count: remaining)
        let result: TLSConnection.ReadResult
        do { result = try connection.readPlaintext(into: piece) } catch { throw .tls(error) }
        if case .bytes(let count) = result, count > 0 {
            payload.crc32c = FastCRC32C.checksum(UnsafeRawBufferPointer(rebasing: piece[..<count]), seed: payload.crc32c)
            placing = payload
            decoder.placedPayloadReceived(count)
        }
        return result
    }

    /// Decrypts one piece of plaintext straight into the decoder's buffer.
    private func decryptIntoDecoder() throws(PeerChannelError) -> TLSConnection.ReadResult {
        if decoder.error != nil { return .needsCiphertext }  // nextFrame reports it
        var result = TLSConnection.ReadResult.needsCiphertext
        var failure: TLSError?
        decoder.receive(upTo: Self.plaintextChunkBytes) { tail in
            do throws(TLSError) {
                result = try connection.readPlaintext(into: tail)
            } catch {
                failure = error
            }
            if case .bytes(let count) = result { return count }
            return 0
        }
        if let failure { throw .tls(failure) }
        return result
    }

    /// The next decoded frame, nil when more ciphertext is needed.
    /// A placed Data payload's frame comes with `placedPayloadBytes` set; its bytes are taken
    /// with `takeFramePayload` before the next call, which otherwise releases them.
    public func nextFrame() throws(PeerChannelError) -> WireFrame? {
        if let untaken = framePayload {
            framePayload = nil
            release(untaken)
        }
        let frame: WireFrame?
        do { frame = try decoder.next() } catch { throw .wire(error) }
        if let frame, case .data(let data) = frame.message, data.placedPayloadBytes != nil {
            framePayload = placing
            placing = nil
        }
        return frame
    }

    /// The placed payload of the frame `nextFrame` just returned (nil for any other frame);
    /// the caller owns it from here: it releases it to the pool or with `release`.
    public func takeFramePayload() -> PlacedPayload? {
        defer { framePayload = nil }
        return framePayload
    }

    /// Gives a placed payload's buffer back to the pool.
    public func release(_ payload: PlacedPayload) {
        placementPool?.release(payload.buffer)
    }

    /// Releases the payload being placed and one not taken (the link closed).
    public func discardPlacedPayloads() {
        if let payload = placing { release(payload) }
        if let payload = framePayload { release(payload) }
        placing = nil
        framePayload = nil
    }

    /// Frees the buffers an idle link grew past their first size (the decoder's room beyond
    /// one plaintext piece, the ciphertext queues beyond one record's room) when they hold
    /// nothing; the next large message allocates them again. Buffers of their first size are
    /// kept, so the pings of an idle link allocate nothing. For a link on which nothing moved
    /// for a while: a busy link keeps its buffers.
    public func releaseIdleMemory() {
        decoder.releaseIdleBuffer(keepingBytes: Self.plaintextChunkBytes)
        connection.releaseIdleBuffers()
    }

    /// What `releaseIdleMemory` keeps at most: the decoder's first room, three ciphertext
    /// queues' (incoming, and the two outgoing ones) and the staging buffer.
    public static let idleRetainedBytesMax = plaintextChunkBytes + 3 * CiphertextQueue.initialBytes + stagingBytes

    /// The bytes this channel's own buffers hold, used or not (OpenSSL's are not counted).
    public var retainedBufferBytes: Int {
        decoder.capacityBytes + connection.ciphertextCapacityBytes + (stagingBuffer?.count ?? 0)
    }

    /// The session ended: a partial frame left behind is an error.
    public func finish() throws(PeerChannelError) {
        do { try decoder.finish() } catch { throw .wire(error) }
    }

    /// Stages a control message (anything but Data) without allocating; `flush` encrypts it.
    public func send(_ message: WireMessage) throws(PeerChannelError) {
        precondition(message.type != .data, "Data goes through sendData")
        let tail = try stagingTail()
        do {
            stagedBytes += try WireEncoder.encode(message, promotionNumber: promotionNumber, into: tail)
        } catch {
            throw .encode(error)
        }
    }

    /// Stages a Data frame. A payload of up to `stagedPayloadMax` is copied behind its prefix;
    /// a larger one is encrypted at once from where it lies, after everything staged so far.
    public func sendData(_ header: WireDataHeader, payload: UnsafeRawBufferPointer) throws(PeerChannelError) {
        let tail = try stagingTail()
        do {
            stagedBytes += try WireEncoder.encodeDataPrefix(
                header, payloadBytes: payload.count, promotionNumber: promotionNumber, into: tail)
        } catch {
            throw .encode(error)
        }
        if payload.count <= Self.stagedPayloadMax {
            try stage(payload)
        } else {
            try flush()
            try write(payload)
        }
    }

    /// Stages a ReadReply (read balancing, protocol 6): its prefix, then its payload (none with
    /// an errno), as `sendData` stages Data's.
    public func sendReadReply(tag: UInt64, errno: Int32, payload: UnsafeRawBufferPointer) throws(PeerChannelError) {
        let tail = try stagingTail()
        let crc = payload.isEmpty ? 0 : CRC32C.checksum(payload)
        stagedBytes += WireReadReply.encodePrefix(tag: tag, errno: errno, crc32c: crc, payloadBytes: payload.count,
                                                  promotionNumber: promotionNumber, into: tail)
        guard !payload.isEmpty else { return }
        if payload.count <= Self.stagedPayloadMax {
            try stage(payload)
        } else {
            try flush()
            try write(payload)
        }
    }

    /// Encrypts everything staged, in order; the ciphertext then waits in `takeCiphertext`.
    public func flush() throws(PeerChannelError) {
        guard stagedBytes > 0, let staging = stagingBuffer else { return }
        let count = stagedBytes
        stagedBytes = 0
        try write(UnsafeRawBufferPointer(rebasing: staging[0..<count]))
    }

    /// The staging buffer, allocated on first use.
    private var staging: UnsafeMutableRawBufferPointer {
        if let buffer = stagingBuffer { return buffer }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.stagingBytes, alignment: 64)
        stagingBuffer = buffer
        return buffer
    }

    /// Whether messages are staged and not yet encrypted.
    public var hasStaged: Bool { stagedBytes > 0 }

    /// The free end of the staging buffer, with room for any control frame or Data prefix
    /// (flushing first when there is not): frames are encoded straight into it.
    private func stagingTail() throws(PeerChannelError) -> UnsafeMutableRawBufferPointer {
        let frameBytesMax = max(WireFormat.controlFrameBytesMax, WireEncoder.dataPrefixBytes)
        if staging.count - stagedBytes < frameBytesMax { try flush() }
        return UnsafeMutableRawBufferPointer(rebasing: staging[stagedBytes...])
    }

    private func stage(_ bytes: UnsafeRawBufferPointer) throws(PeerChannelError) {
        if stagedBytes + bytes.count > staging.count { try flush() }
        guard bytes.count <= staging.count else { return try write(bytes) }
        (staging.baseAddress! + stagedBytes).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        stagedBytes += bytes.count
    }

    /// Ciphertext waiting for the socket.
    public var pendingCiphertextBytes: Int { connection.pendingCiphertextBytes }

    public func takeCiphertext(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        connection.takeCiphertext(into: buffer)
    }

    /// Ciphertext to send from where it lies, stable until `sent` accounts for it
    /// (TLSConnection.nextCiphertextToSend): the channel is its socket's output.
    public func nextBytesToSend() -> UnsafeRawBufferPointer { connection.nextCiphertextToSend() }

    public func sent(_ count: Int) {
        connection.ciphertextSent(count)
        ciphertextSentBytes &+= UInt64(count)
        sendObserver?.ciphertextSent(through: ciphertextSentBytes)
    }

    /// Ciphertext bytes the socket has taken over the channel's life.
    public private(set) var ciphertextSentBytes: UInt64 = 0
    /// Ciphertext bytes produced over the channel's life: what is sent and what waits. The
    /// last byte of what was encrypted so far is this far into the stream.
    public var ciphertextQueuedBytes: UInt64 { ciphertextSentBytes &+ UInt64(connection.pendingCiphertextBytes) }
    /// Told after each send (the copy trace: when a chunk's last byte left).
    public weak var sendObserver: CiphertextSendObserver?

    /// Encrypts what is staged (best effort) and queues close_notify; send `takeCiphertext`
    /// afterwards.
    public func close() {
        try? flush()
        connection.close()
    }

    private func write(_ bytes: UnsafeRawBufferPointer) throws(PeerChannelError) {
        do { try connection.writePlaintext(bytes) } catch { throw .tls(error) }
    }
}
