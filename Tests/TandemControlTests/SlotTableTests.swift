// SlotTable allocates a chunk of slots only when one of them is first filled, so that an
// idle pair's in-flight tables (thousands of slots each) take no memory; reading or clearing
// an unallocated slot allocates nothing, and an emptied table gives its chunks back.
import Testing
@testable import TandemDaemon

struct SlotTableTests {
    @Test func chunksAreAllocatedOnFirstUseAndReleasedWhenEmpty() {
        var table = SlotTable<String>(count: 4096)
        #expect(table.chunksAllocated == 0)
        #expect(table[4095] == nil)
        table[17] = nil
        #expect(table.chunksAllocated == 0, "reading or clearing an empty slot allocated a chunk")
        table[17] = "a"
        table[4095] = "b"
        #expect(table.chunksAllocated == 2)
        table[17]! += "c"  // in place
        #expect(table[17] == "ac" && table[4095] == "b" && table[18] == nil)
        #expect(table.indices == 0..<4096)
        #expect(table.occupied == 2)
        let releasedWhileHeld = table.releaseChunksIfEmpty()
        #expect(!releasedWhileHeld, "released chunks that hold entries")
        #expect(table.chunksAllocated == 2)
        table[17] = nil
        table[4095]! = "d"
        #expect(table.occupied == 1)
        table[4095] = nil
        #expect(table.occupied == 0)
        // Idle: released at the second tick that finds the table empty, not the first.
        table.releaseChunksWhenIdle()
        #expect(table.chunksAllocated == 2, "released at the first empty tick")
        table.releaseChunksWhenIdle()
        #expect(table.chunksAllocated == 0)
        #expect(table[17] == nil)
    }
}
