// SimRandom: SplitMix64, the simulator's only source of randomness. A seed fixes a run.

import TandemCore

struct SimRandom {
    private var generator: SplitMix64

    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { generator.next() }

    /// Uniform in 0..<bound (the modulo bias is irrelevant at these bounds).
    mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        return next() % bound
    }

    mutating func between(_ low: UInt64, _ high: UInt64) -> UInt64 {
        precondition(low <= high)
        return low + below(high - low + 1)
    }

    mutating func chance(perMille: UInt64) -> Bool { below(1000) < perMille }

    mutating func shuffle<T>(_ items: inout [T]) {
        guard items.count > 1 else { return }
        for index in stride(from: items.count - 1, to: 0, by: -1) {
            items.swapAt(index, Int(below(UInt64(index + 1))))
        }
    }
}
