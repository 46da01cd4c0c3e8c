import Glibc
import TandemCore

// FakeDisk: one node's volume of `blockCount` blocks with a volatile write cache. Each block
// holds a *value*: the global identity of the application write that last wrote it (0 and
// the initial-content values: what the volume held at creation). A full copy's chunk writes
// the values the primary read, so content can be compared across nodes.
// - A completed write is in the cache (what reads see); a FUA write is durable at completion.
// - A flush makes durable every write that completed before the flush was submitted.
// - Power loss keeps an arbitrary subset of unflushed and in-flight writes (a block never
//   returns to a version older than a durable one; in-flight writes land in any order), and
//   the cache becomes the durable content. With `tornWrites` a multi-block write may be kept
//   in part: a seeded subset of its blocks gets the new value, the rest keep what they had
//   (drives promise atomicity per sector, not per request). A write made durable (FUA, or
//   covered by a completed flush) is never torn.
// - A process crash (kill -9) keeps the cache; each in-flight write lands or does not (the
//   kernel finishes what it submitted to the device).
// - Errors: from the scenario's chosen operation on, writes (ENOSPC: writes only; EIO: writes
//   and flushes) complete with an errno; with `tornWrites` a failed multi-block write may have
//   reached the cache in part, else it changes nothing. Every I/O is identified by a tag.

final class FakeDisk {
    typealias Tag = UInt64

    struct Extent {
        var firstBlock: Int
        var values: [UInt64]
        var blocks: Range<Int> { firstBlock..<(firstBlock + values.count) }
    }

    /// From the `afterOperations`-th completed operation on, operations fail with `errno`.
    struct ErrorPlan: CustomStringConvertible {
        var afterOperations: Int
        var errno: Int32
        var description: String { "\(errno == ENOSPC ? "ENOSPC" : "EIO") after \(afterOperations) ops" }
    }

    private struct Landed {
        var stamp: UInt64
        var extent: Extent
    }

    let blockCount: Int
    private(set) var cache: [UInt64]
    private(set) var durable: [UInt64]
    /// Completion stamp of the write each durable block holds: a flush never lets an older
    /// completed write overwrite a newer one that is already durable (e.g. by FUA).
    private var durableStamp: [UInt64]
    private var unflushed: [Landed] = []
    private var inFlight: [(tag: Tag, extent: Extent, fua: Bool)] = []
    private var flushes: [(tag: Tag, stamp: UInt64)] = []
    private var stamp: UInt64 = 0
    var errorPlan: ErrorPlan?
    /// Multi-block writes may land in part at a power loss or when they fail.
    var tornWrites = false
    /// Seeded fault (`SimulationFault.diskTearsDurableWrites`): a disk that acknowledges FUA
    /// and flushes before a multi-block write is wholly on stable media, so a power loss may
    /// tear writes it reported durable too. Acts only with `tornWrites`.
    var tearsDurableWrites = false
    /// The latest multi-block writes made durable, with what their blocks held before (only
    /// kept for `tearsDurableWrites`).
    private var recentlyDurable: [(stamp: UInt64, extent: Extent, previous: [(value: UInt64, stamp: UInt64)])] = []
    private(set) var operations = 0
    private(set) var failedOperations = 0
    /// Writes kept in part (at a power loss or a failure), for the run's summary.
    private(set) var tornWriteCount = 0

    /// Decides which blocks of a failed write reached the cache (the disk's own stream, so
    /// that error timing does not shift the simulation's).
    private var failureRandom: SimRandom

    init(content: [UInt64], seed: UInt64) {
        failureRandom = SimRandom(seed: seed)
        blockCount = content.count
        cache = content
        durable = content
        durableStamp = Array(repeating: 0, count: content.count)
    }

    var hasInFlightWrites: Bool { !inFlight.isEmpty }

    func submitWrite(_ extent: Extent, fua: Bool, tag: Tag) {
        precondition(extent.firstBlock >= 0 && extent.firstBlock + extent.values.count <= blockCount)
        inFlight.append((tag, extent, fua))
    }

    private func nextResult(isWrite: Bool) -> Int32 {
        operations += 1
        guard let plan = errorPlan, operations >= plan.afterOperations else { return 0 }
        if plan.errno == ENOSPC && !isWrite { return 0 }
        failedOperations += 1
        return plan.errno
    }

    /// The errno the write completed with (0: it landed in the cache); nil if it was lost
    /// with a crash of its node.
    func completeWrite(_ tag: Tag) -> Int32? {
        guard let index = inFlight.firstIndex(where: { $0.tag == tag }) else { return nil }
        let (_, extent, fua) = inFlight.remove(at: index)
        let result = nextResult(isWrite: true)
        guard result == 0 else {
            // A failed write may have transferred part of its blocks before the error.
            if tornWrites && extent.values.count > 1 && failureRandom.chance(perMille: 500) {
                tornWriteCount += 1
                for (offset, value) in extent.values.enumerated() where failureRandom.chance(perMille: 500) {
                    land(Extent(firstBlock: extent.firstBlock + offset, values: [value]), fua: false)
                }
            }
            return result
        }
        land(extent, fua: fua)
        return 0
    }

    private func land(_ extent: Extent, fua: Bool) {
        stamp += 1
        for (offset, value) in extent.values.enumerated() { cache[extent.firstBlock + offset] = value }
        let landed = Landed(stamp: stamp, extent: extent)
        if fua { makeDurable(landed) } else { unflushed.append(landed) }
    }

    func submitFlush(tag: Tag) { flushes.append((tag, stamp)) }

    /// A flush that completes at once and cannot fail (the daemon's fdatasync at open before
    /// a crash restart's compare; its failure gives the compare up, not modelled).
    func flushNow() {
        for landed in unflushed { makeDurable(landed) }
        unflushed.removeAll()
    }

    /// The errno of the flush (0: done); nil if it was lost with a crash.
    func completeFlush(_ tag: Tag) -> Int32? {
        guard let index = flushes.firstIndex(where: { $0.tag == tag }) else { return nil }
        let covers = flushes.remove(at: index).stamp
        let result = nextResult(isWrite: false)
        guard result == 0 else { return result }
        for landed in unflushed where landed.stamp <= covers { makeDurable(landed) }
        unflushed.removeAll { $0.stamp <= covers }
        return 0
    }

    /// The result of a metadata record write (the record lives on the same disk).
    func metadataWriteResult() -> Int32 { nextResult(isWrite: true) }

    /// A read (the full copy's): the cached content of `blocks`, or an errno.
    func read(_ blocks: Range<Int>) -> (values: [UInt64], errno: Int32) {
        let result = nextResult(isWrite: false)
        return result == 0 ? (Array(cache[blocks]), 0) : ([], result)
    }

    /// `keeps`: which of the extent's blocks reach stable media (all but at a torn power loss).
    private func makeDurable(_ landed: Landed, keeps: [Bool]? = nil) {
        let extent = landed.extent
        if tearsDurableWrites && keeps == nil && extent.values.count > 1 {
            let previous = extent.blocks.map { (durable[$0], durableStamp[$0]) }
            recentlyDurable.append((landed.stamp, extent, previous))
            if recentlyDurable.count > 8 { recentlyDurable.removeFirst() }
        }
        for (offset, value) in extent.values.enumerated() where landed.stamp > durableStamp[extent.firstBlock + offset] {
            guard keeps?[offset] ?? true else { continue }
            durable[extent.firstBlock + offset] = value
            durableStamp[extent.firstBlock + offset] = landed.stamp
        }
    }

    /// At a power loss, an unflushed or in-flight write is kept whole, not at all, or (torn
    /// writes) in part.
    private func persistAtPowerLoss(_ landed: Landed, _ random: inout SimRandom) {
        let count = landed.extent.values.count
        if tornWrites && count > 1 && random.chance(perMille: 300) {
            tornWriteCount += 1
            makeDurable(landed, keeps: (0..<count).map { _ in random.chance(perMille: 500) })
        } else if random.chance(perMille: 500) {
            makeDurable(landed)
        }
    }

    func powerLoss(_ random: inout SimRandom) {
        // Completed writes keep their completion order per block (a block never goes back to
        // a version older than one already durable); in-flight ones land in any order after.
        for landed in unflushed { persistAtPowerLoss(landed, &random) }
        var candidates = inFlight.map(\.extent)
        random.shuffle(&candidates)
        for extent in candidates {
            stamp += 1
            persistAtPowerLoss(Landed(stamp: stamp, extent: extent), &random)
        }
        if tornWrites && tearsDurableWrites {
            // The seeded fault: blocks of writes already reported durable go back to what they
            // held before, if nothing newer is durable there.
            for entry in recentlyDurable where random.chance(perMille: 500) {
                for (offset, block) in entry.extent.blocks.enumerated()
                where durableStamp[block] == entry.stamp && random.chance(perMille: 500) {
                    (durable[block], durableStamp[block]) = entry.previous[offset]
                }
            }
        }
        recentlyDurable.removeAll()
        cache = durable
        unflushed.removeAll()
        inFlight.removeAll()
        flushes.removeAll()
    }

    func processCrash(_ random: inout SimRandom) {
        var pending = inFlight
        random.shuffle(&pending)
        for write in pending where random.chance(perMille: 500) { land(write.extent, fua: write.fua) }
        inFlight.removeAll()
        if let last = flushes.last, random.chance(perMille: 500) {
            for landed in unflushed where landed.stamp <= last.stamp { makeDurable(landed) }
            unflushed.removeAll { $0.stamp <= last.stamp }
        }
        flushes.removeAll()
    }
}
