// CopyBuffers with the ring's registered pool: chunks borrow pool runs (read with READ_FIXED)
// only while more than half of the pool stays free, the rest use the slots' own region; each
// chunk's bytes stay where its read put them; releasing gives every run back.
import Glibc
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

    /// The slots' own region is read into with O_DIRECT outside the registered pool: it sits
    /// on huge-page boundaries and, where transparent huge pages may be asked for, gets them
    /// (the kernel then pins a chunk's pages per 2 MiB page, not per 4 KiB).
    @Test func theSlotsOwnRegionIsHugePageAlignedAndAsksForHugePages() throws {
        let copies = CopyBuffers(slotBytes: 1 << 20, slotsMax: 8)
        var pointers: [UnsafeMutableRawPointer] = []
        for index in 0..<8 {
            let (_, pointer) = copies.reserve(offset: UInt64(index) << 20)
            pointer.initializeMemory(as: UInt8.self, repeating: 1, count: 1 << 20)
            pointers.append(pointer)
        }
        defer { for index in 0..<8 { copies.release(offset: UInt64(index) << 20) } }
        let base = pointers.min()!
        #expect(UInt(bitPattern: base) % UInt(IdleSlots.hugePageBytes) == 0, "region at \(base)")
        let mode = (try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8)) ?? ""
        guard !mode.contains("[never]"), !mode.isEmpty else { return }
        #expect(Self.anonHugePagesKiB(containing: base) > 0, "no huge page backs the region (THP: \(mode))")
    }

    /// AnonHugePages of the mapping of /proc/self/smaps that holds `pointer` (read line by
    /// line with getline: a proc file has no size to read up to).
    private static func anonHugePagesKiB(containing pointer: UnsafeMutableRawPointer) -> Int {
        guard let file = fopen("/proc/self/smaps", "r") else { return 0 }
        defer { fclose(file) }
        let address = UInt(bitPattern: pointer)
        var inside = false
        var buffer: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(buffer) }
        while getline(&buffer, &capacity, file) > 0, let buffer {
            let line = String(cString: buffer)
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard let first = fields.first else { continue }
            if first.contains("-"), !first.hasSuffix(":") {
                let bounds = first.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = bounds.count == 2 && bounds[0] <= address && address < bounds[1]
            } else if inside, first == "AnonHugePages:", fields.count >= 2 {
                return Int(fields[1]) ?? 0
            }
        }
        return 0
    }
}
