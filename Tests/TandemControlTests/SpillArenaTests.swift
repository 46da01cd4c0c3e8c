// The spill arena gives the pages a burst used back to the kernel once it holds no span (an
// async pair that spilled its whole buffer once would otherwise keep it resident), and
// never while a span is held.
import Glibc
import Testing
@testable import TandemDaemon

struct SpillArenaTests {
    func residentPages(_ arena: SpillArena, bytes: Int) -> Int {
        var vector = [UInt8](repeating: 0, count: bytes / 4096)
        #expect(mincore(arena.base, bytes, &vector) == 0)
        return vector.filter { $0 & 1 != 0 }.count
    }

    @Test func anEmptiedArenaGivesItsPagesBackAndAHeldSpanKeepsThem() throws {
        let arena = SpillArena(bufferBytes: 4 << 20, writeBytesMax: 1 << 20, spansMax: 16)
        let span = try #require(arena.reserve(1 << 20))
        memset(span, 0x5A, 1 << 20)
        #expect(residentPages(arena, bytes: 1 << 20) == 256)
        arena.releasePagesIfEmpty()
        #expect(residentPages(arena, bytes: 1 << 20) == 256, "pages of a held span were given back")
        #expect(span.load(as: UInt8.self) == 0x5A)
        arena.releaseOldest()
        arena.releasePagesIfEmpty()
        #expect(residentPages(arena, bytes: 1 << 20) == 0, "an empty arena kept its pages")
        // Usable again: the next span faults in fresh pages.
        let again = try #require(arena.reserve(4096))
        memset(again, 1, 4096)
        #expect(again.load(as: UInt8.self) == 1)
    }
}
