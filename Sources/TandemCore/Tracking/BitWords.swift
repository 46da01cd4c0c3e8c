// BitWords: a fixed-length array of bits in 64-bit words, allocated once. The range
// operations work a word at a time and report how many bits they changed, so that owners
// (DirtyBitmap, CyclePlanner) keep exact counts without rescanning. No operation allocates
// after init: copying another BitWords goes element by element into the existing storage
// (assigning the array would share it, and the next write would copy it on the data path).

struct BitWords: Sendable, Equatable {
    private(set) var words: [UInt64]
    let bitCount: UInt64

    /// `allocated: false`: no storage until `allocate()` (a cycle's bits, which a bitmap
    /// that never freezes one does not need: a 1 TiB volume's bitmap is 32 MiB).
    init(bitCount: UInt64, allocated: Bool = true) {
        precondition(bitCount > 0, "a bit array needs at least one bit")
        self.bitCount = bitCount
        self.words = allocated ? Array(repeating: 0, count: Int((bitCount + 63) / 64)) : []
    }

    /// Gives an unallocated array its storage (all clear); nothing if it has it.
    mutating func allocate() {
        if words.isEmpty { words = Array(repeating: 0, count: Int((bitCount + 63) / 64)) }
    }

    var wordCount: Int { words.count }

    func isSet(_ bit: UInt64) -> Bool {
        precondition(bit < bitCount, "bit \(bit) outside \(bitCount) bits")
        return words[Int(bit >> 6)] & (1 << (bit & 63)) != 0
    }

    /// The mask of bits `[start, end)` inside word `word`.
    private static func mask(word: Int, start: UInt64, end: UInt64) -> UInt64 {
        let wordStart = UInt64(word) << 6
        let low = start > wordStart ? start - wordStart : 0
        let high = min(end - wordStart, 64)
        let upper: UInt64 = high == 64 ? ~0 : (1 << high) - 1
        return upper & ~((1 << low) - 1)
    }

    private func checkRange(_ start: UInt64, _ end: UInt64) {
        precondition(start <= end && end <= bitCount, "bit range \(start)..<\(end) outside \(bitCount) bits")
    }

    /// Sets bits `[start, end)`; returns how many were clear before.
    @discardableResult
    mutating func set(from start: UInt64, to end: UInt64) -> UInt64 {
        checkRange(start, end)
        guard start < end else { return 0 }
        var changed: UInt64 = 0
        for word in Int(start >> 6)...Int((end - 1) >> 6) {
            let mask = Self.mask(word: word, start: start, end: end)
            changed += UInt64((~words[word] & mask).nonzeroBitCount)
            words[word] |= mask
        }
        return changed
    }

    /// Clears bits `[start, end)`; returns how many were set before.
    @discardableResult
    mutating func clear(from start: UInt64, to end: UInt64) -> UInt64 {
        checkRange(start, end)
        guard start < end else { return 0 }
        var changed: UInt64 = 0
        for word in Int(start >> 6)...Int((end - 1) >> 6) {
            let mask = Self.mask(word: word, start: start, end: end)
            changed += UInt64((words[word] & mask).nonzeroBitCount)
            words[word] &= ~mask
        }
        return changed
    }

    /// Set bits in `[start, end)`.
    func count(from start: UInt64, to end: UInt64) -> UInt64 {
        checkRange(start, end)
        guard start < end else { return 0 }
        var total: UInt64 = 0
        for word in Int(start >> 6)...Int((end - 1) >> 6) {
            total += UInt64((words[word] & Self.mask(word: word, start: start, end: end)).nonzeroBitCount)
        }
        return total
    }

    /// The first set bit in `[start, end)`, or nil.
    func firstSet(from start: UInt64, before end: UInt64) -> UInt64? {
        checkRange(start, end)
        guard start < end else { return nil }
        for word in Int(start >> 6)...Int((end - 1) >> 6) {
            let bits = words[word] & Self.mask(word: word, start: start, end: end)
            if bits != 0 { return (UInt64(word) << 6) + UInt64(bits.trailingZeroBitCount) }
        }
        return nil
    }

    /// The first clear bit in `[start, end)`, or `end` if all are set.
    func firstClear(from start: UInt64, before end: UInt64) -> UInt64 {
        checkRange(start, end)
        guard start < end else { return end }
        for word in Int(start >> 6)...Int((end - 1) >> 6) {
            let bits = ~words[word] & Self.mask(word: word, start: start, end: end)
            if bits != 0 { return (UInt64(word) << 6) + UInt64(bits.trailingZeroBitCount) }
        }
        return end
    }

    /// Replaces this array's bits with `other`'s (same length), without allocating.
    mutating func copy(from other: BitWords) {
        precondition(other.bitCount == bitCount, "copying \(other.bitCount) bits into \(bitCount)")
        for index in 0..<words.count { words[index] = other.words[index] }
    }

    mutating func zeroAll() {
        for index in 0..<words.count { words[index] = 0 }
    }

    /// Direct word access for owners that combine several arrays word by word.
    subscript(word index: Int) -> UInt64 {
        get { words[index] }
        set {
            // Bits past `bitCount` in the last word stay clear: counts and encodings rely on it.
            let tailBits = bitCount & 63
            precondition(index != words.count - 1 || tailBits == 0 || newValue >> tailBits == 0,
                         "bits past the end of the array")
            words[index] = newValue
        }
    }
}
