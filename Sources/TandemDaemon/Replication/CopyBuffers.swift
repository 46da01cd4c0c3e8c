// CopyBuffers: one buffer per copy chunk the node holds (PrimaryNode's `copyBuffersMax`: reads
// in flight plus chunks admitted and not yet released), so that many copy reads can be in
// flight at once while application writes are admitted between them: the spill arena, a
// FIFO, cannot take spans that end in another order than they began. A chunk is named by its
// volume offset from its read to its release (the node never holds two chunks of one
// offset). The slots are one region allocated at the first read and freed once no chunk has
// been held for two idle calls: an idle pair holds none of it, and a copy touches only the
// pages its chunks use. With a `pool` (the primary's copy chunks), a chunk is read into a run
// of the ring's registered pool while more than half of the pool stays free: the kernel then
// reads it with READ_FIXED instead of pinning the chunk's pages for every read (get_user_pages
// was 6 % of the primary's CPU in a full resync); the rest of the pool is the application's.
// Loop thread only.
import Glibc
import TandemIO

final class CopyBuffers {
    private let slots: IdleSlots
    /// The offset each slot's chunk was read from; UInt64.max: free.
    private var offsets: [UInt64]
    /// The registered pool the chunks borrow from, and the run each slot's chunk took (nil:
    /// the slot's own buffer).
    private let pool: BufferPool?
    private var pooled: [PoolBuffer?]
    var slotBytes: Int { slots.slotBytes }
    var slotsMax: Int { slots.slotsMax }
    var held: Int { slots.taken }
    /// Chunks held now in runs of the pool (for tests).
    var pooledCount: Int { pooled.count(where: { $0 != nil }) }

    init(slotBytes: Int, slotsMax: Int, pool: BufferPool? = nil) {
        slots = IdleSlots(slotBytes: slotBytes, slotsMax: slotsMax, what: "copy chunks")
        offsets = Array(repeating: .max, count: slotsMax)
        self.pool = pool
        pooled = Array(repeating: nil, count: pool == nil ? 0 : slotsMax)
    }

    /// As the slots' region is freed with them: the owner has no read in flight by now.
    deinit {
        guard let pool else { return }
        for run in pooled { if let run { pool.release(run) } }
    }

    /// A buffer for the chunk read at `offset` (aligned for O_DIRECT); the node bounds how many
    /// it holds, so there always is one.
    func reserve(offset: UInt64) -> (slot: Int, pointer: UnsafeMutableRawPointer) {
        precondition(offset != .max && !offsets.contains(offset), "two copy chunks at offset \(offset)")
        let slot = slots.take()
        offsets[slot] = offset
        if let pool, pool.registered, pool.freeBytes - slots.slotBytes >= pool.totalBytes / 2,
            let run = pool.allocate(bytes: slots.slotBytes)
        {
            pooled[slot] = run
            return (slot, run.pointer)
        }
        return (slot, slots.pointer(slot))
    }

    /// The buffer of the chunk read at `offset`.
    func buffer(offset: UInt64) -> (slot: Int, pointer: UnsafeMutableRawPointer) {
        guard let slot = offsets.firstIndex(of: offset) else { preconditionFailure("no copy chunk at \(offset)") }
        if pool != nil, let run = pooled[slot] { return (slot, run.pointer) }
        return (slot, slots.pointer(slot))
    }

    func release(slot: Int) {
        precondition(offsets[slot] != .max, "a free copy buffer released")
        offsets[slot] = .max
        if let pool, let run = pooled[slot] {
            pooled[slot] = nil
            pool.release(run)
        }
        slots.release(slot)
    }

    func release(offset: UInt64) { release(slot: buffer(offset: offset).slot) }

    /// Frees the region once no chunk has been held for two calls in a row (IdleSlots).
    func releaseMemoryWhenIdle() { slots.releaseMemoryWhenIdle() }
}
