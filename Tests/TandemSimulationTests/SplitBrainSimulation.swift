// SplitBrainSimulation: a split brain's end (issue 14 §2): two primaries that both wrote since
// they parted meet, each decides with production's `SplitBrainVerdict` from its own facts and
// the peer's (as from its Hello), the operator's `resolve` ends a `disconnect`, and the
// survivor resyncs the victim by `SplitBrainResync.plan` and `union`, chunk by chunk, while it
// keeps writing, with kill -9s of the victim (the copy resumes from what is left of the set)
// and of the survivor (a full copy, as docs/replication.md says today). Disks hold one value
// per 4 KiB sector: the identity of the write that last wrote it.
//
// The node simulator stops short of this: its forced failover fences the old primary, and
// the two meet only as two Hellos compared (Simulation+Generations). What here is the
// simulator's own: the sides' writes, the operator, the order of the copy (production's
// driver: Resource+SplitBrain*), the crash points. Checked after every step:
// - guarantee 4: before a verdict or the operator names a survivor, no sector of either side
//   holds a value the other side wrote; the two sides' verdicts mirror each other;
// - the survivor's disk always holds exactly its own history (nothing it acknowledged since
//   parting, or before, is lost or overwritten by the victim's);
// - every chunk the resync sends lies in the union of both sides' changes (rounded outward
//   to the survivor's bitmap blocks) or in what the survivor wrote since the resync began,
//   unless the plan is a full copy, and that only for a reason the facts give;
// - once the resync completes, the victim equals the survivor sector by sector.

import TandemCore

struct SplitBrainFailure: CustomStringConvertible {
    let seed: UInt64
    let step: Int
    let message: String
    let scenario: String
    var description: String { "split-brain seed \(seed) step \(step): \(message)\n  \(scenario)\n  replay: TANDEM_SIM_SPLIT_BRAIN_SEED=\(seed)" }
}

/// A deliberately wrong split-brain driver, only for proving that the checker fails.
enum SplitBrainFault: String {
    /// The survivor resyncs its own bitmap of changes alone, not the union with the victim's.
    case resyncsSurvivorChangesOnly
    /// One side decides with its own and the peer's facts swapped (so both may survive, or
    /// both discard: a merge nobody chose).
    case verdictWithSwappedFacts
}

final class SplitBrainSimulation {
    static let sectorBytes: UInt64 = 4_096

    struct Side {
        var disk: [UInt64]
        /// What this side's history says each sector holds (its own writes over the common image).
        var expected: [UInt64]
        var changes: DirtyBitmap
        /// The sectors this side wrote since parting (the checker's own count, not the bitmap).
        var changed: [Bool]
        var promotion: UInt64
        var partingGeneration: UInt64
        var bitmapLost: Bool
        var verdict: SplitBrainVerdict?
    }

    let seed: UInt64
    let fault: SplitBrainFault?
    let policy: AfterSplitBrain
    private var random: SimRandom
    private(set) var sides: [Side]
    private let sectors: UInt64
    private var nextValue: UInt64 = 1
    /// Which side wrote each value (0 the common image, 1 A, 2 B).
    private var writer: [UInt64: Int] = [:]
    private(set) var step = 0
    private(set) var failure: SplitBrainFailure?
    private var scenario: String

    // The resync.
    private var survivor: Int?
    private(set) var plan: SplitBrainResyncPlan?
    private var remaining: DirtyBitmap?
    /// Sectors the resync may send: the union, and what the survivor wrote since it began.
    private var allowed: [Bool] = []
    private var inFlight: [(first: UInt64, values: [UInt64])] = []
    private(set) var resyncDone = false
    private(set) var movedBytes: UInt64 = 0
    private(set) var unionBytes: UInt64 = 0
    private(set) var resyncWrites = 0
    /// Bytes of the survivor's bitmap blocks written during the resync (each may go again).
    private(set) var rewrittenBytes: UInt64 = 0
    private(set) var victimCrashes = 0
    private(set) var survivorCrashes = 0
    private(set) var operatorResolved = false

    init(seed: UInt64, policy: AfterSplitBrain? = nil, fault: SplitBrainFault? = nil) {
        self.seed = seed
        self.fault = fault
        var random = SimRandom(seed: seed ^ 0x5B11_7B7A_0000_0000)
        self.policy = policy ?? AfterSplitBrain.allCases[Int(random.below(4))]
        sectors = random.between(16, 256)
        let volumeBytes = sectors * Self.sectorBytes
        var sides: [Side] = []
        let generation = random.next() | 1
        for index in 0..<2 {
            let blockBytes = Self.sectorBytes << random.below(4)  // 4–32 KiB, each side its own
            sides.append(Side(disk: Array(repeating: 0, count: Int(sectors)), expected: Array(repeating: 0, count: Int(sectors)),
                              changes: DirtyBitmap(volumeSizeBytes: volumeBytes, blockBytes: blockBytes),
                              changed: Array(repeating: false, count: Int(sectors)), promotion: UInt64(index + 1), partingGeneration: generation, bitmapLost: false))
        }
        // Now and then the facts defeat the union: another parting generation, a lost bitmap.
        if random.chance(perMille: 60) { sides[1].partingGeneration = random.next() | 1 }
        if random.chance(perMille: 40) { sides[Int(random.below(2))].bitmapLost = true }
        if random.chance(perMille: 200) { sides[1].promotion = 1 }  // equal promotion numbers
        self.sides = sides
        self.random = random
        scenario = "policy \(self.policy.rawValue), \(sectors) sectors, bitmap blocks \(sides[0].changes.blockBytes / 1_024)/"
            + "\(sides[1].changes.blockBytes / 1_024) KiB, promotions \(sides[0].promotion)/\(sides[1].promotion)"
            + (fault.map { ", fault \($0.rawValue)" } ?? "")
        // The common image both held when they parted.
        for sector in 0..<Int(sectors) where random.chance(perMille: 500) {
            let value = newValue(by: 0)
            for index in 0..<2 {
                self.sides[index].disk[sector] = value
                self.sides[index].expected[sector] = value
            }
        }
    }

    private func newValue(by side: Int) -> UInt64 {
        defer { nextValue += 1 }
        writer[nextValue] = side
        return nextValue
    }

    /// One application write of `side` (on its own disk alone, as primary without its peer;
    /// the write's regions go to its bitmap of changes since parting).
    private func applicationWrite(side: Int) {
        let first = random.below(sectors)
        let count = min(random.between(1, 8), sectors - first)
        let value = newValue(by: side + 1)
        for sector in first..<(first + count) {
            sides[side].disk[Int(sector)] = value
            sides[side].expected[Int(sector)] = value
            sides[side].changed[Int(sector)] = true
        }
        if let survivor, side == survivor, plan != nil {
            // Copied again as whole blocks of the survivor's bitmap.
            let block = sides[survivor].changes.blockBytes / Self.sectorBytes
            for sector in (first / block * block)..<min(sectors, (first + count + block - 1) / block * block) { allowed[Int(sector)] = true }
        }
        _ = sides[side].changes.setRange(offsetBytes: first * Self.sectorBytes, lengthBytes: count * Self.sectorBytes)
        if let survivor, side == survivor, remaining != nil {
            // Written during the resync: the region is copied (again) to the victim.
            _ = remaining!.setRange(offsetBytes: first * Self.sectorBytes, lengthBytes: count * Self.sectorBytes)
            rewrittenBytes += remaining!.blocksTouched(offsetBytes: first * Self.sectorBytes, lengthBytes: count * Self.sectorBytes).count
                * remaining!.blockBytes
        }
    }

    func run() -> SplitBrainFailure? {
        // Apart: each side writes alone (some write nothing, for discard-zero-changes).
        for side in 0..<2 where !random.chance(perMille: 150) {
            for _ in 0..<random.between(1, 24) {
                applicationWrite(side: side)
                if advance() { return failure }
            }
        }
        meet()
        if advance() { return failure }
        if survivor == nil {
            // Both StandAlone: they go on writing alone until the operator resolves.
            for _ in 0..<random.between(0, 10) {
                applicationWrite(side: Int(random.below(2)))
                if advance() { return failure }
            }
            operatorResolves()
        }
        startResync()
        var budget = 10_000
        while !resyncDone, failure == nil, budget > 0 {
            resyncStep()
            budget -= 1
            if advance() { return failure }
        }
        if failure == nil, !resyncDone { fail("the resync did not complete in 10 000 steps") }
        // Without kills nothing is sent twice but what the survivor wrote again.
        if failure == nil, plan == .union, victimCrashes == 0, movedBytes > unionBytes + rewrittenBytes {
            fail("the union resync moved \(movedBytes) bytes, more than the union's \(unionBytes) and the \(rewrittenBytes) rewritten since")
        }
        return failure
    }

    /// A step: the checks. True when the run failed.
    private func advance() -> Bool {
        step += 1
        check()
        return failure != nil
    }

    private func meet() {
        let changed = sides.map { $0.changes.outOfSyncBytes }
        for index in 0..<2 {
            let peer = 1 - index
            var local = changed[index], remote = changed[peer]
            if fault == .verdictWithSwappedFacts, index == 1 { swap(&local, &remote) }
            sides[index].verdict = SplitBrainVerdict.decide(policy, localChangedBytes: local, peerChangedBytes: remote,
                                                            localPromotion: sides[index].promotion, peerPromotion: sides[peer].promotion)
        }
        switch (sides[0].verdict!, sides[1].verdict!) {
        case (.discardPeer, .discardLocal): survivor = 0
        case (.discardLocal, .discardPeer): survivor = 1
        case (.disconnect, .disconnect): survivor = nil
        default:
            fail("guarantee 4: the verdicts do not mirror each other: A \(sides[0].verdict!.word) (\(sides[0].verdict!.reason)), "
                + "B \(sides[1].verdict!.word) (\(sides[1].verdict!.reason))")
            // Carry on as the faulty driver would: each side that discards itself is resynced.
            survivor = sides[0].verdict!.word == "discard-local" ? 1 : 0
        }
    }

    private func operatorResolves() {
        operatorResolved = true
        survivor = Int(random.below(2))
    }

    private func startResync() {
        guard failure == nil, let survivor else { return }
        let victim = 1 - survivor
        let survivorSide = sides[survivor], victimSide = sides[victim]
        let facts = PartedChanges(partingGeneration: survivorSide.partingGeneration,
                                  bitmap: survivorSide.bitmapLost ? nil : survivorSide.changes, lostReason: "simulated loss")
        let plan = SplitBrainResync.plan(survivor: facts, peerHelloVersion: WireFormat.helloVersion,
                                         victimPartingGeneration: victimSide.bitmapLost ? 0 : victimSide.partingGeneration)
        self.plan = plan
        let shouldUnion = !survivorSide.bitmapLost && !victimSide.bitmapLost
            && survivorSide.partingGeneration == victimSide.partingGeneration
        if case .fullCopy(let reason) = plan, shouldUnion {
            fail("the plan is a full copy although both bitmaps cover the divergence: \(reason)")
        }
        if plan == .union, !shouldUnion { fail("the plan is a union although a bitmap is lost or the partings differ") }
        let set: DirtyBitmap
        if plan == .union {
            set = fault == .resyncsSurvivorChangesOnly
                ? survivorSide.changes : SplitBrainResync.union(survivor: survivorSide.changes, victim: victimSide.changes).bitmap
        } else {
            var all = DirtyBitmap(volumeSizeBytes: sectors * Self.sectorBytes, blockBytes: survivorSide.changes.blockBytes)
            _ = all.setRange(offsetBytes: 0, lengthBytes: sectors * Self.sectorBytes)
            set = all
        }
        remaining = set
        unionBytes = set.outOfSyncBytes
        allowed = plan == .union ? allowedSectors(survivor: survivor) : Array(repeating: true, count: Int(sectors))
    }

    /// The sectors a union resync may send, from the checker's own record of what each side
    /// wrote: each changed sector's block in its side's bitmap, rounded outward to the
    /// survivor's blocks (the union's geometry).
    private func allowedSectors(survivor: Int) -> [Bool] {
        var allowed = Array(repeating: false, count: Int(sectors))
        let survivorBlock = sides[survivor].changes.blockBytes / Self.sectorBytes
        for side in sides {
            let block = side.changes.blockBytes / Self.sectorBytes
            for sector in 0..<sectors where side.changed[Int(sector)] {
                let start = sector / block * block / survivorBlock * survivorBlock
                let end = min(sectors, ((sector / block + 1) * block + survivorBlock - 1) / survivorBlock * survivorBlock)
                for covered in start..<end { allowed[Int(covered)] = true }
            }
        }
        return allowed
    }

    /// One event of the resync: a chunk sent, a chunk landing, a write, a crash.
    private func resyncStep() {
        guard let survivor, var set = remaining else { return }
        let victim = 1 - survivor
        switch random.below(100) {
        case 0..<40:
            // The survivor reads one bitmap block and sends it; its bits clear once confirmed.
            guard let run = set.nextDirtyRun(from: random.below(set.blockCount), maxBlocks: 1) ?? set.nextDirtyRun(from: 0, maxBlocks: 1)
            else { break }
            let first = run.first * set.blockBytes / Self.sectorBytes
            let end = min(sectors, run.end * set.blockBytes / Self.sectorBytes)
            for sector in first..<end where !allowed[Int(sector)] {
                fail("the resync sent sector \(sector), outside both sides' changes and the survivor's writes since it began")
                return
            }
            inFlight.append((first, (first..<end).map { sides[survivor].disk[Int($0)] }))
            movedBytes += (end - first) * Self.sectorBytes
            _ = set.clearBlocks(run)
        case 40..<80:
            guard !inFlight.isEmpty else { break }
            let chunk = inFlight.removeFirst()
            for (offset, value) in chunk.values.enumerated() { sides[victim].disk[Int(chunk.first) + offset] = value }
        case 80..<92 where resyncWrites < 16:
            resyncWrites += 1
            applicationWrite(side: survivor)
            set = remaining!
        case 92..<96 where victimCrashes < 3:
            // kill -9 of the victim: the chunks on their way are lost; the survivor's set still
            // names them (a chunk's bits clear only once the victim confirmed it: here, the
            // bits of the lost chunks are set again).
            victimCrashes += 1
            for chunk in inFlight {
                let count = UInt64(chunk.values.count)
                _ = set.setRange(offsetBytes: chunk.first * Self.sectorBytes, lengthBytes: count * Self.sectorBytes)
            }
            inFlight.removeAll()
        default:
            // kill -9 of the survivor mid-resync: today a full copy (docs/replication.md,
            // *Known gaps*), so every sector becomes allowed.
            guard survivorCrashes == 0, random.chance(perMille: 20) else { break }
            survivorCrashes += 1
            inFlight.removeAll()
            _ = set.setRange(offsetBytes: 0, lengthBytes: sectors * Self.sectorBytes)
            allowed = Array(repeating: true, count: Int(sectors))
            plan = .fullCopy(reason: "the survivor crashed during the union resync")
        }
        remaining = set
        if set.outOfSyncBytes == 0, inFlight.isEmpty { resyncDone = true }
    }

    private func check() {
        guard failure == nil else { return }
        for index in 0..<2 {
            let name = index == 0 ? "A" : "B"
            let isVictim = survivor.map { $0 != index } ?? false
            for sector in 0..<Int(sectors) {
                let value = sides[index].disk[sector]
                if !isVictim || plan == nil {
                    // Not (yet) a victim: its disk is its own history alone.
                    guard value == sides[index].expected[sector] else {
                        let by = writer[value].map { $0 == 0 ? "the common image" : $0 == index + 1 ? name : (index == 0 ? "B" : "A") } ?? "?"
                        fail(survivor == nil || plan == nil
                            ? "guarantee 4: \(name)'s sector \(sector) holds write \(value) of \(by) before any policy or operator chose a survivor"
                            : "the survivor \(name) lost write \(sides[index].expected[sector]) at sector \(sector) (holds \(value) of \(by))")
                        return
                    }
                }
            }
        }
        if resyncDone, let survivor, sides[0].disk != sides[1].disk {
            let sector = (0..<Int(sectors)).first { sides[0].disk[$0] != sides[1].disk[$0] }!
            fail("the resync completed, but the victim \(survivor == 0 ? "B" : "A") differs from the survivor at sector \(sector) "
                + "(\(sides[1 - survivor].disk[sector]) where the survivor has \(sides[survivor].disk[sector]))")
        }
    }

    private func fail(_ message: String) {
        guard failure == nil else { return }
        failure = SplitBrainFailure(seed: seed, step: step, message: message, scenario: scenario)
    }

    var digest: [UInt64] {
        [UInt64(step), movedBytes, unionBytes, UInt64(victimCrashes), UInt64(survivorCrashes), UInt64(survivor ?? 9)]
            + sides[0].disk + sides[1].disk
    }
}
