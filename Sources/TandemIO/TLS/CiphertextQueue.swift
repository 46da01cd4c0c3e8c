// CiphertextQueue: the bytes between a TLS session and its socket, in one direction. It
// replaces OpenSSL's memory BIO, whose every write zero-fills the room it grows into
// (BUF_MEM_grow_clean) before copying, and moves unread bytes to the front before the next
// write: on a replicating pair that was a memset and a memmove of every ciphertext byte.
// Here the room is never zero-filled (every byte is written before it is read), unread bytes
// move only when the queue is out of room at its end, and the receive side can lend the
// socket's own buffer for the length of one call, so ciphertext is not copied at all on its
// way into OpenSSL. An empty queue that grew past its first room gives the room back when its
// owner finds the link idle (`releaseIfEmpty`), so an idle pair does not keep the largest
// backlog it ever saw; one that did not grow keeps it, so an idle link's pings allocate
// nothing.
// Confined to the thread that owns the TLS session.
import Glibc

final class CiphertextQueue {
    /// The room a queue starts with once it is first written (one TLS record and its
    /// overhead); it doubles from there to the largest backlog seen and is kept until the
    /// queue is empty and its owner releases it.
    static let initialBytes = 32 << 10

    private var storage: UnsafeMutableRawPointer?
    private(set) var capacity = 0
    /// Unread owned bytes are `start..<end`.
    private var start = 0
    private var end = 0
    /// Bytes lent by the caller for the length of one `lending` call, read after the owned ones.
    private var lent: UnsafeRawBufferPointer?
    private var lentOffset = 0

    deinit { free(storage) }

    /// Unread bytes, owned and lent.
    var count: Int { end - start + (lent.map { $0.count - lentOffset } ?? 0) }

    /// Copies `bytes` onto the end, growing the room if it must.
    func append(_ bytes: UnsafeRawPointer, count: Int) {
        guard count > 0 else { return }
        reserve(count)
        (storage! + end).copyMemory(from: bytes, byteCount: count)
        end += count
    }

    /// Moves up to `maxBytes` unread bytes, owned first, into `destination`; returns how many.
    func read(into destination: UnsafeMutableRawPointer, maxBytes: Int) -> Int {
        var copied = 0
        let owned = min(end - start, maxBytes)
        if owned > 0 {
            destination.copyMemory(from: storage! + start, byteCount: owned)
            consume(owned)
            copied = owned
        }
        if copied < maxBytes, let lent {
            let fromLent = min(lent.count - lentOffset, maxBytes - copied)
            if fromLent > 0 {
                (destination + copied).copyMemory(from: lent.baseAddress! + lentOffset, byteCount: fromLent)
                lentOffset += fromLent
                copied += fromLent
            }
        }
        return copied
    }

    /// The owned unread bytes, contiguous (lent bytes are not included).
    var ownedBytes: UnsafeRawBufferPointer {
        guard let storage else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: storage + start, count: end - start)
    }

    /// Drops `count` owned bytes from the front.
    func consume(_ count: Int) {
        precondition(count >= 0 && count <= end - start, "consumed more than the queue holds")
        start += count
        if start == end {
            start = 0
            end = 0
        }
    }

    /// Lets reads take `bytes` without copying them in, for the length of `body`; whatever
    /// `body` left unread is then copied into the queue (normally nothing: the session reads
    /// until it needs more).
    func lending<Result>(_ bytes: UnsafeRawBufferPointer, _ body: () throws -> Result) rethrows -> Result {
        precondition(lent == nil, "ciphertext lent twice")
        guard !bytes.isEmpty else { return try body() }
        lent = bytes
        lentOffset = 0
        defer {
            let left = bytes.count - lentOffset
            lent = nil
            lentOffset = 0
            if left > 0 { append(bytes.baseAddress! + (bytes.count - left), count: left) }
        }
        return try body()
    }

    /// Frees the room when it grew past `initialBytes` and nothing is unread (nor lent); the
    /// next append allocates again.
    func releaseIfEmpty() {
        guard capacity > Self.initialBytes, end == start, lent == nil else { return }
        free(storage)
        storage = nil
        capacity = 0
        start = 0
        end = 0
    }

    /// Room for `count` more bytes at the end: unread bytes move to the front when that makes
    /// room, else the storage doubles (never zero-filled).
    private func reserve(_ count: Int) {
        if capacity - end >= count { return }
        let unread = end - start
        if start > 0 && capacity - unread >= count {
            (storage! + 0).copyMemory(from: storage! + start, byteCount: unread)
            start = 0
            end = unread
            return
        }
        var grown = max(capacity, Self.initialBytes)
        while grown - unread < count { grown *= 2 }
        guard let memory = malloc(grown) else { preconditionFailure("out of memory for TLS ciphertext") }
        if unread > 0 { memory.copyMemory(from: storage! + start, byteCount: unread) }
        free(storage)
        storage = memory
        capacity = grown
        start = 0
        end = unread
    }
}
