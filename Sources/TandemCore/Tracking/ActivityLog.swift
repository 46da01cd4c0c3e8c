// ActivityLog: the active set of hot extents (`al_extents` of `al_extent_bytes`) and the
// order in which it may change (docs/metadata.md, *Activity-log transaction*; DESIGN.md,
// *Metadata and crash safety*). What it decides:
//  - whether a write may be issued now (`proceed`: every extent it touches is in a durable
//    transaction), must wait for a transaction (`awaitTransaction(n)`), or must be retried
//    (`retryLater`: no evictable extent, or it touches an extent being evicted);
//  - which extent leaves the set (least recently used among those with no write in flight:
//    an extent with writes in flight is never evicted);
//  - when a transaction may be written: every miss joins the open batch, closed at `endTurn`
//    (`batching`: at the first turn with a miss, or only once no transaction is in flight, so
//    that the misses of every turn meanwhile share the next one); a closed batch is written
//    while fewer than `transactionsInFlightMax` are in flight and once the bitmap pages of
//    every extent it evicts are durable (`bitmapPagePersisted`): an extent leaves the log only
//    after its bits are on disk;
//  - what the transaction holds: the whole active set, ascending — every extent of the last
//    durable transaction and of every one in flight, less those they evict: whichever of them
//    a crash leaves newest covers every write issued;
//  - whether the volume must be flushed before a transaction: only when an extent absent from
//    it but present in the last durable one had a write released after the last flush known
//    done — a flush counts once the transaction that asked for it is durable, so a
//    transaction formed while an earlier one's flush is pending asks for its own. Each slot
//    remembers the release count of its last write. Under random writes over a volume
//    far larger than the log, almost every write evicts, but the extent leaving was last
//    written hundreds of transactions ago: one flush covers the evictions of many.
// Writes waiting on a batch are released once `lastDurableTransaction` ≥ their ticket: the
// disk may finish the transactions in flight in any order, the log takes them in order
// (ActivityLogFlights). Fixed tables sized at init; noteWrite/writeCompleted never allocate.
// No I/O: the caller writes pages and transactions and reports back.

public struct ActivityLog: Sendable {
    public enum Admission: Equatable, Sendable {
        /// Every extent is in a durable transaction: issue the write.
        case proceed
        /// Hold the write until `transactionDurable(n)` with n ≥ this ticket.
        case awaitTransaction(UInt64)
        /// Nothing reserved: retry after a write completes or a transaction is durable.
        case retryLater
    }

    /// A bitmap page to write for the eviction of `extent`; hand it back to
    /// `bitmapPagePersisted` once the page, encoded after this request was taken, is durable.
    public struct PageRequest: Equatable, Sendable {
        public let page: Int
        /// The extent leaving the active set that needs this page.
        public let extent: UInt32
        let serial: UInt64
    }

    /// A byte range to treat as dirty after a crash.
    public struct Region: Equatable, Sendable {
        public var offsetBytes: UInt64
        public var lengthBytes: UInt64
    }

    static let none = UInt32.max

    public let extentBytes: UInt64
    public let capacity: Int
    public let extentsPerWriteMax: Int
    public let volumeSizeBytes: UInt64
    let blockBytes: UInt64
    /// When the open batch closes (`endTurn`).
    public let batching: ActivityLogBatching

    // Per slot. `resident`: the extent in the last durable transaction. `incoming`: the
    // extent that replaces it (or fills an unused slot) in batch `incomingBatch` (closed and
    // in flight, or not yet closed); a slot changes once per durable transaction at most.
    // Writes go to incoming if there is one, else resident; `inFlight` counts them.
    private var resident: [UInt32]
    private var incoming: [UInt32]
    private var incomingBatch: [UInt64]
    private var inFlight: [Int32]
    private var lruPrevious: [Int]
    private var lruNext: [Int]
    private var lruHead = -1  // most recently used
    private var lruTail = -1  // least recently used
    private var slotsUsed = 0
    // Evictions: pages (bit i = page pagesFirst + i) still to persist / still to hand out.
    private var evictionSerial: [UInt64]
    private var pagesFirst: [Int]
    private var pagesPending: [UInt64]
    private var pagesUnrequested: [UInt64]
    private var requestQueue: BoundedQueue<Int>
    private var serial: UInt64 = 0
    private var index: ExtentIndex
    private var scratch: [Int]

    private var openBatch: UInt64
    private var openBatchHasJoiners = false
    private var closedBatch: UInt64 = 0
    private var flights: ActivityLogFlights
    /// The newest transaction durable with every one before it: writes whose ticket is at most
    /// this may be issued.
    public private(set) var lastDurableTransaction: UInt64
    private var transactionBuffer: [UInt32]
    public private(set) var transactionExtentCount = 0
    /// The transaction last returned by `endTurn` makes an extent leave the set.
    public private(set) var transactionEvicts = false
    /// …and one of those extents had a write released after the last flush this log asked
    /// for: the volume must be flushed before the transaction is written.
    public private(set) var transactionNeedsVolumeFlush = false
    /// Testing only: every evicting transaction skips the volume flush (the simulator shows
    /// its checker catches it).
    public var testingSkipsEvictionFlush = false
    /// Testing only: a flush counts as done when a transaction asks for it, not once that
    /// transaction is durable (the simulator shows its checker catches it).
    public var testingCountsFlushWhenAsked = false
    /// Testing only: a transaction holds the last durable set and its own batch's joiners, not
    /// those of the transactions still in flight (the simulator shows its checker catches it).
    public var testingFormsFromDurableSetOnly = false
    /// Writes released so far (`writeCompleted`), and per slot the count at its last one.
    private var releases: UInt64 = 0
    private var releasedAt: [UInt64]
    /// Every write released up to this count is on stable storage (a flush asked for by a
    /// durable transaction).
    private var volumeFlushedThrough: UInt64 = 0

    /// - lastTransaction: the number of the newest valid transaction found at load (0: none).
    /// - extentsPerWriteMax: the most extents one write may touch (max request / extent + 1).
    /// - transactionsInFlightMax: transactions written at once (the node passes
    ///   `ActivityLogSettings.transactionsInFlightMax`).
    public init(
        volumeSizeBytes: UInt64, extentBytes: UInt64, capacity: Int, blockBytes: UInt64,
        extentsPerWriteMax: Int, lastTransaction: UInt64 = 0, batching: ActivityLogBatching = .production,
        transactionsInFlightMax: Int = 1
    ) {
        precondition(capacity >= 1 && capacity <= 1000, "al_extents \(capacity) outside 1...1000")
        precondition(DirtyBitmap.isValidBlockBytes(blockBytes), "bitmap block bytes \(blockBytes)")
        precondition(extentBytes >= blockBytes && extentBytes <= 1 << 30 && extentBytes.nonzeroBitCount == 1,
                     "al_extent_bytes \(extentBytes): a power of two, ≥ the bitmap block, ≤ 1 GiB")
        precondition(extentsPerWriteMax >= 1 && extentsPerWriteMax <= capacity,
                     "a write may touch \(extentsPerWriteMax) extents; the log holds \(capacity)")
        precondition(volumeSizeBytes > 0 && (volumeSizeBytes - 1) / extentBytes < UInt64(Self.none), "volume size")
        precondition((extentBytes / blockBytes) / DirtyBitmap.bitsPerPage + 2 <= 64, "an extent spans too many pages")
        self.volumeSizeBytes = volumeSizeBytes
        self.extentBytes = extentBytes
        self.capacity = capacity
        self.blockBytes = blockBytes
        self.extentsPerWriteMax = extentsPerWriteMax
        self.batching = batching
        resident = Array(repeating: Self.none, count: capacity)
        incoming = Array(repeating: Self.none, count: capacity)
        incomingBatch = Array(repeating: 0, count: capacity)
        inFlight = Array(repeating: 0, count: capacity)
        releasedAt = Array(repeating: 0, count: capacity)
        lruPrevious = Array(repeating: -1, count: capacity)
        lruNext = Array(repeating: -1, count: capacity)
        evictionSerial = Array(repeating: 0, count: capacity)
        pagesFirst = Array(repeating: 0, count: capacity)
        pagesPending = Array(repeating: 0, count: capacity)
        pagesUnrequested = Array(repeating: 0, count: capacity)
        requestQueue = BoundedQueue(capacity: capacity)
        index = ExtentIndex(countMax: capacity * 2)
        scratch = Array(repeating: 0, count: extentsPerWriteMax)
        transactionBuffer = Array(repeating: 0, count: capacity)
        lastDurableTransaction = lastTransaction
        openBatch = lastTransaction + 1
        flights = ActivityLogFlights(limit: transactionsInFlightMax)
    }

    public var transactionsInFlightMax: Int { flights.limit }
    /// Transactions returned by `endTurn` and not yet taken as durable.
    public var transactionsInFlight: Int { flights.count }

    /// Whether transaction `number` was returned by `endTurn` and is not yet taken as durable.
    public func isInFlight(_ number: UInt64) -> Bool { flights.contains(number) }

    /// The extents of the transaction last returned by `endTurn`, ascending.
    public var transactionExtents: ArraySlice<UInt32> { transactionBuffer[0..<transactionExtentCount] }

    /// Extents in the last durable transaction.
    public var residentCount: Int { resident[0..<slotsUsed].reduce(0) { $0 + ($1 == Self.none ? 0 : 1) } }

    public func isResident(extent: UInt32) -> Bool {
        guard let slot = index.find(extent) else { return false }
        return resident[slot] == extent
    }

    public func writesInFlight(extent: UInt32) -> Int {
        guard let slot = index.find(extent) else { return 0 }
        let current = incoming[slot] != Self.none ? incoming[slot] : resident[slot]
        return current == extent ? Int(inFlight[slot]) : 0
    }

    /// Whether an extent is on its way out: a write to it gets `retryLater`.
    public func isEvicting(extent: UInt32) -> Bool {
        guard let slot = index.find(extent) else { return false }
        return resident[slot] == extent && incoming[slot] != Self.none
    }

    /// Extents `first...last` of one write. Plain integers rather than a ClosedRange: the
    /// range's generic iteration allocated in debug builds, on the per-write path.
    private struct Span {
        let first: UInt32
        let last: UInt32
        func contains(_ extent: UInt32) -> Bool { extent >= first && extent <= last }
    }

    private func extents(offsetBytes: UInt64, lengthBytes: UInt64) -> Span {
        precondition(lengthBytes > 0 && offsetBytes < volumeSizeBytes && lengthBytes <= volumeSizeBytes - offsetBytes,
                     "write \(offsetBytes)+\(lengthBytes) outside the volume")
        let first = UInt32(offsetBytes / extentBytes)
        let last = UInt32((offsetBytes + lengthBytes - 1) / extentBytes)
        precondition(Int(last - first) < extentsPerWriteMax, "a write touching \(last - first + 1) extents")
        return Span(first: first, last: last)
    }

    // MARK: Writes

    /// An application write arrives (before its bits are set and its data is issued).
    public mutating func noteWrite(offsetBytes: UInt64, lengthBytes: UInt64) -> Admission {
        let range = extents(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
        var misses = 0
        var extent = range.first
        while extent <= range.last {
            if let slot = index.find(extent) {
                if resident[slot] == extent && incoming[slot] != Self.none { return .retryLater }
            } else {
                misses += 1
            }
            extent += 1
        }
        guard findVictims(misses, excluding: range) else { return .retryLater }
        var ticket: UInt64 = 0
        var nextVictim = 0
        extent = range.first
        while extent <= range.last {
            defer { extent += 1 }
            let slot: Int
            if let found = index.find(extent) {
                slot = found
                if incoming[slot] == extent { ticket = max(ticket, incomingBatch[slot]) }
            } else {
                slot = scratch[nextVictim]
                nextVictim += 1
                join(extent, slot: slot)
                ticket = max(ticket, openBatch)
            }
            inFlight[slot] += 1
            touch(slot)
        }
        checkInvariants()
        return ticket == 0 ? .proceed : .awaitTransaction(ticket)
    }

    /// The write has been answered (or abandoned): its extents may be evicted again.
    public mutating func writeCompleted(offsetBytes: UInt64, lengthBytes: UInt64) {
        let range = extents(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
        releases += 1
        var extent = range.first
        while extent <= range.last {
            defer { extent += 1 }
            guard let slot = index.find(extent), incoming[slot] == extent || incoming[slot] == Self.none else {
                preconditionFailure("completion of a write to extent \(extent), which holds no writes")
            }
            precondition(inFlight[slot] > 0, "extent \(extent) completed more writes than it admitted")
            inFlight[slot] -= 1
            releasedAt[slot] = releases
        }
    }

    /// Picks `count` slots into `scratch`: unused slots first, then the least recently used
    /// evictable residents outside `range`. Reserves nothing.
    private mutating func findVictims(_ count: Int, excluding range: Span) -> Bool {
        var found = 0
        while found < count && slotsUsed + found < capacity {
            scratch[found] = slotsUsed + found
            found += 1
        }
        var slot = lruTail
        while found < count && slot != -1 {
            if incoming[slot] == Self.none && inFlight[slot] == 0 && !range.contains(resident[slot]) {
                scratch[found] = slot
                found += 1
            }
            slot = lruPrevious[slot]
        }
        return found == count
    }

    private mutating func join(_ extent: UInt32, slot: Int) {
        if slot == slotsUsed {
            slotsUsed += 1
            lruInsertHead(slot)
        } else {
            precondition(inFlight[slot] == 0 && incoming[slot] == Self.none, "evicting a busy extent")
            beginEviction(slot)
        }
        incoming[slot] = extent
        incomingBatch[slot] = openBatch
        openBatchHasJoiners = true
        index.insert(extent, slot: slot)
    }

    private mutating func beginEviction(_ slot: Int) {
        let offset = UInt64(resident[slot]) * extentBytes
        let length = min(extentBytes, volumeSizeBytes - offset)
        let pagePerBlocks = DirtyBitmap.bitsPerPage
        let first = Int(offset / blockBytes / pagePerBlocks)
        let last = Int((offset + length - 1) / blockBytes / pagePerBlocks)
        let mask: UInt64 = last - first == 63 ? ~0 : (1 << UInt64(last - first + 1)) - 1
        serial += 1
        evictionSerial[slot] = serial
        pagesFirst[slot] = first
        pagesPending[slot] = mask
        pagesUnrequested[slot] = mask
        requestQueue.append(slot)
    }

    // MARK: Pages and transactions

    /// The next bitmap page an eviction needs durable, or nil. Encode the page after taking
    /// the request (a page encoded earlier may lack the evicted extent's latest bits). A page
    /// the bitmap reports clean (`isPageDirty` false) may be reported persisted at once.
    public mutating func nextPageToPersist() -> PageRequest? {
        while let slot = requestQueue.first {
            guard pagesUnrequested[slot] != 0 else {
                requestQueue.removeFirst()
                continue
            }
            let bit = pagesUnrequested[slot].trailingZeroBitCount
            pagesUnrequested[slot] &= ~(1 << UInt64(bit))
            if pagesUnrequested[slot] == 0 { requestQueue.removeFirst() }
            serial += 1
            return PageRequest(page: pagesFirst[slot] + bit, extent: resident[slot], serial: serial)
        }
        return nil
    }

    /// A page write taken from `nextPageToPersist` is durable: it counts for every eviction
    /// that began before the request was taken and needs that page.
    public mutating func bitmapPagePersisted(_ request: PageRequest) {
        for slot in 0..<slotsUsed where pagesPending[slot] != 0 && evictionSerial[slot] < request.serial {
            let bit = request.page - pagesFirst[slot]
            if bit >= 0 && bit < 64 { pagesPending[slot] &= ~(1 << UInt64(bit)) }
        }
    }

    /// The end of a loop turn: closes the open batch (`batching` says when) and, if fewer than
    /// `transactionsInFlightMax` transactions are in flight and the batch's evictions have their
    /// pages durable, returns the number of the transaction to write now (its extents:
    /// `transactionExtents`).
    public mutating func endTurn() -> UInt64? {
        // Per turn, a batch closed while the transactions in flight are at their limit makes the
        // misses of every later turn until one is durable wait for the transaction after it;
        // across turns they join it (~12 fio writes per transaction at QD32 against ~7.5 with
        // one in flight, docs/benchmarks.md). Either way every ordering below holds: only batch
        // numbers differ.
        let mayClose = batching == .perTurn || !flights.isFull
        if closedBatch == 0 && openBatchHasJoiners && mayClose {
            closedBatch = openBatch
            openBatch += 1
            openBatchHasJoiners = false
        }
        guard closedBatch != 0 && !flights.isFull else { return nil }
        for slot in 0..<slotsUsed where incoming[slot] != Self.none && incomingBatch[slot] <= closedBatch {
            if pagesPending[slot] != 0 { return nil }
        }
        transactionExtentCount = 0
        transactionEvicts = false
        transactionNeedsVolumeFlush = false
        // A slot whose incoming extent is in an earlier transaction still in flight counts here
        // too: this transaction drops that slot's resident as well, and may be durable before
        // the earlier one's flush is done, so it flushes unless a durable one covered it.
        for slot in 0..<slotsUsed {
            let joins = incoming[slot] != Self.none
                && (testingFormsFromDurableSetOnly ? incomingBatch[slot] == closedBatch : incomingBatch[slot] <= closedBatch)
            if joins && resident[slot] != Self.none {
                transactionEvicts = true
                if releasedAt[slot] > volumeFlushedThrough && !testingSkipsEvictionFlush { transactionNeedsVolumeFlush = true }
            }
            let extent = joins ? incoming[slot] : resident[slot]
            guard extent != Self.none else { continue }
            transactionBuffer[transactionExtentCount] = extent
            transactionExtentCount += 1
        }
        Self.heapSort(&transactionBuffer, count: transactionExtentCount)
        let number = closedBatch
        flights.append(number, flushesThrough: transactionNeedsVolumeFlush ? releases : nil)
        if transactionNeedsVolumeFlush && testingCountsFlushWhenAsked { volumeFlushedThrough = releases }
        closedBatch = 0
        return number
    }

    /// Asks for a transaction at the next `endTurn` even if no extent joins: the set is
    /// written again as it is (its caller records something beside it that changed).
    public mutating func requestTransaction() {
        openBatchHasJoiners = true
    }

    /// The write of transaction `number` is durable (the transactions in flight may finish in
    /// any order). Taken in order: once every older one is durable too, each one's joiners
    /// become resident and its evicted extents leave. The caller then releases every write
    /// whose ticket is ≤ `lastDurableTransaction`.
    public mutating func transactionDurable(_ number: UInt64) {
        precondition(number != 0, "transaction 0")
        flights.markDurable(number)
        while let taken = flights.takeDurable() {
            for slot in 0..<slotsUsed where incoming[slot] != Self.none && incomingBatch[slot] <= taken.number {
                precondition(pagesPending[slot] == 0, "an extent left the log before its bitmap pages were durable")
                if resident[slot] != Self.none { index.remove(resident[slot]) }
                resident[slot] = incoming[slot]
                incoming[slot] = Self.none
                incomingBatch[slot] = 0
                pagesUnrequested[slot] = 0
            }
            lastDurableTransaction = taken.number
            if let through = taken.flushesThrough { volumeFlushedThrough = max(volumeFlushedThrough, through) }
        }
        checkInvariants()
    }

    // MARK: Recovery

    /// After a crash: the byte ranges of the newest valid transaction's extents, ascending
    /// and coalesced, clipped to the volume. Every one is set in the bitmap (its pages
    /// persisted) before the first new transaction is written.
    public static func dirtyRegions(afterCrash extents: [UInt32], extentBytes: UInt64, volumeSizeBytes: UInt64) -> [Region] {
        var regions: [Region] = []
        for extent in extents.sorted() {
            let offset = UInt64(extent) * extentBytes
            guard offset < volumeSizeBytes else { continue }
            let end = min(offset + extentBytes, volumeSizeBytes)
            if let last = regions.last, last.offsetBytes + last.lengthBytes >= offset {
                regions[regions.count - 1].lengthBytes = max(last.offsetBytes + last.lengthBytes, end) - last.offsetBytes
            } else {
                regions.append(Region(offsetBytes: offset, lengthBytes: end - offset))
            }
        }
        return regions
    }

    // MARK: LRU and helpers

    private mutating func touch(_ slot: Int) {
        guard lruHead != slot else { return }
        lruUnlink(slot)
        lruInsertHead(slot)
    }

    private mutating func lruUnlink(_ slot: Int) {
        let previous = lruPrevious[slot]
        let next = lruNext[slot]
        if previous != -1 { lruNext[previous] = next } else { lruHead = next }
        if next != -1 { lruPrevious[next] = previous } else { lruTail = previous }
        lruPrevious[slot] = -1
        lruNext[slot] = -1
    }

    private mutating func lruInsertHead(_ slot: Int) {
        lruPrevious[slot] = -1
        lruNext[slot] = lruHead
        if lruHead != -1 { lruPrevious[lruHead] = slot }
        lruHead = slot
        if lruTail == -1 { lruTail = slot }
    }

    private func checkInvariants() {
        #if DEBUG
            var indexed = 0
            for slot in 0..<slotsUsed {
                if resident[slot] != Self.none { indexed += 1 }
                if incoming[slot] != Self.none { indexed += 1 }
            }
            assert(index.count == indexed, "the extent index disagrees with the slots")
        #endif
    }
}
