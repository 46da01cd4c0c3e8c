// IdleSlots: `slotsMax` aligned buffers of `slotBytes` in one region, allocated at the first
// `take` and freed once no slot has been taken for two idle calls in a row (the replicator
// calls `releaseMemoryWhenIdle` every tick): an idle resource holds none of it, and a burst
// touches only the pages its slots use. The owner bounds how many it takes, so a slot is
// always free. Shared by the copy chunks (CopyBuffers) and the reads a secondary serves for
// its primary (PeerReadBuffers). A region of at least a huge page is aligned to one and
// asks for transparent huge pages: its slots are read into with O_DIRECT outside the ring's
// registered pool, so the kernel pins their pages for every read, and pinning 4 KiB pages
// one by one was 4.4 % of the primary's CPU in a full resync (gup_fast_fallback); a 2 MiB
// page is pinned at once. Loop thread only.
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

    /// x86-64's and arm64's (4 KiB base pages) PMD huge page.
    static let hugePageBytes = 2 << 20

    /// A free slot (aligned for O_DIRECT), the region allocated if it is not.
    func take() -> Int {
        guard let slot = free.popLast() else { preconditionFailure("more \(what) than the node allows") }
        if base == nil {
            let bytes = slotBytes * slotsMax
            let huge = bytes >= Self.hugePageBytes
            var memory: UnsafeMutableRawPointer? = nil
            precondition(posix_memalign(&memory, huge ? Self.hugePageBytes : 4096, bytes) == 0 && memory != nil, what)
            // Advice only: where transparent huge pages are off, the region stays in 4 KiB pages.
            if huge { _ = madvise(memory, bytes / Self.hugePageBytes * Self.hugePageBytes, MADV_HUGEPAGE) }
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
