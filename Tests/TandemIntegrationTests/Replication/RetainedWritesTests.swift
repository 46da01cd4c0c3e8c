// Retained writes are the only copy a re-send after a reconnect can use: a live entry must
// never be overwritten by a later one, whatever mix of lent buffers and arena copies, whatever
// the sizes and however the arena wraps; the arena never refuses a write within the node's
// byte bound (the driver preconditions that); and every lent buffer goes back to its pool.
import Testing
import TandemCore
import TandemIO
@testable import TandemDaemon

extension Replication {
@Suite struct RetainedWritesTests {
    struct Live {
        var sequence: WriteSequence
        var length: Int
        var fill: UInt8
    }

    final class NoWaiting: BufferWaiter {
        func buffersAvailable() {}
    }

    @Test(arguments: [1, 2, 3, 4, 5])
    func liveEntriesSurviveUnderRandomSizesAndStorage(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let bufferBytes = 64 << 10
        let writeBytesMax = 16 << 10
        let pool = try BufferPool(totalBytes: 256 << 10)
        let buffers = DataBuffers(pool: pool, heapBudgetBytes: 64 << 10)
        let waiter = NoWaiting()
        let retained = RetainedWrites(buffers: buffers, bytesMax: bufferBytes, writeBytesMax: writeBytesMax,
                                      entriesMax: 64, copyChunkBytes: writeBytesMax, copyChunksMax: 64)
        let zeros = UnsafeMutableRawPointer.allocate(byteCount: writeBytesMax, alignment: 4096)
        defer { zeros.deallocate() }
        zeros.initializeMemory(as: UInt8.self, repeating: 0, count: writeBytesMax)
        let source = UnsafeMutableRawPointer.allocate(byteCount: writeBytesMax, alignment: 4096)
        defer { source.deallocate() }
        var live: [Live] = []
        var liveBytes = 0
        var nextSequence: WriteSequence = 1
        var kinds = [0, 0, 0, 0]
        for _ in 0..<4_000 {
            let length = 4096 * Int(1 + random.next() % UInt64(writeBytesMax / 4096))
            let releasing = liveBytes + length > bufferBytes || retained.count == 64 || random.next() % 3 == 0
            if releasing, !live.isEmpty {
                let count = Int(1 + random.next() % UInt64(live.count))
                let releasedThrough = live[count - 1].sequence
                retained.release(through: releasedThrough)
                retained.returnReleasedBuffers()  // the driver does this after its batch
                for entry in live.prefix(count) { liveBytes -= entry.length }
                live.removeFirst(count)
                continue
            }
            // The node admits a write only while the buffer bound holds.
            guard liveBytes + length <= bufferBytes, retained.count < 64 else { continue }
            var fill = UInt8(truncatingIfNeeded: nextSequence) | 1
            switch random.next() % 4 {
            case 0:
                guard let buffer = buffers.allocate(bytes: length, for: waiter) else {
                    Issue.record("pool exhausted with \(retained.lentBytes) bytes lent")
                    return
                }
                buffer.pointer.initializeMemory(as: UInt8.self, repeating: fill, count: length)
                retained.retainLent(buffer, length: length, sequence: nextSequence)
                kinds[0] += 1
            case 1:
                source.initializeMemory(as: UInt8.self, repeating: fill, count: length)
                retained.retainCopy(of: source, length: length, sequence: nextSequence)
                source.initializeMemory(as: UInt8.self, repeating: 0xEE, count: length)  // the copy must not alias
                kinds[1] += 1
            case 2:
                // A copy chunk: a buffer taken before the read, kept under its sequence.
                let offset = nextSequence * UInt64(writeBytesMax)
                let (_, pointer) = retained.copies.reserve(offset: offset)
                pointer.initializeMemory(as: UInt8.self, repeating: fill, count: length)
                retained.retainCopyChunk(offset: offset, length: length, sequence: nextSequence)
                kinds[3] += 1
            default:
                fill = 0
                retained.retainShared(zeros, length: length, sequence: nextSequence)
                kinds[2] += 1
            }
            live.append(Live(sequence: nextSequence, length: length, fill: fill))
            liveBytes += length
            nextSequence += 1
            for entry in live {
                guard let payload = retained.payload(sequence: entry.sequence), payload.count == entry.length,
                    payload.allSatisfy({ $0 == entry.fill })
                else {
                    Issue.record("entry \(entry.sequence) was overwritten or lost")
                    return
                }
            }
        }
        #expect(kinds.allSatisfy { $0 > 100 }, "every storage kind exercised: \(kinds)")
        retained.releaseAll()
        #expect(retained.lentBytes == 0)
        #expect(pool.freeBytes == pool.totalBytes, "every lent buffer went back to the pool")
        #expect(retained.spilledWrites == UInt64(kinds[1]))
        #expect(retained.arena.count == 0, "every arena span released")
        #expect(retained.copies.held == 0, "every copy buffer released")
    }

    @Test func lendingStopsWhileTheQuarterOfThePoolWouldBeGone() throws {
        let pool = try BufferPool(totalBytes: 64 << 10)
        let buffers = DataBuffers(pool: pool, heapBudgetBytes: 64 << 10)
        let waiter = NoWaiting()
        var held: [DataBuffer] = []
        while let buffer = buffers.allocate(bytes: 4096, for: waiter) {
            let lendable = buffers.canLend(buffer)
            #expect(lendable == (pool.freeBytes > pool.totalBytes / 4), "lendable with \(pool.freeBytes) free")
            held.append(buffer)
            if held.count > 16 { break }
        }
        #expect(held.count == 16, "the pool holds 16 blocks")
        for buffer in held { buffers.release(buffer) }
    }
}
}
