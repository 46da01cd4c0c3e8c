// BoundedQueue: a FIFO ring with a fixed capacity, used for the replication state machine's
// in-flight tables. Indexing is by position from the front, so owners that keep contiguous
// sequence numbers find an element in O(1) without a dictionary.
//
// The storage grows on demand (doubling, from `initialStorage` slots) up to the capacity and
// then stays: the capacity is sized for the busiest moment (thousands of writes), which an
// idle pair never sees, and allocated up front these rings were most of an idle pair's
// memory (docs/benchmarks.md, "Per-pair memory"). A busy queue reaches its working size after
// a few doublings and allocates nothing more.

struct BoundedQueue<Element> {
    static var initialStorage: Int { 16 }

    private var storage: [Element?]
    private var head = 0
    private(set) var count = 0
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0, "a bounded queue needs a positive capacity")
        self.capacity = capacity
        self.storage = Array(repeating: nil, count: min(capacity, Self.initialStorage))
    }

    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count == capacity }
    var first: Element? { count == 0 ? nil : storage[head] }
    var last: Element? { count == 0 ? nil : storage[(head + count - 1) % storage.count] }
    /// Slots allocated now (at most `capacity`).
    var storageSlots: Int { storage.count }

    mutating func append(_ element: Element) {
        precondition(count < capacity, "bounded queue overflow (capacity \(capacity))")
        if count == storage.count { grow() }
        storage[(head + count) % storage.count] = element
        count += 1
    }

    /// Doubles the storage (at most to the capacity), the elements moved to its front in order.
    private mutating func grow() {
        var larger = [Element?](repeating: nil, count: min(capacity, storage.count * 2))
        for position in 0..<count { larger[position] = storage[(head + position) % storage.count] }
        storage = larger
        head = 0
    }

    @discardableResult
    mutating func removeFirst() -> Element {
        precondition(count > 0, "removeFirst on an empty bounded queue")
        let element = storage[head]!
        storage[head] = nil
        head = (head + 1) % storage.count
        count -= 1
        return element
    }

    mutating func removeAll() {
        while count > 0 { removeFirst() }
    }

    subscript(position: Int) -> Element {
        get {
            precondition(position >= 0 && position < count, "bounded queue index out of range")
            return storage[(head + position) % storage.count]!
        }
        set {
            precondition(position >= 0 && position < count, "bounded queue index out of range")
            storage[(head + position) % storage.count] = newValue
        }
    }
}
extension BoundedQueue: Sendable where Element: Sendable {}
