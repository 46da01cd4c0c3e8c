// BoundedQueue: a fixed-capacity FIFO ring, allocated once, used for the replication state
// machine's in-flight tables. Indexing is by position from the front, so owners that keep
// contiguous sequence numbers find an element in O(1) without a dictionary.

struct BoundedQueue<Element> {
    private var storage: [Element?]
    private var head = 0
    private(set) var count = 0
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0, "a bounded queue needs a positive capacity")
        self.capacity = capacity
        self.storage = Array(repeating: nil, count: capacity)
    }

    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count == capacity }
    var first: Element? { count == 0 ? nil : storage[head] }
    var last: Element? { count == 0 ? nil : storage[(head + count - 1) % capacity] }

    mutating func append(_ element: Element) {
        precondition(count < capacity, "bounded queue overflow (capacity \(capacity))")
        storage[(head + count) % capacity] = element
        count += 1
    }

    @discardableResult
    mutating func removeFirst() -> Element {
        precondition(count > 0, "removeFirst on an empty bounded queue")
        let element = storage[head]!
        storage[head] = nil
        head = (head + 1) % capacity
        count -= 1
        return element
    }

    mutating func removeAll() {
        while count > 0 { removeFirst() }
    }

    subscript(position: Int) -> Element {
        get {
            precondition(position >= 0 && position < count, "bounded queue index out of range")
            return storage[(head + position) % capacity]!
        }
        set {
            precondition(position >= 0 && position < count, "bounded queue index out of range")
            storage[(head + position) % capacity] = newValue
        }
    }
}
extension BoundedQueue: Sendable where Element: Sendable {}
