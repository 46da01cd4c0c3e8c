import Testing
@testable import TandemIO

struct BufferPoolTests {
    @Test func everyBlockCanBeHandedOutOnceAndCoalescesBackToOneRun() throws {
        let pool = try BufferPool(totalBytes: 1 << 20)
        var buffers: [PoolBuffer] = []
        while let buffer = pool.allocate(bytes: 4096) { buffers.append(buffer) }
        #expect(buffers.count == 256)
        #expect(Set(buffers.map(\.block)).count == 256)
        #expect(pool.freeBytes == 0)
        for buffer in buffers.shuffled() { pool.release(buffer) }
        #expect(pool.freeBytes == 1 << 20)
        let whole = try #require(pool.allocate(bytes: 1 << 20))
        #expect(whole.pointer == pool.base)
    }

    @Test func buffersAreAlignedForDirectIOAndNeverOverlap() throws {
        let pool = try BufferPool(totalBytes: 8 << 20)
        var taken: [(Int, Int)] = []
        for size in [4096, 5000, 65536, 1 << 20, 12288, 300_000] {
            let buffer = try #require(pool.allocate(bytes: size))
            #expect(Int(bitPattern: buffer.pointer) % 4096 == 0)
            #expect(buffer.capacity >= size)
            let start = buffer.pointer - pool.base
            for (otherStart, otherEnd) in taken {
                #expect(start + buffer.capacity <= otherStart || otherEnd <= start)
            }
            taken.append((start, start + buffer.capacity))
        }
    }

    @Test func aRequestLargerThanThePoolIsRefused() throws {
        let pool = try BufferPool(totalBytes: 1 << 20)
        #expect(pool.allocate(bytes: (1 << 20) + 1) == nil)
    }
}
