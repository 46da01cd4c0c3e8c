// CopyBuffers: one buffer per copy chunk the node holds (PrimaryNode's `copyBuffersMax`: reads
// in flight plus chunks admitted and not yet released), so that many copy reads can be in
// flight at once while application writes are admitted between them: the spill arena, a
// FIFO, cannot take spans that end in another order than they began. A chunk is named by its
// volume offset from its read to its release (the node never holds two chunks of one
// offset). The slots are one region allocated at the first read and freed once no chunk has
// been held for two idle calls: an idle pair holds none of it, and a copy touches only the
// pages its chunks use. Loop thread only.
import Glibc

final class CopyBuffers {
    private let slots: IdleSlots
    /// The offset each slot's chunk was read from; UInt64.max: free.
    private var offsets: [UInt64]
    var slotBytes: Int { slots.slotBytes }
    var slotsMax: Int { slots.slotsMax }
    var held: Int { slots.taken }

    init(slotBytes: Int, slotsMax: Int) {
        slots = IdleSlots(slotBytes: slotBytes, slotsMax: slotsMax, what: "copy chunks")
        offsets = Array(repeating: .max, count: slotsMax)
    }

    /// A buffer for the chunk read at `offset` (aligned for O_DIRECT); the node bounds how many
    /// it holds, so there always is one.
    func reserve(offset: UInt64) -> (slot: Int, pointer: UnsafeMutableRawPointer) {
        precondition(offset != .max && !offsets.contains(offset), "two copy chunks at offset \(offset)")
        let slot = slots.take()
        offsets[slot] = offset
        return (slot, slots.pointer(slot))
    }

    /// The buffer of the chunk read at `offset`.
    func buffer(offset: UInt64) -> (slot: Int, pointer: UnsafeMutableRawPointer) {
        guard let slot = offsets.firstIndex(of: offset) else { preconditionFailure("no copy chunk at \(offset)") }
        return (slot, slots.pointer(slot))
    }

    func release(slot: Int) {
        precondition(offsets[slot] != .max, "a free copy buffer released")
        offsets[slot] = .max
        slots.release(slot)
    }

    func release(offset: UInt64) { release(slot: buffer(offset: offset).slot) }

    /// Frees the region once no chunk has been held for two calls in a row (IdleSlots).
    func releaseMemoryWhenIdle() { slots.releaseMemoryWhenIdle() }
}
