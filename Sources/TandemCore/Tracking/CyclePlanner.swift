// CyclePlanner: turns a frozen cycle (DirtyBitmap.freezeCycle) into read requests and keeps
// resync reads and application writes apart (docs/design-v3.md section 4, *Cycles*).
// What it decides:
//  - the regions: the frozen dirty blocks in volume order, adjacent blocks coalesced up to
//    `regionBytesMax` (1 MiB), numbered 0, 1, 2, ... (CycleData's `sequence`). The regions
//    are a pure function of the frozen bitmap and the start cursor, so a cycle interrupted
//    after the target staged k regions resumes at `cursor(afterRegions: k, ...)`;
//  - how many reads are in flight (at most `readsInFlightMax`, at least 32);
//  - region locks: an application write may proceed only if it overlaps no read in flight
//    and no frozen block not yet read (it waits for that read, then is admitted:
//    `writeMayProceed` again after `readCompleted`); and no read is issued over an admitted,
//    unanswered application write (the caller reports them: `applicationWriteAdmitted`).
//    The sweep then waits instead of splitting the region, so regions stay deterministic.
// Fixed tables sized at init; no allocation per read or write. No I/O, no clock: rate
// limits are the caller's (TokenBucket, ResyncRateController).

public struct CyclePlanner: Sendable {
    /// Where the sweep stands: the next region's index and the block the search starts at.
    public struct Cursor: Equatable, Sendable {
        public var regionIndex: UInt64
        public var block: UInt64
        public init(regionIndex: UInt64, block: UInt64) {
            self.regionIndex = regionIndex
            self.block = block
        }
        public static let start = Cursor(regionIndex: 0, block: 0)
    }

    public struct Read: Equatable, Sendable {
        public let regionIndex: UInt64
        public let offsetBytes: UInt64
        public let lengthBytes: UInt64
        public let blocks: BlockRun
    }

    /// An admitted application write, handed back when it is answered.
    public struct WriteToken: Equatable, Sendable {
        let slot: Int
    }

    public static let readsInFlightMin = 32

    public let volumeSizeBytes: UInt64
    public let blockBytes: UInt64
    public let regionBlocksMax: UInt64
    public let readsInFlightMax: Int
    public let writesAdmittedMax: Int

    public private(set) var cycle: UInt64 = 0
    public private(set) var cursor = Cursor.start
    public private(set) var sweepDone = false
    public private(set) var readsInFlight = 0
    public private(set) var writesAdmitted = 0

    private var readIndexes: [UInt64]
    private var readFirst: [UInt64]
    private var readEnd: [UInt64]  // 0 = slot free
    private var writeFirst: [UInt64]
    private var writeEnd: [UInt64]  // 0 = slot free

    public init(
        volumeSizeBytes: UInt64, blockBytes: UInt64, regionBytesMax: UInt64 = 1 << 20,
        readsInFlightMax: Int = 32, writesAdmittedMax: Int
    ) {
        precondition(DirtyBitmap.isValidBlockBytes(blockBytes), "bitmap block bytes \(blockBytes)")
        precondition(regionBytesMax >= blockBytes && regionBytesMax <= 1 << 20, "regions of \(regionBytesMax) bytes")
        precondition(readsInFlightMax >= Self.readsInFlightMin && readsInFlightMax <= 4096, "reads in flight \(readsInFlightMax)")
        precondition(writesAdmittedMax >= 1 && writesAdmittedMax <= 1 << 16, "writes admitted \(writesAdmittedMax)")
        self.volumeSizeBytes = volumeSizeBytes
        self.blockBytes = blockBytes
        self.regionBlocksMax = regionBytesMax / blockBytes
        self.readsInFlightMax = readsInFlightMax
        self.writesAdmittedMax = writesAdmittedMax
        readIndexes = Array(repeating: 0, count: readsInFlightMax)
        readFirst = Array(repeating: 0, count: readsInFlightMax)
        readEnd = Array(repeating: 0, count: readsInFlightMax)
        writeFirst = Array(repeating: 0, count: writesAdmittedMax)
        writeEnd = Array(repeating: 0, count: writesAdmittedMax)
    }

    public var isActive: Bool { cycle != 0 }
    /// Every region has been read.
    public var isComplete: Bool { isActive && sweepDone && readsInFlight == 0 }

    /// Starts planning cycle `cycle` (≠ 0) of the bitmap's frozen set, from `cursor`.
    /// Application writes still in flight must be reported with `applicationWriteAdmitted`
    /// before the first `nextRead`.
    public mutating func begin(cycle: UInt64, at cursor: Cursor = .start) {
        precondition(cycle != 0, "cycle 0 means none")
        precondition(readsInFlight == 0, "a cycle begins with reads of the last still in flight")
        self.cycle = cycle
        self.cursor = cursor
        sweepDone = false
    }

    /// The cycle ended (applied) or was interrupted: forget its reads. Admitted writes stay
    /// recorded until answered; they matter to the next cycle too.
    public mutating func end() {
        for slot in 0..<readsInFlightMax { readEnd[slot] = 0 }
        readsInFlight = 0
        cycle = 0
        sweepDone = false
    }

    // MARK: Reads

    /// The next region to read, or nil: all issued, `readsInFlightMax` reached, or the next
    /// region overlaps an admitted write (call again after `applicationWriteAnswered`).
    public mutating func nextRead(in bitmap: DirtyBitmap) -> Read? {
        precondition(isActive && bitmap.cycleFrozen, "no cycle to plan")
        precondition(bitmap.blockBytes == blockBytes && bitmap.volumeSizeBytes == volumeSizeBytes, "another bitmap")
        guard !sweepDone && readsInFlight < readsInFlightMax else { return nil }
        guard let run = bitmap.nextDirtyRun(from: cursor.block, maxBlocks: regionBlocksMax, frozen: true) else {
            sweepDone = true
            return nil
        }
        guard !overlapsAdmittedWrite(run) else { return nil }
        let slot = Self.freeSlot(readEnd)
        readIndexes[slot] = cursor.regionIndex
        readFirst[slot] = run.first
        readEnd[slot] = run.end
        readsInFlight += 1
        let read = region(run, index: cursor.regionIndex)
        cursor = Cursor(regionIndex: cursor.regionIndex + 1, block: run.end)
        return read
    }

    /// Region `regionIndex` has been read: writes waiting on it may be admitted.
    public mutating func readCompleted(regionIndex: UInt64) {
        var slot = 0
        while slot < readsInFlightMax && !(readEnd[slot] != 0 && readIndexes[slot] == regionIndex) { slot += 1 }
        precondition(slot < readsInFlightMax, "completion of region \(regionIndex), which is not being read")
        readEnd[slot] = 0
        readsInFlight -= 1
    }

    private func region(_ run: BlockRun, index: UInt64) -> Read {
        let offset = run.first * blockBytes
        let end = min(run.end * blockBytes, volumeSizeBytes)
        return Read(regionIndex: index, offsetBytes: offset, lengthBytes: end - offset, blocks: run)
    }

    /// The cursor after the first `regions` regions from `start`: where an interrupted cycle
    /// resumes once the target reports them staged (CycleStaged).
    public static func cursor(
        afterRegions regions: UInt64, from start: Cursor = .start, in bitmap: DirtyBitmap, regionBytesMax: UInt64 = 1 << 20
    ) -> Cursor {
        precondition(regions >= start.regionIndex, "resuming before the start")
        var cursor = start
        while cursor.regionIndex < regions {
            guard let run = bitmap.nextDirtyRun(from: cursor.block, maxBlocks: regionBytesMax / bitmap.blockBytes, frozen: true)
            else { break }
            cursor = Cursor(regionIndex: cursor.regionIndex + 1, block: run.end)
        }
        return cursor
    }

    // MARK: Region locks

    /// Whether an application write may be issued now. False while it overlaps a region being
    /// read or a frozen block the sweep has not read yet; ask again after `readCompleted`.
    public func writeMayProceed(offsetBytes: UInt64, lengthBytes: UInt64, in bitmap: DirtyBitmap) -> Bool {
        guard isActive, lengthBytes > 0 else { return true }
        let run = bitmap.blocksTouched(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
        for slot in 0..<readsInFlightMax where readEnd[slot] != 0 {
            if run.first < readEnd[slot] && readFirst[slot] < run.end { return false }
        }
        let unreadFirst = max(run.first, cursor.block)
        guard !sweepDone, unreadFirst < run.end else { return true }
        return !bitmap.anyFrozenSet(BlockRun(first: unreadFirst, count: run.end - unreadFirst))
    }

    /// An application write was admitted (or was in flight when the cycle began).
    public mutating func applicationWriteAdmitted(offsetBytes: UInt64, lengthBytes: UInt64) -> WriteToken {
        precondition(lengthBytes > 0 && offsetBytes < volumeSizeBytes && lengthBytes <= volumeSizeBytes - offsetBytes,
                     "write outside the volume")
        precondition(writesAdmitted < writesAdmittedMax, "more than \(writesAdmittedMax) application writes admitted")
        let slot = Self.freeSlot(writeEnd)
        writeFirst[slot] = offsetBytes / blockBytes
        writeEnd[slot] = (offsetBytes + lengthBytes + blockBytes - 1) / blockBytes
        writesAdmitted += 1
        return WriteToken(slot: slot)
    }

    public mutating func applicationWriteAnswered(_ token: WriteToken) {
        precondition(writeEnd[token.slot] != 0, "a write answered twice")
        writeEnd[token.slot] = 0
        writesAdmitted -= 1
    }

    /// The first slot whose end is 0 (free); the caller knows there is one.
    private static func freeSlot(_ ends: [UInt64]) -> Int {
        var slot = 0
        while ends[slot] != 0 { slot += 1 }
        return slot
    }

    private func overlapsAdmittedWrite(_ run: BlockRun) -> Bool {
        guard writesAdmitted > 0 else { return false }
        for slot in 0..<writesAdmittedMax where writeEnd[slot] != 0 {
            if run.first < writeEnd[slot] && writeFirst[slot] < run.end { return true }
        }
        return false
    }
}
