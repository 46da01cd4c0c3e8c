// CopyBuffers with the ring's registered pool: chunks borrow pool runs (read with READ_FIXED)
// only while more than half of the pool stays free, the rest use the slots' own region; each
// chunk's bytes stay where its read put them; releasing gives every run back.
import Logging
import Testing
import TandemIO
@testable import TandemDaemon

struct CopyBuffersTests {
    @Test func chunksBorrowRegisteredRunsWhileHalfThePoolStaysFree() throws {
        let loop = try EventLoop(ringEntries: 8, poolBytes: 8 << 20, logger: Logger(label: "test"))
        let pool = loop.pool
        #expect(pool.registered)
        let chunkBytes = 1 << 20
        let copies = CopyBuffers(slotBytes: chunkBytes, slotsMax: 8, pool: pool)
        var pointers: [UnsafeMutableRawPointer] = []
        for index in 0..<8 {
            let (_, pointer) = copies.reserve(offset: UInt64(index * chunkBytes))
            pointer.initializeMemory(as: UInt8.self, repeating: UInt8(index + 1), count: chunkBytes)
            pointers.append(pointer)
        }
        // 8 MiB pool: four 1 MiB runs leave exactly half of it free; the fifth would not.
        #expect(copies.pooledCount == 4)
        #expect(pool.freeBytes == pool.totalBytes / 2)
        let inPool = pointers.filter { pool.contains($0, length: chunkBytes) }
        #expect(inPool.count == 4)
        #expect(Set(pointers).count == 8, "two chunks share a buffer")
        for index in 0..<8 {
            let (_, pointer) = copies.buffer(offset: UInt64(index * chunkBytes))
            #expect(pointer == pointers[index])
            let bytes = UnsafeRawBufferPointer(start: pointer, count: chunkBytes)
            #expect(bytes.allSatisfy { $0 == UInt8(index + 1) }, "chunk \(index) lost its bytes")
        }
        for index in 0..<8 { copies.release(offset: UInt64(index * chunkBytes)) }
        #expect(copies.pooledCount == 0)
        #expect(pool.freeBytes == pool.totalBytes)
    }

    @Test func withoutAPoolNoChunkTouchesIt() throws {
        let loop = try EventLoop(ringEntries: 8, poolBytes: 8 << 20, logger: Logger(label: "test"))
        let copies = CopyBuffers(slotBytes: 1 << 20, slotsMax: 4)
        for index in 0..<4 { _ = copies.reserve(offset: UInt64(index) << 20) }
        #expect(copies.pooledCount == 0)
        #expect(loop.pool.freeBytes == loop.pool.totalBytes)
        for index in 0..<4 { copies.release(offset: UInt64(index) << 20) }
    }
}
