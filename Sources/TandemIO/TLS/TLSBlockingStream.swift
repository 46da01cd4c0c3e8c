// TLSBlockingStream: runs a TLSConnection over a connected blocking socket with plain read(2)
// and write(2). For tests and for a first daemon integration; the event loop moves the same
// ciphertext with io_uring instead.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Confined to one thread, like the connection it drives. Does not own the descriptor.
public final class TLSBlockingStream: @unchecked Sendable {
    /// Size of the ciphertext staging buffer, allocated once.
    public static let ioBufferBytes = 64 << 10

    public let connection: TLSConnection
    public let fd: Int32
    private var ioBuffer: UnsafeMutableRawBufferPointer

    public init(connection: TLSConnection, fd: Int32) {
        self.connection = connection
        self.fd = fd
        self.ioBuffer = .allocate(byteCount: Self.ioBufferBytes, alignment: 16)
    }

    deinit { ioBuffer.deallocate() }

    /// Completes the handshake or throws the reason; on failure the alert is sent first, so
    /// the peer learns why.
    public func handshake() throws(TLSError) {
        do throws(TLSError) {
            while try !connection.handshake() {
                try flush()
                guard try receive() else { throw TLSError(.closed, "peer closed the connection during the handshake") }
            }
            try flush()
        } catch {
            try? flush()
            throw error
        }
    }

    /// Encrypts and sends all of `bytes`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(TLSError) {
        try connection.writePlaintext(bytes)
        try flush()
    }

    public func write(_ bytes: [UInt8]) throws(TLSError) {
        let result = bytes.withUnsafeBytes { pointer in Result { () throws(TLSError) in try write(pointer) } }
        try result.get()
    }

    /// Reads some plaintext; 0 means the peer closed the connection with close_notify.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> Int {
        while true {
            switch try connection.readPlaintext(into: buffer) {
            case .bytes(let count): return count
            case .closed: return 0
            case .needsCiphertext:
                try flush()
                guard try receive() else { throw TLSError(.closed, "connection ended without close_notify") }
            }
        }
    }

    /// Sends close_notify. The descriptor stays open; closing it is the owner's job.
    public func close() {
        connection.close()
        try? flush()
    }

    private func flush() throws(TLSError) {
        while true {
            let count = connection.takeCiphertext(into: ioBuffer)
            if count == 0 { return }
            try writeAll(UnsafeRawBufferPointer(rebasing: ioBuffer[0..<count]))
        }
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws(TLSError) {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw TLSError(.io, "write to peer socket failed: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    /// Reads one batch of ciphertext from the socket into the connection; false at EOF.
    private func receive() throws(TLSError) -> Bool {
        while true {
            let count = Glibc.read(fd, ioBuffer.baseAddress!, ioBuffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw TLSError(.io, "read from peer socket failed: \(String(cString: strerror(errno)))")
            }
            if count == 0 { return false }
            connection.feedCiphertext(UnsafeRawBufferPointer(rebasing: ioBuffer[0..<count]))
            return true
        }
    }
}
