// IdleSlots: `slotsMax` aligned buffers of `slotBytes` in one region, allocated at the first
// `take` and freed once no slot has been taken for two idle calls in a row (the replicator
// calls `releaseMemoryWhenIdle` every tick): an idle resource holds none of it, and a burst
// touches only the pages its slots use. The owner bounds how many it takes, so a slot is
// always free. Shared by the copy chunks (CopyBuffers) and the reads a secondary serves for
// its primary (PeerReadBuffers). Loop thread only.
import Glibc

final class IdleSlots {
    let slotBytes: Int
    let slotsMax: Int
    private let what: String
    private var base: UnsafeMutableRawPointer?
    private var free: [Int]
    private var emptyAtLastCall = false

    init(slotBytes: Int, slotsMax: Int, what: String) {
        precondition(slotBytes > 0 && slotBytes % 4096 == 0 && slotsMax > 0)
        self.slotBytes = slotBytes
        self.slotsMax = slotsMax
        self.what = what
        free = Array((0..<slotsMax).reversed())
    }

    deinit { Glibc.free(base) }

    var taken: Int { slotsMax - free.count }

    /// A free slot (aligned for O_DIRECT), the region allocated if it is not.
    func take() -> Int {
        guard let slot = free.popLast() else { preconditionFailure("more \(what) than the node allows") }
        if base == nil {
            var memory: UnsafeMutableRawPointer? = nil
            precondition(posix_memalign(&memory, 4096, slotBytes * slotsMax) == 0 && memory != nil, what)
            base = memory
        }
        return slot
    }

    func pointer(_ slot: Int) -> UnsafeMutableRawPointer {
        guard let base else { preconditionFailure("\(what): a slot of a freed region") }
        return base + slot * slotBytes
    }

    func release(_ slot: Int) { free.append(slot) }

    func releaseMemoryWhenIdle() {
        guard taken == 0, base != nil else {
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
