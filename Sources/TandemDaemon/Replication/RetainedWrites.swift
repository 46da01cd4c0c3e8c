// RetainedWrites: every write the secondary has not yet confirmed durable, in admission
// order, so that it can be re-sent after a reconnect. A write normally stays in the registered
// buffer its NBD request received it into: the request hands the buffer over, and the same
// bytes go to the local write, to the peer and to any re-send without a copy. When the pool
// it came from runs short (a slow or absent peer in async mode holds many writes), the write
// is instead copied into the spill arena and its buffer goes back to the pool at once, so that
// reads and new writes are still served. The arena also receives the initial copy's reads;
// zero chunks all share one block of zeros. Entries leave from the front once the state
// machine has released their write. Loop thread only.
import Glibc
import TandemCore
import TandemIO

final class RetainedWrites {
    enum Storage {
        /// A request's buffer, handed over: given back to `buffers` on release.
        case lent(DataBuffer)
        case spilled
        /// Memory owned elsewhere for longer than the entry (the shared zeros).
        case shared
    }

    struct Entry {
        var pointer: UnsafeMutableRawPointer
        var length: Int
        /// 0 until the state machine admitted the write and assigned its sequence.
        var sequence: WriteSequence
        var storage: Storage
        /// A block read for the initial full copy (counted as resync traffic, not replication).
        var initialCopy = false
    }

    let buffers: DataBuffers
    let arena: SpillArena
    private var entries: [Entry?]
    private var head = 0  // index of the oldest entry
    private(set) var count = 0
    /// Bytes of lent buffers held, and how many writes were copied into the arena instead.
    private(set) var lentBytes = 0
    private(set) var spilledWrites: UInt64 = 0

    init(buffers: DataBuffers, arenaBytes: Int, writeBytesMax: Int, entriesMax: Int) {
        self.buffers = buffers
        arena = SpillArena(bufferBytes: arenaBytes, writeBytesMax: writeBytesMax, spansMax: entriesMax)
        entries = Array(repeating: nil, count: entriesMax)
    }

    deinit { releaseAll() }

    var isFull: Bool { count == entries.count }

    private func entry(at position: Int) -> Entry {
        entries[(head + position) % entries.count]!
    }

    private func append(_ entry: Entry) -> Int {
        precondition(!isFull)
        let index = (head + count) % entries.count
        entries[index] = entry
        count += 1
        return index
    }

    /// Keeps a request's own buffer (the caller checked `isFull`).
    func appendLent(_ buffer: DataBuffer, length: Int) -> Int {
        lentBytes += buffer.capacity
        return append(Entry(pointer: buffer.pointer, length: length, sequence: 0, storage: .lent(buffer)))
    }

    /// Space for `length` bytes in the arena, or nil when there is none now.
    func appendSpilled(length: Int, initialCopy: Bool = false) -> (index: Int, pointer: UnsafeMutableRawPointer)? {
        guard !isFull, let pointer = arena.reserve(length) else { return nil }
        let entry = Entry(pointer: pointer, length: length, sequence: 0, storage: .spilled, initialCopy: initialCopy)
        return (append(entry), pointer)
    }

    /// Bytes that outlive the entry (the caller checked `isFull`).
    func appendShared(_ pointer: UnsafeMutableRawPointer, length: Int) -> Int {
        append(Entry(pointer: pointer, length: length, sequence: 0, storage: .shared))
    }

    /// Copies a write into the arena (its buffer stays with the request); nil when full.
    func appendCopy(of bytes: UnsafeRawPointer, length: Int) -> Int? {
        guard let (index, pointer) = appendSpilled(length: length) else { return nil }
        pointer.copyMemory(from: bytes, byteCount: length)
        spilledWrites += 1
        return index
    }

    func assign(index: Int, sequence: WriteSequence) {
        precondition(entries[index] != nil && entries[index]!.sequence == 0)
        entries[index]!.sequence = sequence
    }

    func pointer(index: Int) -> UnsafeMutableRawPointer { entries[index]!.pointer }

    /// The bytes of the write with `sequence`, if still held.
    func payload(sequence: WriteSequence) -> UnsafeRawBufferPointer? {
        guard let found = find(sequence) else { return nil }
        return UnsafeRawBufferPointer(start: found.pointer, count: found.length)
    }

    /// Whether the write with `sequence` is a block of the initial full copy.
    func isInitialCopy(sequence: WriteSequence) -> Bool { find(sequence)?.initialCopy ?? false }

    private func find(_ sequence: WriteSequence) -> Entry? {
        guard count > 0 else { return nil }
        let first = entry(at: 0).sequence
        guard first != 0, sequence >= first, sequence - first < UInt64(count) else { return nil }
        let found = entry(at: Int(sequence - first))
        precondition(found.sequence == sequence, "retained writes out of sequence order")
        return found
    }

    /// Drops entries from the front while `released(sequence)` says the state machine has
    /// let go of them. Giving a buffer back may wake NBD connections waiting for one (and so
    /// submit new writes): call it where that is safe.
    func releaseFront(_ released: (WriteSequence) -> Bool) {
        while count > 0 {
            let front = entry(at: 0)
            guard front.sequence != 0, released(front.sequence) else { return }
            dropFront()
        }
    }

    /// Drops every entry (replication is stopping).
    func releaseAll() {
        while count > 0 { dropFront() }
    }

    private func dropFront() {
        let front = entries[head]!
        entries[head] = nil
        head = (head + 1) % entries.count
        count -= 1
        free(front.storage)
    }

    /// Drops the newest entry (its write was refused before admission).
    func dropLast(index: Int) {
        precondition(count > 0 && (head + count - 1) % entries.count == index)
        let last = entries[index]!
        entries[index] = nil
        count -= 1
        switch last.storage {
        case .spilled: arena.unreserveNewest()
        default: free(last.storage)
        }
    }

    private func free(_ storage: Storage) {
        switch storage {
        case .lent(let buffer):
            lentBytes -= buffer.capacity
            buffers.release(buffer)
        case .spilled: arena.releaseOldest()
        case .shared: break
        }
    }
}

/// A circular byte log for copies, allocated once (the replication buffer bound plus slack
/// for wrap-around; pages are touched only when used). Spans are reserved at the tail and
/// released from the head, in the same order.
final class SpillArena {
    let capacityBytes: Int
    let base: UnsafeMutableRawPointer
    private var spans: [(offset: Int, length: Int)]
    private var head = 0
    private(set) var count = 0

    init(bufferBytes: Int, writeBytesMax: Int, spansMax: Int) {
        capacityBytes = bufferBytes + 2 * writeBytesMax
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, capacityBytes) == 0 && memory != nil, "spill arena allocation")
        base = memory!
        spans = Array(repeating: (0, 0), count: spansMax)
    }

    deinit { Glibc.free(base) }

    private func span(at position: Int) -> (offset: Int, length: Int) { spans[(head + position) % spans.count] }

    func reserve(_ length: Int) -> UnsafeMutableRawPointer? {
        precondition(length > 0)
        guard count < spans.count, let offset = place(length) else { return nil }
        spans[(head + count) % spans.count] = (offset, length)
        count += 1
        return base + offset
    }

    private func place(_ length: Int) -> Int? {
        guard count > 0 else { return length <= capacityBytes ? 0 : nil }
        let headOffset = span(at: 0).offset
        let newest = span(at: count - 1)
        let tailOffset = newest.offset + newest.length
        if tailOffset > headOffset {
            if capacityBytes - tailOffset >= length { return tailOffset }
            return headOffset > length ? 0 : nil
        }
        return headOffset - tailOffset > length ? tailOffset : nil
    }

    func releaseOldest() {
        precondition(count > 0)
        head = (head + 1) % spans.count
        count -= 1
    }

    func unreserveNewest() {
        precondition(count > 0)
        count -= 1
    }
}
