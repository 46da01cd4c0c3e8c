// RetainedWrites: the payload of every write PrimaryNode still holds, keyed by its sequence
// number (the write's identity from admission to release), so that it can be re-sent after a
// reconnect. A write normally stays in the registered buffer its NBD request received it
// into: the request hands the buffer over, and the same bytes go to the local write, to the
// peer and to any re-send without a copy. When the pool it came from runs short (a slow or
// absent peer in async mode holds many writes), the write is instead copied into the spill
// arena and its buffer goes back to the pool at once, so that reads and new writes are still
// served. Copy chunks stay in the buffers they were read into (CopyBuffers); zero chunks all
// share one block of zeros. Entries leave from the front when the node releases them (`release(through:)`).
// The store is sized from the node's bounds (writes in flight, bytes held), so it never
// refuses a write the node admitted. An entry also carries its local write's progress (the
// driver's I/O tag is its slot). Loop thread only.
import DequeModule
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
        /// A copy chunk's buffer (`copies`), freed on release.
        case copyChunk(slot: Int)
    }

    struct Entry {
        var pointer: UnsafeMutableRawPointer
        var length: Int
        var sequence: WriteSequence
        var storage: Storage
        /// A block read for the full copy (counted as resync traffic, not replication).
        var initialCopy = false
        // The local write: where, how much is done, when it was submitted.
        var offset: UInt64 = 0
        var doneBytes = 0
        var fua = false
        var localSubmittedNs: UInt64 = 0
    }

    let buffers: DataBuffers
    let arena: SpillArena
    let copies: CopyBuffers
    private var entries: SlotTable<Entry>
    /// The oldest held sequence (meaningful when `count > 0`).
    private var first: WriteSequence = 0
    private(set) var count = 0
    /// Bytes of lent buffers held, and how many writes were copied into the arena instead.
    private(set) var lentBytes = 0
    private(set) var spilledWrites: UInt64 = 0
    /// Lent buffers of released entries, given back by `returnReleasedBuffers` (reserved:
    /// no allocation).
    private var releasedBuffers: [DataBuffer] = []

    /// - `bytesMax`, `entriesMax`: the node's bounds on bytes and writes held.
    /// - `writeBytesMax`: the largest single write (request or chunk).
    /// - `copyChunkBytes`, `copyChunksMax`: the copy's chunk size and how many it holds.
    init(buffers: DataBuffers, bytesMax: Int, writeBytesMax: Int, entriesMax: Int, copyChunkBytes: Int, copyChunksMax: Int) {
        self.buffers = buffers
        arena = SpillArena(bufferBytes: bytesMax, writeBytesMax: writeBytesMax, spansMax: entriesMax)
        copies = CopyBuffers(slotBytes: copyChunkBytes, slotsMax: copyChunksMax, pool: buffers.pool)
        entries = SlotTable(count: entriesMax)
        releasedBuffers.reserveCapacity(entriesMax)
    }

    deinit { releaseAll() }

    /// The slot of `sequence` (also the driver's I/O tag for its local write).
    func slot(_ sequence: WriteSequence) -> Int { Int(sequence % UInt64(entries.count)) }

    private func add(_ entry: Entry) {
        precondition(count < entries.count, "more writes held than the node admits")
        precondition(count == 0 || entry.sequence == first + UInt64(count), "retained writes out of sequence order")
        if count == 0 { first = entry.sequence }
        entries[slot(entry.sequence)] = entry
        count += 1
    }

    /// Keeps a request's own buffer for `sequence`.
    func retainLent(_ buffer: DataBuffer, length: Int, sequence: WriteSequence) {
        lentBytes += buffer.capacity
        add(Entry(pointer: buffer.pointer, length: length, sequence: sequence, storage: .lent(buffer)))
    }

    /// Copies a write into the arena (its buffer stays with the request).
    func retainCopy(of bytes: UnsafeRawPointer, length: Int, sequence: WriteSequence) {
        guard let pointer = arena.reserve(length) else {
            preconditionFailure("the spill arena refused a write the node admitted")
        }
        pointer.copyMemory(from: bytes, byteCount: length)
        spilledWrites += 1
        add(Entry(pointer: pointer, length: length, sequence: sequence, storage: .spilled))
    }

    /// Bytes that outlive the entry (the shared zeros).
    func retainShared(_ pointer: UnsafeMutableRawPointer, length: Int, sequence: WriteSequence) {
        add(Entry(pointer: pointer, length: length, sequence: sequence, storage: .shared))
    }

    /// The chunk read at `offset`, admitted under `sequence`: its buffer is the payload.
    /// Returns the chunk's buffer slot.
    @discardableResult
    func retainCopyChunk(offset: UInt64, length: Int, sequence: WriteSequence) -> Int {
        let (slot, pointer) = copies.buffer(offset: offset)
        add(Entry(pointer: pointer, length: length, sequence: sequence, storage: .copyChunk(slot: slot), initialCopy: true))
        return slot
    }

    /// The copy buffer slot of the held write `sequence`, if it is a copy chunk (the trace).
    func copySlot(sequence: WriteSequence) -> Int? {
        guard count > 0, sequence >= first, sequence - first < UInt64(count),
            case .copyChunk(let slot) = entries[slot(sequence)]!.storage
        else { return nil }
        return slot
    }

    /// Calls `body` with the copy buffer slot of every held copy chunk through `sequence`
    /// (what `release(through:)` is about to free; the trace).
    func forEachCopySlot(through sequence: WriteSequence, _ body: (Int) -> Void) {
        var next = first
        while next < first + UInt64(count), next <= sequence {
            if case .copyChunk(let slot) = entries[slot(next)]!.storage { body(slot) }
            next += 1
        }
    }

    /// The entry of a held sequence (its slot must hold it).
    subscript(slot slot: Int) -> Entry {
        get { entries[slot]! }
        _modify { yield &entries[slot]! }
    }

    /// The bytes of the write with `sequence`, if still held.
    func payload(sequence: WriteSequence) -> UnsafeRawBufferPointer? {
        guard count > 0, sequence >= first, sequence - first < UInt64(count) else { return nil }
        let found = entries[slot(sequence)]!
        return UnsafeRawBufferPointer(start: found.pointer, count: found.length)
    }

    /// Whether the write with `sequence` is a block of the full copy.
    func isInitialCopy(sequence: WriteSequence) -> Bool {
        guard count > 0, sequence >= first, sequence - first < UInt64(count) else { return false }
        return entries[slot(sequence)]!.initialCopy
    }

    /// Drops every entry through `sequence` at once (the node may reuse the room in the same
    /// batch); their lent buffers wait for `returnReleasedBuffers`, since giving one back
    /// may wake NBD connections waiting for one.
    func release(through sequence: WriteSequence) {
        while count > 0, first <= sequence { dropFront() }
    }

    /// Gives the lent buffers of released entries back to their pool (after a batch).
    func returnReleasedBuffers() {
        while let buffer = releasedBuffers.popLast() { buffers.release(buffer) }
    }

    /// Gives memory a burst used back once the store has been empty for two calls in a row
    /// (the replicator calls this every tick, about once a second): the slot table's chunks
    /// and the spill arena's pages. A store emptied only briefly between writes keeps them,
    /// so a busy link allocates nothing.
    func releaseMemoryWhenIdle() {
        copies.releaseMemoryWhenIdle()
        guard count == 0 else {
            emptyAtLastCall = false
            return
        }
        if emptyAtLastCall {
            entries.releaseChunksIfEmpty()
            arena.releasePagesIfEmpty()
        }
        emptyAtLastCall = true
    }

    private var emptyAtLastCall = false

    /// Drops every entry (replication is stopping) and gives every buffer back.
    func releaseAll() {
        while count > 0 { dropFront() }
        returnReleasedBuffers()
    }

    private func dropFront() {
        let index = slot(first)
        let front = entries[index]!
        entries[index] = nil
        first += 1
        count -= 1
        switch front.storage {
        case .lent(let buffer):
            lentBytes -= buffer.capacity
            releasedBuffers.append(buffer)
        case .spilled: arena.releaseOldest()
        case .shared: break
        case .copyChunk(let slot): copies.release(slot: slot)
        }
    }
}

/// A circular byte log for copies, allocated once (the replication buffer bound plus slack
/// for wrap-around; pages are touched only when used). Spans are reserved at the tail and
/// released from the head, in the same order.
final class SpillArena {
    let capacityBytes: Int
    let base: UnsafeMutableRawPointer
    /// Grows on demand up to `spansMax` and keeps its capacity (an idle pair holds none).
    private var spans: Deque<(offset: Int, length: Int)> = []
    private let spansMax: Int
    /// The end of the highest span reserved since the pages were last given back.
    private var touchedBytes = 0
    var count: Int { spans.count }

    init(bufferBytes: Int, writeBytesMax: Int, spansMax: Int) {
        capacityBytes = bufferBytes + 2 * writeBytesMax
        self.spansMax = spansMax
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, capacityBytes) == 0 && memory != nil, "spill arena allocation")
        base = memory!
    }

    deinit { Glibc.free(base) }

    private func span(at position: Int) -> (offset: Int, length: Int) { spans[position] }

    func reserve(_ length: Int) -> UnsafeMutableRawPointer? {
        precondition(length > 0)
        guard count < spansMax, let offset = place(length) else { return nil }
        spans.append((offset, length))
        touchedBytes = max(touchedBytes, offset + length)
        return base + offset
    }

    /// Gives the pages used since the last call back to the kernel, when no span is held:
    /// an arena that took a burst of spilled writes (up to the replication buffer) would
    /// otherwise keep them resident. The next spill faults fresh zero pages in.
    func releasePagesIfEmpty() {
        guard count == 0, touchedBytes > 0 else { return }
        let pageBytes = 4096
        let length = (touchedBytes + pageBytes - 1) / pageBytes * pageBytes
        precondition(madvise(base, length, MADV_DONTNEED) == 0, "madvise of the spill arena failed")
        touchedBytes = 0
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
        spans.removeFirst()
    }
}
