// TLSWireChannel: the peer protocol over one TLSConnection, with no socket. Ciphertext from
// the socket engine goes in, decoded frames come out; messages go in, ciphertext to send comes
// out. Control messages are encoded into a buffer allocated once; Data payloads go from the
// caller's buffer straight into TLS encryption.
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
public final class TLSWireChannel: @unchecked Sendable {
    /// Plaintext is decrypted in pieces of up to this size straight into the decoder's buffer.
    public static let plaintextChunkBytes = 64 << 10

    public let connection: TLSConnection
    /// Stamped into every frame header this channel sends.
    public var promotionNumber: UInt64
    private var decoder: WireDecoder
    private let controlFrame: UnsafeMutableRawBufferPointer

    public init(connection: TLSConnection, promotionNumber: UInt64, checksOrdering: Bool = true) {
        self.connection = connection
        self.promotionNumber = promotionNumber
        self.decoder = WireDecoder(checksOrdering: checksOrdering)
        self.controlFrame = .allocate(
            byteCount: max(WireFormat.controlFrameBytesMax, WireEncoder.dataPrefixBytes), alignment: 16)
    }

    deinit {
        controlFrame.deallocate()
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
        connection.feedCiphertext(bytes)
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

    /// Encrypts a control message (anything but Data) without allocating.
    public func send(_ message: WireMessage) throws(PeerChannelError) {
        precondition(message.type != .data, "Data goes through sendData")
        let count: Int
        do {
            count = try WireEncoder.encode(message, promotionNumber: promotionNumber, into: controlFrame)
        } catch {
            throw .encode(error)
        }
        try write(UnsafeRawBufferPointer(rebasing: controlFrame[0..<count]))
    }

    /// Encrypts a Data frame: the prefix from a small buffer, the payload from where it lies.
    public func sendData(_ header: WireDataHeader, payload: UnsafeRawBufferPointer) throws(PeerChannelError) {
        let count: Int
        do {
            count = try WireEncoder.encodeDataPrefix(
                header, payloadBytes: payload.count, promotionNumber: promotionNumber, into: controlFrame)
        } catch {
            throw .encode(error)
        }
        try write(UnsafeRawBufferPointer(rebasing: controlFrame[0..<count]))
        try write(payload)
    }

    /// Ciphertext waiting for the socket.
    public var pendingCiphertextBytes: Int { connection.pendingCiphertextBytes }

    public func takeCiphertext(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        connection.takeCiphertext(into: buffer)
    }

    /// Queues close_notify; send `takeCiphertext` afterwards.
    public func close() { connection.close() }

    private func write(_ bytes: UnsafeRawBufferPointer) throws(PeerChannelError) {
        do { try connection.writePlaintext(bytes) } catch { throw .tls(error) }
    }
}
