// TLSContext: the configured side of Tandem's peer TLS — TLS 1.3 only, mutual certificate
// authentication against one CA, and the node name the peer's certificate must carry.
import COpenSSL

/// Immutable after `init`; OpenSSL allows creating connections from one SSL_CTX on several
/// threads once it is configured, hence `@unchecked Sendable`.
public final class TLSContext: @unchecked Sendable {
    public enum Role: Sendable { case client, server }

    let handle: OpaquePointer
    public let role: Role
    /// The node name the peer's certificate must carry (SAN DNS, falling back to the CN).
    public let expectedPeerName: String

    public convenience init(
        role: Role, caFile: String, certFile: String, keyFile: String, expectedPeerName: String
    ) throws(TLSError) {
        try self.init(
            role: role, caFile: caFile, certFile: certFile, keyFile: keyFile, expectedPeerName: expectedPeerName,
            protocolVersions: (TLS1_3_VERSION, TLS1_3_VERSION))
    }

    /// `protocolVersions` other than TLS 1.3 exist only so that tests can play an outdated peer.
    init(
        role: Role, caFile: String, certFile: String, keyFile: String, expectedPeerName: String,
        protocolVersions: (min: Int32, max: Int32)
    ) throws(TLSError) {
        guard !expectedPeerName.isEmpty else { throw TLSError(.configuration, "expected peer name is empty") }
        ERR_clear_error()
        guard let handle = SSL_CTX_new(role == .server ? TLS_server_method() : TLS_client_method()) else {
            throw .fromQueue(.configuration, "SSL_CTX_new failed")
        }
        self.handle = handle
        self.role = role
        self.expectedPeerName = expectedPeerName
        try configureProtocol(protocolVersions)
        try loadCredentials(caFile: caFile, certFile: certFile, keyFile: keyFile)
        SSL_CTX_set_verify(handle, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
    }

    deinit { SSL_CTX_free(handle) }

    private func configureProtocol(_ versions: (min: Int32, max: Int32)) throws(TLSError) {
        guard OpenSSLMacros.setMinProtoVersion(handle, versions.min),
            OpenSSLMacros.setMaxProtoVersion(handle, versions.max)
        else { throw .fromQueue(.configuration, "cannot restrict the protocol version to TLS 1.3") }
        OpenSSLMacros.setMode(handle, Int(SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        // No session tickets: every connection authenticates with certificates afresh.
        _ = SSL_CTX_set_num_tickets(handle, 0)
    }

    private func loadCredentials(caFile: String, certFile: String, keyFile: String) throws(TLSError) {
        guard SSL_CTX_load_verify_locations(handle, caFile, nil) == 1 else {
            throw .fromQueue(.configuration, "cannot load CA certificates from '\(caFile)'")
        }
        guard SSL_CTX_use_certificate_chain_file(handle, certFile) == 1 else {
            throw .fromQueue(.configuration, "cannot load the node certificate from '\(certFile)'")
        }
        guard SSL_CTX_use_PrivateKey_file(handle, keyFile, SSL_FILETYPE_PEM) == 1 else {
            throw .fromQueue(.configuration, "cannot load the private key from '\(keyFile)'")
        }
        guard SSL_CTX_check_private_key(handle) == 1 else {
            throw .fromQueue(.configuration, "the key in '\(keyFile)' does not match the certificate in '\(certFile)'")
        }
    }
}
