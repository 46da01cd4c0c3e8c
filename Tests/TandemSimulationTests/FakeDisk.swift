import TandemCore

// FakeDisk: a volume of `blockCount` blocks with a volatile write cache. Each block holds the
// sequence number of the write that last wrote it (0: initial content).
// - A completed write is in the cache (what reads see); a FUA write is durable at completion.
// - A flush makes durable every write that completed before the flush was submitted.
// - Power loss keeps an arbitrary subset of unflushed and in-flight writes, landed in an
//   arbitrary order (a device may reorder completed writes), and the cache becomes the
//   durable content.
// - A process crash (kill -9) keeps the cache; each in-flight write lands or does not.

final class FakeDisk {
    struct Extent {
        var sequence: WriteSequence
        var firstBlock: Int
        var blockCount: Int
    }

    private struct Landed {
        var stamp: UInt64
        var extent: Extent
    }

    let blockCount: Int
    private(set) var cache: [WriteSequence]
    private(set) var durable: [WriteSequence]
    /// Completion stamp of the write each durable block holds: a flush never lets an older
    /// completed write overwrite a newer one that is already durable (e.g. by FUA).
    private var durableStamp: [UInt64]
    private var unflushed: [Landed] = []
    private var inFlight: [(extent: Extent, fua: Bool)] = []
    private var flushStamps: [UInt64] = []
    private var stamp: UInt64 = 0

    init(blockCount: Int) {
        self.blockCount = blockCount
        cache = Array(repeating: 0, count: blockCount)
        durable = Array(repeating: 0, count: blockCount)
        durableStamp = Array(repeating: 0, count: blockCount)
    }

    func submitWrite(_ extent: Extent, fua: Bool) {
        precondition(extent.firstBlock >= 0 && extent.firstBlock + extent.blockCount <= blockCount)
        inFlight.append((extent, fua))
    }

    /// False if the write was lost with a crash of its node.
    @discardableResult
    func completeWrite(_ sequence: WriteSequence) -> Bool {
        guard let index = inFlight.firstIndex(where: { $0.extent.sequence == sequence }) else {
            return false
        }
        let (extent, fua) = inFlight.remove(at: index)
        stamp += 1
        for block in extent.firstBlock..<(extent.firstBlock + extent.blockCount) {
            cache[block] = extent.sequence
        }
        let landed = Landed(stamp: stamp, extent: extent)
        if fua { makeDurable(landed) } else { unflushed.append(landed) }
        return true
    }

    func submitFlush() { flushStamps.append(stamp) }

    @discardableResult
    func completeFlush() -> Bool {
        guard !flushStamps.isEmpty else { return false }
        let coversStamp = flushStamps.removeFirst()
        for landed in unflushed where landed.stamp <= coversStamp { makeDurable(landed) }
        unflushed.removeAll { $0.stamp <= coversStamp }
        return true
    }

    private func makeDurable(_ landed: Landed) {
        let extent = landed.extent
        for block in extent.firstBlock..<(extent.firstBlock + extent.blockCount)
        where landed.stamp > durableStamp[block] {
            durable[block] = extent.sequence
            durableStamp[block] = landed.stamp
        }
    }

    func powerLoss(_ random: inout SimRandom) {
        var candidates = unflushed.map(\.extent) + inFlight.map(\.extent)
        candidates = candidates.filter { _ in random.chance(perMille: 500) }
        random.shuffle(&candidates)
        for extent in candidates {
            stamp += 1
            makeDurable(Landed(stamp: stamp, extent: extent))
        }
        cache = durable
        unflushed.removeAll()
        inFlight.removeAll()
        flushStamps.removeAll()
    }

    func processCrash(_ random: inout SimRandom) {
        var pending = inFlight.map(\.extent.sequence)
        random.shuffle(&pending)
        for sequence in pending where random.chance(perMille: 500) { completeWrite(sequence) }
        inFlight.removeAll()
        if !flushStamps.isEmpty && random.chance(perMille: 500) { completeFlush() }
        flushStamps.removeAll()
    }
}
