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
    let slotBytes: Int
    let slotsMax: Int
    private var base: UnsafeMutableRawPointer?
    /// The offset each slot's chunk was read from; UInt64.max: free.
    private var offsets: [UInt64]
    private var free: [Int]
    private var emptyAtLastCall = false
    var held: Int { slotsMax - free.count }

    init(slotBytes: Int, slotsMax: Int) {
        precondition(slotBytes > 0 && slotBytes % 4096 == 0 && slotsMax > 0)
        self.slotBytes = slotBytes
        self.slotsMax = slotsMax
        offsets = Array(repeating: .max, count: slotsMax)
        free = Array((0..<slotsMax).reversed())
    }

    deinit { Glibc.free(base) }

    /// A buffer for the chunk read at `offset` (aligned for O_DIRECT); the node bounds how many
    /// it holds, so there always is one.
    func reserve(offset: UInt64) -> (slot: Int, pointer: UnsafeMutableRawPointer) {
        precondition(offset != .max && !offsets.contains(offset), "two copy chunks at offset \(offset)")
        guard let slot = free.popLast() else { preconditionFailure("more copy chunks than the node allows") }
        if base == nil {
            var memory: UnsafeMutableRawPointer? = nil
            precondition(posix_memalign(&memory, 4096, slotBytes * slotsMax) == 0 && memory != nil, "copy buffers")
            base = memory
        }
        offsets[slot] = offset
        return (slot, base! + slot * slotBytes)
    }

    /// The buffer of the chunk read at `offset`.
    func buffer(offset: UInt64) -> (slot: Int, pointer: UnsafeMutableRawPointer) {
        guard let slot = offsets.firstIndex(of: offset), let base else { preconditionFailure("no copy chunk at \(offset)") }
        return (slot, base + slot * slotBytes)
    }

    func release(slot: Int) {
        precondition(offsets[slot] != .max, "a free copy buffer released")
        offsets[slot] = .max
        free.append(slot)
    }

    func release(offset: UInt64) { release(slot: buffer(offset: offset).slot) }

    /// Frees the region once no chunk has been held for two calls in a row (the replicator
    /// calls this every tick).
    func releaseMemoryWhenIdle() {
        guard held == 0, base != nil else {
            emptyAtLastCall = false
            return
        }
        if emptyAtLastCall {
            Glibc.free(base)
            base = nil
        }
        emptyAtLastCall = !emptyAtLastCall
    }
}
