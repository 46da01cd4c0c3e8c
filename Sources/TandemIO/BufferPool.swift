// BufferPool: the data path's memory, allocated once at start-up, aligned for O_DIRECT and
// registered with the ring. A buddy allocator hands out power-of-two runs of 4 KiB blocks;
// it allocates nothing itself after init. Confined to the loop thread.
import Glibc

public struct PoolBuffer {
    /// Index of the first 4 KiB block; identifies the buffer when it is freed.
    public let block: Int32
    public let order: UInt8
    public let pointer: UnsafeMutableRawPointer
    public var capacity: Int { BufferPool.blockBytes << Int(order) }
}

public final class BufferPool {
    public static let blockBytes = 4096
    public let base: UnsafeMutableRawPointer
    public let totalBytes: Int
    public internal(set) var registered = false
    public private(set) var freeBytes: Int
    let maxOrder: Int
    private var freeHead: [Int32]
    private var next: [Int32]
    private var prev: [Int32]
    /// For a free run's first block: its order; otherwise -1.
    private var freeOrder: [Int8]

    public init(totalBytes requested: Int) throws(IOError) {
        precondition(requested >= Self.blockBytes)
        var order = 0
        while (Self.blockBytes << (order + 1)) <= requested { order += 1 }
        maxOrder = order
        totalBytes = Self.blockBytes << order
        var memory: UnsafeMutableRawPointer? = nil
        let rc = posix_memalign(&memory, Self.blockBytes, totalBytes)
        guard rc == 0, let memory else { throw IOError(errno: rc, "posix_memalign") }
        base = memory
        let blocks = totalBytes / Self.blockBytes
        freeHead = Array(repeating: -1, count: maxOrder + 1)
        next = Array(repeating: -1, count: blocks)
        prev = Array(repeating: -1, count: blocks)
        freeOrder = Array(repeating: -1, count: blocks)
        freeBytes = 0
        push(block: 0, order: maxOrder)
    }

    deinit { free(base) }

    /// The largest single buffer the pool can hold.
    public var largestBytes: Int { totalBytes }

    public static func order(forBytes bytes: Int) -> Int {
        var order = 0
        while (blockBytes << order) < bytes { order += 1 }
        return order
    }

    /// A buffer of at least `bytes`, or nil when no run that large is free now.
    public func allocate(bytes: Int) -> PoolBuffer? {
        precondition(bytes > 0)
        let want = Self.order(forBytes: bytes)
        guard want <= maxOrder else { return nil }
        var order = want
        while order <= maxOrder && freeHead[order] < 0 { order += 1 }
        guard order <= maxOrder else { return nil }
        let block = freeHead[order]
        remove(block: block, order: order)
        while order > want {
            order -= 1
            push(block: block + Int32(1 << order), order: order)
        }
        return PoolBuffer(block: block, order: UInt8(want),
                          pointer: base + Int(block) * Self.blockBytes)
    }

    public func release(_ buffer: PoolBuffer) {
        var block = buffer.block
        var order = Int(buffer.order)
        precondition(freeOrder[Int(block)] < 0, "double free of pool block \(block)")
        while order < maxOrder {
            let buddy = block ^ Int32(1 << order)
            guard freeOrder[Int(buddy)] == Int8(order) else { break }
            remove(block: buddy, order: order)
            block = min(block, buddy)
            order += 1
        }
        push(block: block, order: order)
    }

    /// Offset of a pointer inside the registered region (for READ_FIXED/WRITE_FIXED).
    @inline(__always)
    public func contains(_ pointer: UnsafeRawPointer, length: Int) -> Bool {
        pointer >= UnsafeRawPointer(base) && pointer + length <= UnsafeRawPointer(base) + totalBytes
    }

    private func push(block: Int32, order: Int) {
        let index = Int(block)
        next[index] = freeHead[order]
        prev[index] = -1
        if freeHead[order] >= 0 { prev[Int(freeHead[order])] = block }
        freeHead[order] = block
        freeOrder[index] = Int8(order)
        freeBytes += Self.blockBytes << order
    }

    private func remove(block: Int32, order: Int) {
        let index = Int(block)
        precondition(freeOrder[index] == Int8(order))
        if prev[index] >= 0 { next[Int(prev[index])] = next[index] } else { freeHead[order] = next[index] }
        if next[index] >= 0 { prev[Int(next[index])] = prev[index] }
        freeOrder[index] = -1
        freeBytes -= Self.blockBytes << order
    }
}
