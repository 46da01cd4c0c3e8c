// TLSCiphertextBIO: the OpenSSL BIO method under every TLSConnection, one BIO per direction,
// each reading from or writing to a CiphertextQueue (the session's incoming ciphertext) or an
// OutgoingCiphertext (what waits for the socket). It is what a memory BIO was, without the
// memory BIO's zero-fill and compaction copies, and it lets the socket send straight from
// the bytes OpenSSL wrote and OpenSSL read straight from the socket's receive buffer.
import COpenSSL

/// Ciphertext to send: OpenSSL appends to one queue while the socket sends from the other,
/// whose bytes therefore stay where they are until the socket has sent all of them.
final class OutgoingCiphertext {
    // Two fixed queues and which one fills, rather than two swapped `var`s: OpenSSL appends
    // once per record, and reading a `var` class reference retains and releases it around
    // every call (swift_release was 1–2.5 % of a sending node's samples).
    private let first = CiphertextQueue()
    private let second = CiphertextQueue()
    private var firstFills = true

    var count: Int { first.count + second.count }

    /// The room both queues hold, used or not.
    var capacity: Int { first.capacity + second.capacity }

    /// Frees the room of each queue that holds nothing: an empty sending queue has no send in
    /// flight (its bytes stay until `sent` accounts for all of them).
    func releaseIfEmpty() {
        first.releaseIfEmpty()
        second.releaseIfEmpty()
    }

    func append(_ bytes: UnsafeRawPointer, count: Int) {
        if firstFills { first.append(bytes, count: count) } else { second.append(bytes, count: count) }
    }

    /// The next bytes to send, unchanged until `sent` has accounted for all of them (appends
    /// go to the other queue meanwhile). Empty when nothing waits.
    func nextSend() -> UnsafeRawBufferPointer {
        if (firstFills ? second : first).count == 0 { firstFills.toggle() }
        return (firstFills ? second : first).ownedBytes
    }

    /// `count` bytes of the last `nextSend` reached the socket.
    func sent(_ count: Int) { (firstFills ? second : first).consume(count) }

    /// Copies up to `buffer.count` bytes, oldest first, into `buffer` (for callers that own
    /// their send buffer; not to be mixed with a `nextSend` whose send is still in flight).
    func take(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        let (filling, sending) = firstFills ? (first, second) : (second, first)
        var taken = sending.read(into: base, maxBytes: buffer.count)
        if taken < buffer.count { taken += filling.read(into: base + taken, maxBytes: buffer.count - taken) }
        return taken
    }
}

enum TLSCiphertextBIO {
    /// The BIO method, made once per process (OpenSSL keeps it for the process's life).
    nonisolated(unsafe) static let method: OpaquePointer = {
        guard let method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tandem ciphertext") else {
            preconditionFailure("BIO_meth_new failed")
        }
        BIO_meth_set_read_ex(method, tandemBIORead)
        BIO_meth_set_write_ex(method, tandemBIOWrite)
        BIO_meth_set_ctrl(method, tandemBIOControl)
        return method
    }()

    /// A BIO over `incoming` (reads) or `outgoing` (writes); its owner keeps both alive for
    /// longer than the BIO (the SSL that owns the BIO is freed first).
    static func make(incoming: CiphertextQueue) -> OpaquePointer? {
        make(Unmanaged.passUnretained(incoming).toOpaque())
    }

    static func make(outgoing: OutgoingCiphertext) -> OpaquePointer? {
        make(Unmanaged.passUnretained(outgoing).toOpaque())
    }

    private static func make(_ data: UnsafeMutableRawPointer) -> OpaquePointer? {
        guard let bio = BIO_new(method) else { return nil }
        BIO_set_data(bio, data)
        BIO_set_init(bio, 1)
        return bio
    }

    static let retryRead = Int32(BIO_FLAGS_READ | BIO_FLAGS_SHOULD_RETRY)
    // BIO_FLAGS_RWS (read | write | special), a macro of macros Swift does not import.
    static let retryFlags = Int32(BIO_FLAGS_READ | BIO_FLAGS_WRITE | BIO_FLAGS_IO_SPECIAL | BIO_FLAGS_SHOULD_RETRY)
}

/// An empty queue asks OpenSSL to retry (more ciphertext may come), as a memory BIO with an
/// EOF return of -1 did: end of stream is the socket's business, not the BIO's.
private func tandemBIORead(
    _ bio: OpaquePointer?, _ buffer: UnsafeMutablePointer<CChar>?, _ count: Int, _ read: UnsafeMutablePointer<Int>?
) -> Int32 {
    guard let bio, let buffer, let data = BIO_get_data(bio) else { return 0 }
    BIO_clear_flags(bio, TLSCiphertextBIO.retryFlags)
    // Borrowed, not retained: the connection keeps the queue alive for longer than the SSL.
    let copied = Unmanaged<CiphertextQueue>.fromOpaque(data)._withUnsafeGuaranteedRef {
        $0.read(into: UnsafeMutableRawPointer(buffer), maxBytes: count)
    }
    read?.pointee = copied
    if copied == 0 && count > 0 {
        BIO_set_flags(bio, TLSCiphertextBIO.retryRead)
        return 0
    }
    return 1
}

/// Writes never fail or fall short: the queue grows (bounded by what the owner sends).
private func tandemBIOWrite(
    _ bio: OpaquePointer?, _ bytes: UnsafePointer<CChar>?, _ count: Int, _ written: UnsafeMutablePointer<Int>?
) -> Int32 {
    guard let bio, let data = BIO_get_data(bio) else { return 0 }
    BIO_clear_flags(bio, TLSCiphertextBIO.retryFlags)
    if let bytes, count > 0 {
        Unmanaged<OutgoingCiphertext>.fromOpaque(data)._withUnsafeGuaranteedRef { $0.append(bytes, count: count) }
    }
    written?.pointee = count
    return 1
}

/// Only what an SSL asks of its BIOs: flush (nothing to do) and how much is pending.
private func tandemBIOControl(_ bio: OpaquePointer?, _ command: Int32, _ value: Int, _ pointer: UnsafeMutableRawPointer?) -> Int {
    switch command {
    case BIO_CTRL_FLUSH: return 1
    case BIO_CTRL_PENDING, BIO_CTRL_WPENDING: return 0  // nothing buffered inside the BIO itself
    default: return 0
    }
}
