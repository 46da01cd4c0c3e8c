// DataBuffers: where request payloads live. Requests up to `poolLimitBytes` take a run of
// the registered pool (no allocation); larger ones, rare and amortised over megabytes, take
// an aligned heap block under a bounded in-flight budget. Waiters are served first come,
// first served so that a large request is not starved by small ones. Loop thread only.
import DequeModule
import Glibc

public struct DataBuffer {
    public let pointer: UnsafeMutableRawPointer
    public let capacity: Int
    let pooled: PoolBuffer?
}

/// Someone waiting for buffer space; woken on the loop thread.
public protocol BufferWaiter: AnyObject {
    func buffersAvailable()
}

public final class DataBuffers {
    public let pool: BufferPool
    public let poolLimitBytes: Int
    public let heapBudgetBytes: Int
    public private(set) var heapBytesInUse = 0
    /// FIFO of waiters: O(1) at the front; room for 256 reserved at start.
    private var waiters = Deque<BufferWaiter>(minimumCapacity: 256)
    private var waking = false

    public init(pool: BufferPool, heapBudgetBytes: Int) {
        self.pool = pool
        self.poolLimitBytes = max(BufferPool.blockBytes, pool.totalBytes / 8)
        self.heapBudgetBytes = heapBudgetBytes
    }

    /// A buffer of at least `bytes`, or nil (then the caller is queued and woken later).
    public func allocate(bytes: Int, for waiter: BufferWaiter) -> DataBuffer? {
        if !waiters.isEmpty && waiters[0] !== waiter {
            enqueue(waiter)
            return nil
        }
        if let buffer = tryAllocate(bytes: bytes) {
            if !waiters.isEmpty && waiters[0] === waiter { waiters.removeFirst() }
            return buffer
        }
        enqueue(waiter)
        return nil
    }

    public func release(_ buffer: DataBuffer) {
        if let pooled = buffer.pooled {
            pool.release(pooled)
        } else {
            heapBytesInUse -= buffer.capacity
            free(buffer.pointer)
        }
        wakeHead()
    }

    /// Whether `buffer` may be held well beyond its request (a replicated write kept until
    /// the peer confirms it) and still leave its pool enough: more than a quarter of the
    /// registered pool free, or of the heap budget unused. Below that a holder copies instead,
    /// so that held writes can never starve reads and new requests.
    public func canLend(_ buffer: DataBuffer) -> Bool {
        if buffer.pooled != nil { return pool.freeBytes > pool.totalBytes / 4 }
        return heapBytesInUse <= heapBudgetBytes * 3 / 4
    }

    public func cancelWait(_ waiter: BufferWaiter) {
        waiters.removeAll { $0 === waiter }
        wakeHead()
    }

    private func tryAllocate(bytes: Int) -> DataBuffer? {
        if bytes <= poolLimitBytes {
            guard let pooled = pool.allocate(bytes: bytes) else { return nil }
            return DataBuffer(pointer: pooled.pointer, capacity: pooled.capacity, pooled: pooled)
        }
        let rounded = (bytes + BufferPool.blockBytes - 1) & ~(BufferPool.blockBytes - 1)
        guard heapBytesInUse + rounded <= heapBudgetBytes || heapBytesInUse == 0 else { return nil }
        var memory: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&memory, BufferPool.blockBytes, rounded) == 0, let memory else { return nil }
        heapBytesInUse += rounded
        return DataBuffer(pointer: memory, capacity: rounded, pooled: nil)
    }

    private func enqueue(_ waiter: BufferWaiter) {
        if !waiters.contains(where: { $0 === waiter }) { waiters.append(waiter) }
    }

    /// Wakes waiters in order for as long as each one is served.
    private func wakeHead() {
        guard !waking else { return }
        waking = true
        defer { waking = false }
        while let head = waiters.first {
            head.buffersAvailable()
            if let now = waiters.first, now === head { break }
        }
    }
}
