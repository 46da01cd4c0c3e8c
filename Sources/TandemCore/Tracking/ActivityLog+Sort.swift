// ActivityLog's sort of a transaction's extents: in place and without allocating, on the
// path of every transaction (ActivityLog.endTurn).

extension ActivityLog {
    /// In place, without allocating (Array.sort may take a temporary buffer; `stride`
    /// loops and `swapAt` allocated in debug builds).
    static func heapSort(_ values: inout [UInt32], count: Int) {
        guard count > 1 else { return }
        var start = count / 2
        while start > 0 {
            start -= 1
            siftDown(&values, start, count)
        }
        var end = count - 1
        while end > 0 {
            let top = values[0]
            values[0] = values[end]
            values[end] = top
            siftDown(&values, 0, end)
            end -= 1
        }
    }

    private static func siftDown(_ values: inout [UInt32], _ start: Int, _ end: Int) {
        var root = start
        while 2 * root + 1 < end {
            var child = 2 * root + 1
            if child + 1 < end && values[child] < values[child + 1] { child += 1 }
            guard values[root] < values[child] else { return }
            let parent = values[root]
            values[root] = values[child]
            values[child] = parent
            root = child
        }
    }
}
