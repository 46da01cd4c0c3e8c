// EventQueue: the simulator's agenda, a binary min-heap ordered by (time, insertion order).
// Equal times keep insertion order, which is what makes one connection's messages arrive
// in the order they were sent.

struct EventQueue<Event> {
    private struct Entry {
        var timeNs: UInt64
        var order: UInt64
        var event: Event
        func precedes(_ other: Entry) -> Bool {
            timeNs != other.timeNs ? timeNs < other.timeNs : order < other.order
        }
    }

    private var heap: [Entry] = []
    private var nextOrder: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    mutating func schedule(_ event: Event, atNs timeNs: UInt64) {
        heap.append(Entry(timeNs: timeNs, order: nextOrder, event: event))
        nextOrder += 1
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popFirst() -> (timeNs: UInt64, event: Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let entry = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].precedes(heap[smallest]) { smallest = left }
            if right < heap.count && heap[right].precedes(heap[smallest]) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return (entry.timeNs, entry.event)
    }
}
