// BoundedQueue grows its storage on demand up to its capacity (an idle pair's rings hold a
// few slots, not thousands) and stays a FIFO through every growth, also when it grows while
// its elements wrap around the end of the storage.
import Testing
@testable import TandemCore

struct BoundedQueueTests {
    @Test func aFreshQueueHoldsFewSlotsWhateverItsCapacity() {
        let queue = BoundedQueue<Int>(capacity: 16_384)
        #expect(queue.storageSlots == BoundedQueue<Int>.initialStorage)
        #expect(BoundedQueue<Int>(capacity: 3).storageSlots == 3)
    }

    @Test func growingWhileWrappedKeepsFIFOOrderAndPositions() {
        var queue = BoundedQueue<Int>(capacity: 100)
        var expected: [Int] = []
        var next = 0
        // Interleave appends and removals so that the head moves and growth happens with the
        // elements wrapped around the storage's end.
        for round in 0..<60 {
            for _ in 0..<(round % 3 + 2) where !queue.isFull {
                queue.append(next)
                expected.append(next)
                next += 1
            }
            if round % 2 == 0, !queue.isEmpty {
                #expect(queue.removeFirst() == expected.removeFirst())
            }
            #expect(queue.count == expected.count)
            for position in 0..<queue.count { #expect(queue[position] == expected[position]) }
            #expect(queue.first == expected.first && queue.last == expected.last)
        }
        #expect(queue.isFull, "the test should reach the capacity")
        #expect(queue.storageSlots == 100, "storage grows to the capacity and no further")
        queue[5] = -1
        expected[5] = -1
        while !queue.isEmpty { #expect(queue.removeFirst() == expected.removeFirst()) }
    }
}
