// ActivityLogFlights: the activity log's transactions in flight (ActivityLog; docs/tracking.md,
// *Transactions in flight*). At most `limit` at once, with consecutive numbers, oldest first;
// each remembers the release count its volume flush covers (when it asked for one) and
// whether its write is durable. The disk may finish them in any order; the log acts on one
// only once every older one is durable too (`takeDurable`), so what it believes durable is
// always a prefix of what it wrote. Fixed tables sized at init; nothing here allocates.

struct ActivityLogFlights: Sendable {
    let limit: Int
    private var numbers: [UInt64]
    private var flushesThrough: [UInt64?]
    private var durable: [Bool]
    private(set) var count = 0

    init(limit: Int) {
        precondition(limit >= 1 && limit <= ActivityLogRing.transactionsInFlightMax,
                     "\(limit) transactions in flight: 1 ... \(ActivityLogRing.transactionsInFlightMax)")
        self.limit = limit
        numbers = Array(repeating: 0, count: limit)
        flushesThrough = Array(repeating: nil, count: limit)
        durable = Array(repeating: false, count: limit)
    }

    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count == limit }
    /// The newest transaction in flight (0: none).
    var newest: UInt64 { count == 0 ? 0 : numbers[count - 1] }

    func contains(_ number: UInt64) -> Bool {
        var position = 0
        while position < count {
            if numbers[position] == number { return true }
            position += 1
        }
        return false
    }

    /// Whether a transaction in flight asked for a volume flush that is not yet known done.
    var flushPending: Bool {
        var position = 0
        while position < count {
            if flushesThrough[position] != nil { return true }
            position += 1
        }
        return false
    }

    mutating func append(_ number: UInt64, flushesThrough through: UInt64?) {
        precondition(count < limit, "more than \(limit) activity-log transactions in flight")
        precondition(count == 0 || number == numbers[count - 1] + 1, "transaction \(number) after \(newest)")
        numbers[count] = number
        flushesThrough[count] = through
        durable[count] = false
        count += 1
    }

    /// The write of `number` is durable (in any order).
    mutating func markDurable(_ number: UInt64) {
        var position = 0
        while position < count && numbers[position] != number { position += 1 }
        precondition(position < count, "transaction \(number) was not in flight")
        precondition(!durable[position], "transaction \(number) reported durable twice")
        durable[position] = true
    }

    /// The oldest transaction in flight, if it is durable: removed, with the release count its
    /// flush covered (nil: it asked for none).
    mutating func takeDurable() -> (number: UInt64, flushesThrough: UInt64?)? {
        guard count > 0, durable[0] else { return nil }
        let taken: (number: UInt64, flushesThrough: UInt64?) = (number: numbers[0], flushesThrough: flushesThrough[0])
        var position = 1
        while position < count {
            numbers[position - 1] = numbers[position]
            flushesThrough[position - 1] = flushesThrough[position]
            durable[position - 1] = durable[position]
            position += 1
        }
        count -= 1
        return taken
    }
}
