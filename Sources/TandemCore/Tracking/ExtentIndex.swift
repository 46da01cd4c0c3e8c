// ExtentIndex: extent number → activity-log slot, a fixed open-addressing table (linear
// probing, backward-shift deletion) sized at init for every key the log can hold at once.
// It exists so that the per-write look-up neither allocates nor hashes through a Dictionary.

struct ExtentIndex: Sendable {
    static let empty = UInt32.max
    private var keys: [UInt32]
    private var values: [Int32]
    private let mask: Int
    private(set) var count = 0
    let countMax: Int

    init(countMax: Int) {
        precondition(countMax > 0 && countMax <= 1 << 20, "extent index of \(countMax) keys")
        var size = 4
        while size < countMax * 2 { size <<= 1 }
        self.keys = Array(repeating: Self.empty, count: size)
        self.values = Array(repeating: -1, count: size)
        self.mask = size - 1
        self.countMax = countMax
    }

    private func home(_ key: UInt32) -> Int { Int((UInt64(key) &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask }

    func find(_ key: UInt32) -> Int? {
        var position = home(key)
        while keys[position] != Self.empty {
            if keys[position] == key { return Int(values[position]) }
            position = (position + 1) & mask
        }
        return nil
    }

    mutating func insert(_ key: UInt32, slot: Int) {
        precondition(key != Self.empty, "extent \(key) is the empty marker")
        precondition(count < countMax, "extent index full (\(countMax))")
        var position = home(key)
        while keys[position] != Self.empty {
            precondition(keys[position] != key, "extent \(key) indexed twice")
            position = (position + 1) & mask
        }
        keys[position] = key
        values[position] = Int32(slot)
        count += 1
    }

    mutating func remove(_ key: UInt32) {
        var position = home(key)
        while keys[position] != key {
            precondition(keys[position] != Self.empty, "extent \(key) not indexed")
            position = (position + 1) & mask
        }
        keys[position] = Self.empty
        count -= 1
        // Move later members of the probe chain back so that every key stays reachable.
        var next = (position + 1) & mask
        while keys[next] != Self.empty {
            let desired = home(keys[next])
            let distanceToHole = (position - desired) & mask
            let distanceToNext = (next - desired) & mask
            if distanceToHole < distanceToNext {
                keys[position] = keys[next]
                values[position] = values[next]
                keys[next] = Self.empty
                position = next
            }
            next = (next + 1) & mask
        }
    }
}
