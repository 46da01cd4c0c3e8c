// Errors of the peer TLS transport, each with a reason an operator can act on. OpenSSL's
// per-thread error queue is drained into the message, so a later failure never reports an
// earlier one's cause.
import COpenSSL

public struct TLSError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Equatable, Sendable {
        /// CA, certificate or key could not be loaded, or do not match.
        case configuration
        /// The peer's certificate does not chain to the configured CA (or is otherwise invalid).
        case peerVerification
        /// The peer's certificate is valid but does not name the expected node.
        case peerName
        /// The peer does not speak TLS 1.3.
        case protocolVersion
        /// The peer refused us (it sent a fatal alert).
        case refusedByPeer
        /// Any other handshake or record-layer failure.
        case handshake
        /// The peer closed the connection (cleanly or not) where more was expected.
        case closed
        /// The socket failed.
        case io
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "TLS \(kind.rawValue): \(message)" }

    /// What OpenSSL queued for a failure: the packed error codes, for decisions, and their
    /// text, for people. Decisions never read the text.
    struct QueuedErrors {
        var codes: [UInt] = []
        var text: String { codes.map(Self.describe).joined(separator: "; ") }
        var isEmpty: Bool { codes.isEmpty }

        /// An SSL-library error with one of `reasons` (SSL_R_*).
        func containsSSLReason(where matches: (Int32) -> Bool) -> Bool {
            codes.contains { code in ERR_GET_LIB(code) == ERR_LIB_SSL && matches(ERR_GET_REASON(code)) }
        }

        static func describe(_ code: UInt) -> String {
            var buffer = [CChar](repeating: 0, count: 256)
            return buffer.withUnsafeMutableBufferPointer { pointer in
                ERR_error_string_n(code, pointer.baseAddress, pointer.count)
                return String(cString: pointer.baseAddress!)
            }
        }
    }

    /// Empties OpenSSL's error queue for this thread (the first 16 entries are kept).
    static func drainErrorQueue() -> QueuedErrors {
        var queued = QueuedErrors()
        while queued.codes.count < 16 {
            let code = ERR_get_error()
            if code == 0 { break }
            queued.codes.append(code)
        }
        ERR_clear_error()
        return queued
    }

    /// An error whose message ends with whatever OpenSSL queued.
    static func fromQueue(_ kind: Kind, _ message: String) -> TLSError {
        let queue = drainErrorQueue()
        return TLSError(kind, queue.isEmpty ? message : "\(message): \(queue.text)")
    }
}
