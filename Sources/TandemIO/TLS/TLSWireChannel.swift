// TLSWireChannel: the peer protocol over one TLSConnection, with no socket. Ciphertext from
// the socket engine goes in, decoded frames come out; messages go in, ciphertext to send comes
// out. Messages are encoded into a plaintext staging buffer (allocated once) and encrypted
// together by `flush`, which the owner calls once per loop turn: a turn's acknowledgements
// and small writes become one TLS record instead of one or two each. A Data payload above
// `stagedPayloadMax` is not copied: it goes from the caller's buffer straight into TLS
// encryption, after whatever was staged before it.
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

/// Confined to one thread (the event loop that owns the connection).
public final class TLSWireChannel: PeerSocketOutput, @unchecked Sendable {
    /// Plaintext is decrypted in pieces of up to this size straight into the decoder's buffer.
    public static let plaintextChunkBytes = 64 << 10
    /// Staged plaintext: four full TLS records.
    public static let stagingBytes = 64 << 10
    /// Larger payloads are encrypted from where they lie rather than copied into staging.
    public static let stagedPayloadMax = 8 << 10

    public let connection: TLSConnection
    /// Stamped into every frame header this channel sends.
    public var promotionNumber: UInt64
    private var decoder: WireDecoder
    private let staging: UnsafeMutableRawBufferPointer
    private var stagedBytes = 0

    public init(connection: TLSConnection, promotionNumber: UInt64, checksOrdering: Bool = true) {
        self.connection = connection
        self.promotionNumber = promotionNumber
        self.decoder = WireDecoder(checksOrdering: checksOrdering)
        self.staging = .allocate(byteCount: Self.stagingBytes, alignment: 64)
    }

    deinit {
        staging.deallocate()
    }

    public var isEstablished: Bool { connection.state == .established }

    /// Starts the handshake (a client has something to send before anything arrives).
    public func start() throws(PeerChannelError) {
        do { _ = try connection.handshake() } catch { throw .tls(error) }
    }

    /// Hands ciphertext from the socket to the session, advancing the handshake and decoding
    /// what it can. Returns false when the peer has closed the session.
    @discardableResult
    public func receiveCiphertext(_ bytes: UnsafeRawBufferPointer) throws(PeerChannelError) -> Bool {
        // OpenSSL reads the records from `bytes` where they lie (the socket's buffer).
        let result: Result<Bool, PeerChannelError> = connection.lendingCiphertext(bytes) {
            do throws(PeerChannelError) { return .success(try decryptReceived()) } catch { return .failure(error) }
        }
        return try result.get()
    }

    private func decryptReceived() throws(PeerChannelError) -> Bool {
        do {
            if connection.state == .handshaking, try !connection.handshake() { return true }
        } catch {
            throw .tls(error)
        }
        while true {
            switch try decryptIntoDecoder() {
            case .bytes: continue
            case .needsCiphertext: return true
            case .closed: return false
            }
        }
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
    public func nextFrame() throws(PeerChannelError) -> WireFrame? {
        do { return try decoder.next() } catch { throw .wire(error) }
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
        guard stagedBytes > 0 else { return }
        let count = stagedBytes
        stagedBytes = 0
        try write(UnsafeRawBufferPointer(rebasing: staging[0..<count]))
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

    public func sent(_ count: Int) { connection.ciphertextSent(count) }

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
