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
}
