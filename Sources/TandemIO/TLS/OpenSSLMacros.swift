// OpenSSL's function-like macros that the TLS transport needs, spelled as the *_ctrl calls
// they expand to (see openssl/ssl.h and openssl/bio.h). They live here rather than in a
// CShims header because CShims.h is that module's umbrella header, so a second header in
// CShims/include would not be part of the module.
import COpenSSL

enum OpenSSLMacros {
    /// SSL_CTX_set_min_proto_version
    static func setMinProtoVersion(_ ctx: OpaquePointer, _ version: Int32) -> Bool {
        SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(version), nil) == 1
    }

    /// SSL_CTX_set_max_proto_version
    static func setMaxProtoVersion(_ ctx: OpaquePointer, _ version: Int32) -> Bool {
        SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, Int(version), nil) == 1
    }

    /// SSL_CTX_set_mode
    static func setMode(_ ctx: OpaquePointer, _ mode: Int) {
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, mode, nil)
    }

    /// BIO_set_mem_eof_return: -1 makes an empty memory BIO ask for a retry (more ciphertext
    /// may come) instead of reporting end of file.
    static func setMemEOFReturn(_ bio: OpaquePointer, _ value: Int) {
        _ = BIO_ctrl(bio, BIO_C_SET_BUF_MEM_EOF_RETURN, value, nil)
    }
}
