// TLSConnection: one peer TLS session over in-memory ciphertext queues (TLSCiphertextBIO). It
// never touches a socket: the caller feeds it ciphertext that arrived (or lends it, for the
// length of one call) and takes ciphertext to send (or sends it from where it lies), so any
// socket engine (the io_uring loop, or TLSBlockingStream in tests) can move the bytes.
import COpenSSL

/// Confined to one thread (an OpenSSL SSL object is not thread-safe); `@unchecked Sendable`
/// only so it can be handed to the thread that owns it.
public final class TLSConnection: @unchecked Sendable {
    public enum State: Equatable, Sendable { case handshaking, established, closed, failed }

    public enum ReadResult: Equatable, Sendable {
        case bytes(Int)
        /// Feed more ciphertext (and send what `takeCiphertext` yields) before reading again.
        case needsCiphertext
        /// The peer sent close_notify.
        case closed
    }

    public let context: TLSContext
    public private(set) var state: State = .handshaking
    private let ssl: OpaquePointer
    /// Released after deinit has freed `ssl`: its BIOs point at these without retaining them.
    private let incoming = CiphertextQueue()
    private let outgoing = OutgoingCiphertext()
    /// Subject of the first certificate that failed verification, for the refusal message
    /// (OpenSSL does not keep a rejected peer's certificate).
    fileprivate var rejectedSubject: String?

    /// Whether the handshake itself requires the context's expected peer name. A listener
    /// that serves several resources learns which name to expect only from the peer's Hello;
    /// it passes false and checks `peerCertificateNames` afterwards. The chain to the CA is
    /// always verified.
    public let checksPeerName: Bool

    public init(context: TLSContext, checksPeerName: Bool = true) throws(TLSError) {
        self.checksPeerName = checksPeerName
        ERR_clear_error()
        guard let ssl = SSL_new(context.handle) else { throw .fromQueue(.configuration, "SSL_new failed") }
        self.context = context
        self.ssl = ssl
        guard let readBIO = TLSCiphertextBIO.make(incoming: incoming) else {
            SSL_free(ssl)
            throw .fromQueue(.configuration, "BIO_new failed")
        }
        guard let writeBIO = TLSCiphertextBIO.make(outgoing: outgoing) else {
            BIO_free(readBIO)
            SSL_free(ssl)
            throw .fromQueue(.configuration, "BIO_new failed")
        }
        SSL_set_bio(ssl, readBIO, writeBIO)  // the SSL owns both BIOs from here on
        if context.role == .server { SSL_set_accept_state(ssl) } else { SSL_set_connect_state(ssl) }
        // The SSL never outlives self (deinit frees it), so an unretained reference is safe.
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
        SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tandemRecordRejectedCertificate)
        if checksPeerName { try requirePeerName(context.expectedPeerName) }
    }

    deinit { SSL_free(ssl) }

    /// Makes certificate verification itself check the name, so a wrong peer fails inside the
    /// handshake (and is sent an alert) rather than after it.
    private func requirePeerName(_ name: String) throws(TLSError) {
        let parameters = SSL_get0_param(ssl)
        X509_VERIFY_PARAM_set_hostflags(parameters, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
        guard X509_VERIFY_PARAM_set1_host(parameters, name, name.utf8.count) == 1 else {
            throw .fromQueue(.configuration, "cannot require peer name '\(name)'")
        }
    }

    // MARK: Ciphertext in and out

    /// Hands ciphertext received from the peer to the session (copied into its queue).
    public func feedCiphertext(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        incoming.append(base, count: bytes.count)
    }

    /// Lets the session read `bytes` where they lie during `body` (which handshakes, reads
    /// plaintext, ...), saving the copy `feedCiphertext` makes; what `body` leaves unread is
    /// copied in afterwards, so `bytes` may be reused once this returns.
    public func lendingCiphertext<Result>(_ bytes: UnsafeRawBufferPointer, _ body: () throws -> Result) rethrows
        -> Result
    {
        try incoming.lending(bytes, body)
    }

    /// Ciphertext waiting to be sent to the peer.
    public var pendingCiphertextBytes: Int { outgoing.count }

    /// Moves up to `buffer.count` bytes of ciphertext to send into `buffer`; returns the count.
    /// Not to be mixed with a `nextCiphertextToSend` whose send is still in flight.
    public func takeCiphertext(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        outgoing.take(into: buffer)
    }

    /// Ciphertext to send, where OpenSSL wrote it: the bytes stay put (later writes queue
    /// behind them) until `ciphertextSent` has accounted for all of them. Empty when nothing
    /// waits.
    public func nextCiphertextToSend() -> UnsafeRawBufferPointer { outgoing.nextSend() }

    /// `count` bytes of the last `nextCiphertextToSend` were sent.
    public func ciphertextSent(_ count: Int) { outgoing.sent(count) }

    /// The room of the ciphertext queues, used or not.
    public var ciphertextCapacityBytes: Int { incoming.capacity + outgoing.capacity }

    /// Frees the ciphertext queues' room where they hold nothing (an idle link).
    public func releaseIdleBuffers() {
        incoming.releaseIfEmpty()
        outgoing.releaseIfEmpty()
    }

    /// Decrypted bytes already buffered inside the session (readable without more ciphertext).
    public var pendingPlaintextBytes: Int { Int(SSL_pending(ssl)) }

    // MARK: Handshake

    /// Advances the handshake with the ciphertext fed so far. Returns true once established;
    /// false means: send `takeCiphertext`, feed what comes back, call again. On failure the
    /// alert for the peer is still waiting in `takeCiphertext` — send it before closing.
    @discardableResult
    public func handshake() throws(TLSError) -> Bool {
        switch state {
        case .established: return true
        case .closed: throw TLSError(.closed, "connection is closed")
        case .failed: throw TLSError(.handshake, "handshake already failed")
        case .handshaking: break
        }
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            try checkEstablishedPeer()
            state = .established
            return true
        }
        let code = SSL_get_error(ssl, result)
        if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE { return false }
        throw fail(code, during: "handshake")
    }

    /// Verification already ran inside the handshake; this repeats the two checks that matter
    /// so that no configuration slip can let an unverified peer through.
    private func checkEstablishedPeer() throws(TLSError) {
        let verify = SSL_get_verify_result(ssl)
        guard verify == X509_V_OK else { throw failPeer(verify) }
        guard let certificate = SSL_get0_peer_certificate(ssl) else {
            state = .failed
            throw TLSError(.peerVerification, "peer presented no certificate")
        }
        guard checksPeerName else { return }
        let name = context.expectedPeerName
        guard
            X509_check_host(certificate, name, name.utf8.count, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS), nil) == 1
        else { throw failPeer(Int(X509_V_ERR_HOSTNAME_MISMATCH)) }
    }

    /// The verified peer certificate's subject, e.g. "CN=beta", for logs and status.
    public var peerSubject: String? {
        SSL_get0_peer_certificate(ssl).flatMap(subjectLine)
    }

    /// Whether the verified peer certificate names `name` (SAN DNS, else CN), as the
    /// handshake's own check would have decided.
    public func peerCertificateNames(_ name: String) -> Bool {
        guard state == .established, !name.isEmpty, let certificate = SSL_get0_peer_certificate(ssl) else {
            return false
        }
        return X509_check_host(certificate, name, name.utf8.count, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS), nil)
            == 1
    }

    /// "TLSv1.3" once established.
    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    // MARK: Plaintext

    /// Encrypts all of `bytes` into the outgoing ciphertext (memory BIOs never write short).
    public func writePlaintext(_ bytes: UnsafeRawBufferPointer) throws(TLSError) {
        guard state == .established else { throw TLSError(.closed, "write on a connection that is \(state)") }
        guard !bytes.isEmpty else { return }
        ERR_clear_error()
        var written = 0
        let result = SSL_write_ex(ssl, bytes.baseAddress!, bytes.count, &written)
        guard result == 1 else { throw fail(SSL_get_error(ssl, result), during: "write") }
        precondition(written == bytes.count, "short TLS write on a memory BIO")
    }

    /// Decrypts into `buffer` from the ciphertext fed so far.
    public func readPlaintext(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> ReadResult {
        switch state {
        case .established: break
        case .closed: return .closed
        case .handshaking, .failed: throw TLSError(.closed, "read on a connection that is \(state)")
        }
        guard !buffer.isEmpty else { return .bytes(0) }
        ERR_clear_error()
        var read = 0
        let result = SSL_read_ex(ssl, buffer.baseAddress!, buffer.count, &read)
        if result == 1 { return .bytes(read) }
        let code = SSL_get_error(ssl, result)
        if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE { return .needsCiphertext }
        if code == SSL_ERROR_ZERO_RETURN {
            state = .closed
            return .closed
        }
        throw fail(code, during: "read")
    }

    /// Queues close_notify for the peer (send `takeCiphertext` afterwards).
    public func close() {
        guard state == .established else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
        state = .closed
    }

    // MARK: Errors

    private func fail(_ code: Int32, during operation: String) -> TLSError {
        state = .failed
        let verify = SSL_get_verify_result(ssl)
        if verify != X509_V_OK { return failPeer(verify) }
        if code == SSL_ERROR_ZERO_RETURN { return TLSError(.closed, "peer closed the connection during \(operation)") }
        let queue = TLSError.drainErrorQueue()
        if code == SSL_ERROR_SYSCALL && queue.isEmpty {
            return TLSError(.closed, "connection ended without close_notify during \(operation)")
        }
        return TLSError(Self.classify(queue), "\(operation) failed: \(queue.isEmpty ? "SSL error \(code)" : queue.text)")
    }

    /// By OpenSSL's reason codes: a version we or the peer refuse, else a fatal alert the peer
    /// sent (OpenSSL reports a received alert N as reason SSL_AD_REASON_OFFSET + N).
    private static func classify(_ queue: TLSError.QueuedErrors) -> TLSError.Kind {
        if queue.containsSSLReason(where: { $0 == SSL_R_UNSUPPORTED_PROTOCOL || $0 == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION }) {
            return .protocolVersion
        }
        let alerts = Int32(SSL_AD_REASON_OFFSET)..<Int32(SSL_AD_REASON_OFFSET + 256)
        if queue.containsSSLReason(where: { alerts.contains($0) }) { return .refusedByPeer }
        return .handshake
    }

    private func failPeer(_ verify: Int) -> TLSError {
        state = .failed
        let queue = TLSError.drainErrorQueue()
        let detail = queue.isEmpty ? "" : " [\(queue.text)]"
        let subject = (peerSubject ?? rejectedSubject).map { " (peer certificate subject \($0))" } ?? ""
        if verify == Int(X509_V_ERR_HOSTNAME_MISMATCH) {
            return TLSError(
                .peerName,
                "peer certificate does not name the expected node '\(context.expectedPeerName)' "
                    + "(checked SAN DNS, then CN)\(subject)\(detail)")
        }
        let reason = String(cString: X509_verify_cert_error_string(verify))
        return TLSError(.peerVerification, "peer certificate verification failed: \(reason)\(subject)\(detail)")
    }
}

/// "/CN=beta" for a certificate.
private func subjectLine(_ certificate: OpaquePointer) -> String? {
    guard let name = X509_get_subject_name(certificate) else { return nil }
    var buffer = [CChar](repeating: 0, count: 256)
    return buffer.withUnsafeMutableBufferPointer { pointer in
        X509_NAME_oneline(name, pointer.baseAddress, Int32(pointer.count))
        return String(cString: pointer.baseAddress!)
    }
}

/// Verify callback: keeps OpenSSL's decision, and remembers which certificate it rejected.
private func tandemRecordRejectedCertificate(_ preverifyOK: Int32, _ store: OpaquePointer?) -> Int32 {
    guard preverifyOK != 1, let store,
        let ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
        let owner = SSL_get_ex_data(OpaquePointer(ssl), 0)
    else { return preverifyOK }
    let connection = Unmanaged<TLSConnection>.fromOpaque(owner).takeUnretainedValue()
    if connection.rejectedSubject == nil, let certificate = X509_STORE_CTX_get_current_cert(store) {
        connection.rejectedSubject = subjectLine(certificate)
    }
    return preverifyOK
}
