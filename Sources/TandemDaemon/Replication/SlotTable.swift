// SlotTable: a fixed number of optional slots (an in-flight table indexed by sequence number
// modulo its size) whose storage is allocated a chunk of 64 slots at a time, on first use. A
// table must be sized for the busiest moment its owner admits (thousands of writes), but an
// idle pair uses none of it: allocated up front, such tables were most of an idle pair's
// memory (docs/benchmarks.md, "Per-pair memory"). A chunk stays once allocated, so a busy
// table allocates nothing after warm-up, and `releaseChunksIfEmpty` gives an emptied table's
// chunks back when its owner is idle. Not thread-safe; owned by one loop-confined object.

struct SlotTable<Element> {
    static var chunkSlots: Int { 64 }
    private static var chunkShift: Int { 6 }

    let count: Int
    /// An empty array: a chunk not allocated (all its slots nil).
    private var chunks: [[Element?]]
    private(set) var chunksAllocated = 0
    /// Slots that hold an element.
    private(set) var occupied = 0

    init(count: Int) {
        precondition(count > 0, "a slot table needs a positive size")
        self.count = count
        chunks = Array(repeating: [], count: (count + Self.chunkSlots - 1) / Self.chunkSlots)
    }

    var indices: Range<Int> { 0..<count }

    subscript(slot: Int) -> Element? {
        get {
            precondition(slot >= 0 && slot < count, "slot \(slot) outside a table of \(count)")
            let chunk = slot >> Self.chunkShift
            return chunks[chunk].isEmpty ? nil : chunks[chunk][slot & (Self.chunkSlots - 1)]
        }
        set {
            precondition(slot >= 0 && slot < count, "slot \(slot) outside a table of \(count)")
            let chunk = slot >> Self.chunkShift
            if chunks[chunk].isEmpty {
                guard newValue != nil else { return }
                allocate(chunk)
            }
            let index = slot & (Self.chunkSlots - 1)
            occupied += (newValue == nil ? 0 : 1) - (chunks[chunk][index] == nil ? 0 : 1)
            chunks[chunk][index] = newValue
        }
        _modify {
            precondition(slot >= 0 && slot < count, "slot \(slot) outside a table of \(count)")
            let chunk = slot >> Self.chunkShift
            if chunks[chunk].isEmpty { allocate(chunk) }
            let index = slot & (Self.chunkSlots - 1)
            let held = chunks[chunk][index] == nil ? 0 : 1
            yield &chunks[chunk][index]
            occupied += (chunks[chunk][index] == nil ? 0 : 1) - held
        }
    }

    private mutating func allocate(_ chunk: Int) {
        chunks[chunk] = Array(repeating: nil, count: Self.chunkSlots)
        chunksAllocated += 1
    }

    /// Called by its owner every tick: frees the chunks once the table has been empty at two
    /// calls in a row, so a table emptied only briefly between writes keeps them.
    mutating func releaseChunksWhenIdle() {
        guard occupied == 0 else {
            emptyAtLastCall = false
            return
        }
        if emptyAtLastCall { releaseChunksIfEmpty() }
        emptyAtLastCall = true
    }

    private var emptyAtLastCall = false

    /// Frees every chunk when no slot holds an element; false (nothing freed) otherwise.
    @discardableResult
    mutating func releaseChunksIfEmpty() -> Bool {
        guard occupied == 0 else { return false }
        guard chunksAllocated > 0 else { return true }
        for chunk in chunks.indices where !chunks[chunk].isEmpty {
            assert(chunks[chunk].allSatisfy { $0 == nil }, "released a chunk that holds an entry")
            chunks[chunk] = []
        }
        chunksAllocated = 0
        return true
    }
}
