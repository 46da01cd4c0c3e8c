// PlacedPayload: a Data frame's payload that the channel decrypted straight into a pool
// buffer (TLSWireChannel.placementPool) rather than into the decoder's buffer, so that the
// secondary writes it to disk from where it was decrypted: one plaintext copy (OpenSSL's
// read buffer into this buffer) instead of two. Its CRC32C is computed piece by piece right
// after each piece is decrypted, while the piece is still in the cache.

public struct PlacedPayload {
    /// The pool buffer; whoever takes the payload (TLSWireChannel.takeFramePayload) releases
    /// it to the pool, or hands it back with `TLSWireChannel.release`.
    public let buffer: PoolBuffer
    /// The payload's length (the buffer may be larger: pool buffers are powers of two).
    public let bytes: Int
    /// The CRC32C of the payload's bytes, for the receiver to compare with the frame's.
    public internal(set) var crc32c: UInt32

    public var pointer: UnsafeMutableRawPointer { buffer.pointer }
}
