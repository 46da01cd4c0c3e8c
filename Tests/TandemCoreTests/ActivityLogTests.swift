import Testing

@testable import TandemCore

@Suite struct ActivityLogTests {
    static let extent: UInt64 = 4 << 20

    private func log(capacity: Int = 4, extentsPerWrite: Int = 2, volumeExtents: UInt64 = 256,
                     batching: ActivityLogBatching = .production, inFlight: Int = 1) -> ActivityLog {
        ActivityLog(
            volumeSizeBytes: volumeExtents * Self.extent, extentBytes: Self.extent, capacity: capacity,
            blockBytes: 4096, extentsPerWriteMax: extentsPerWrite, batching: batching,
            transactionsInFlightMax: inFlight)
    }

    /// Writes one block at the start of `extent`.
    private func write(_ log: inout ActivityLog, _ extent: UInt64) -> ActivityLog.Admission {
        log.noteWrite(offsetBytes: extent * Self.extent, lengthBytes: 4096)
    }

    private func complete(_ log: inout ActivityLog, _ extent: UInt64) {
        log.writeCompleted(offsetBytes: extent * Self.extent, lengthBytes: 4096)
    }

    /// Persists every page the log asks for (as if each were written and made durable).
    private func persistPages(_ log: inout ActivityLog) -> [Int] {
        var pages: [Int] = []
        while let request = log.nextPageToPersist() {
            pages.append(request.page)
            log.bitmapPagePersisted(request)
        }
        return pages
    }

    @Test func aMissWaitsForATransactionHoldingTheWholeSetThenHitsProceed() {
        var al = log()
        #expect(write(&al, 5) == .awaitTransaction(1))
        #expect(write(&al, 5) == .awaitTransaction(1))  // same extent, same turn
        #expect(al.endTurn() == 1)
        #expect(Array(al.transactionExtents) == [5])
        #expect(al.endTurn() == nil)  // nothing new; one transaction in flight at a time
        al.transactionDurable(1)
        #expect(write(&al, 5) == .proceed)
        #expect(al.writesInFlight(extent: 5) == 3)
    }

    @Test func everyMissOfOneTurnSharesOneTransaction() {
        var al = log()
        for extent: UInt64 in [9, 2, 7] { #expect(write(&al, extent) == .awaitTransaction(1)) }
        #expect(al.endTurn() == 1)
        #expect(Array(al.transactionExtents) == [2, 7, 9])
        // A miss while transaction 1 is in flight waits for the next one, which again holds
        // the whole set.
        #expect(write(&al, 4) == .awaitTransaction(2))
        #expect(al.endTurn() == nil)
        al.transactionDurable(1)
        #expect(al.endTurn() == 2)
        #expect(Array(al.transactionExtents) == [2, 4, 7, 9])
    }

    /// A miss in each of three turns while transaction 1 is in flight. Per turn, the first
    /// turn's batch closes at once (transaction 2) and the misses of the two later turns wait
    /// for transaction 3; across turns all three share transaction 2, closed only when it can
    /// be written. Either way a miss after that waits for the transaction after it.
    @Test(arguments: ActivityLogBatching.allCases)
    func theMissesOfTheTurnsWhileATransactionIsInFlightJoinTheBatchTheRuleSays(batching: ActivityLogBatching) {
        var al = log(capacity: 8, batching: batching)
        #expect(write(&al, 1) == .awaitTransaction(1))
        #expect(al.endTurn() == 1)
        let tickets: [UInt64] = batching == .perTurn ? [2, 3, 3] : [2, 2, 2]
        for (extent, ticket) in zip([UInt64(2), 3, 4], tickets) {
            #expect(write(&al, extent) == .awaitTransaction(ticket))
            #expect(al.endTurn() == nil)
        }
        al.transactionDurable(1)
        #expect(al.endTurn() == 2)
        #expect(Array(al.transactionExtents) == (batching == .perTurn ? [1, 2] : [1, 2, 3, 4]))
        #expect(write(&al, 5) == .awaitTransaction(3))
        #expect(al.endTurn() == nil)
        al.transactionDurable(2)
        #expect(write(&al, 2) == .proceed)
        #expect(al.endTurn() == 3)
        #expect(Array(al.transactionExtents) == [1, 2, 3, 4, 5])
    }

    @Test func anExtentLeavesOnlyAfterItsBitmapPagesAreDurable() {
        var al = log(capacity: 2)
        _ = write(&al, 1)
        _ = write(&al, 2)
        _ = al.endTurn()
        al.transactionDurable(1)
        complete(&al, 1)
        complete(&al, 2)
        _ = write(&al, 2)  // 1 is now least recently used
        #expect(write(&al, 3) == .awaitTransaction(2))
        #expect(al.isEvicting(extent: 1))
        // Extent 1's pages are not yet durable: no transaction may drop it.
        #expect(al.endTurn() == nil)
        #expect(al.endTurn() == nil)
        // A write to the extent on its way out waits for the eviction to finish.
        #expect(write(&al, 1) == .retryLater)
        let request = al.nextPageToPersist()
        #expect(request?.page == 0 && request?.extent == 1)
        al.bitmapPagePersisted(request!)
        #expect(al.nextPageToPersist() == nil)
        #expect(al.endTurn() == 2)
        #expect(Array(al.transactionExtents) == [2, 3])
        al.transactionDurable(2)
        #expect(!al.isResident(extent: 1) && al.isResident(extent: 3))
    }

    @Test func aPageWriteTakenBeforeTheEvictionBeganDoesNotCount() {
        var al = log(capacity: 2)
        _ = write(&al, 0)
        _ = write(&al, 1)
        _ = al.endTurn()
        al.transactionDurable(1)
        complete(&al, 0)
        complete(&al, 1)
        _ = write(&al, 2)  // evicts 0 (page 0)
        let early = al.nextPageToPersist()!
        _ = write(&al, 2)
        complete(&al, 2)
        complete(&al, 2)
        // A second eviction of a page-0 extent begins after `early` was taken.
        _ = write(&al, 3)  // evicts 1, also page 0
        al.bitmapPagePersisted(early)
        #expect(al.endTurn() == nil)  // 1's page is still owed
        let late = al.nextPageToPersist()!
        #expect(late.page == 0)
        al.bitmapPagePersisted(late)
        #expect(al.endTurn() == 2)
        #expect(Array(al.transactionExtents) == [2, 3])
    }

    /// Fills a capacity-2 log with extents 0 and 1 (each written once and released) in one
    /// transaction, then misses `extent`: returns the evicting transaction's number.
    private func evictOne(_ al: inout ActivityLog, _ extent: UInt64) -> UInt64? {
        #expect(write(&al, extent) == .awaitTransaction(al.lastDurableTransaction + 1))
        _ = persistPages(&al)
        return al.endTurn()
    }

    /// Extents 0 and 1 in the durable set, both released; a write to extent 2 evicts one of them:
    /// transaction 2 is formed and needs a volume flush first.
    private func evictingTransactionFormed(inFlight: Int, countsFlushWhenAsked: Bool = false) -> ActivityLog {
        var al = log(capacity: 2, extentsPerWrite: 1, inFlight: inFlight)
        al.testingCountsFlushWhenAsked = countsFlushWhenAsked
        _ = write(&al, 0)
        _ = write(&al, 1)
        #expect(al.endTurn() == 1)
        al.transactionDurable(1)
        complete(&al, 0)
        complete(&al, 1)
        #expect(evictOne(&al, 2) == 2)
        #expect(al.transactionNeedsVolumeFlush)
        return al
    }

    @Test func anEvictionFlushesTheVolumeOnlyWhenALeavingExtentWasWrittenSinceTheLastFlush() {
        var al = log(capacity: 2, extentsPerWrite: 1)
        _ = write(&al, 0)
        _ = write(&al, 1)
        #expect(al.endTurn() == 1)
        #expect(!al.transactionEvicts && !al.transactionNeedsVolumeFlush)  // no extent leaves
        al.transactionDurable(1)
        complete(&al, 0)
        complete(&al, 1)
        // Extent 0 (least recently used) leaves; its write was released and never flushed.
        #expect(evictOne(&al, 2) == 2)
        #expect(al.transactionEvicts && al.transactionNeedsVolumeFlush)
        al.transactionDurable(2)
        complete(&al, 2)
        // Extent 1 leaves: its write was released before transaction 2 asked for its flush.
        #expect(evictOne(&al, 3) == 3)
        #expect(al.transactionEvicts && !al.transactionNeedsVolumeFlush)
        al.transactionDurable(3)
        complete(&al, 3)
        // Extent 2 leaves: written after that flush was asked for, so a new one is needed.
        #expect(evictOne(&al, 4) == 4)
        #expect(al.transactionNeedsVolumeFlush)
    }

    @Test func aMissDuringAnEvictingTransactionCountsOnItsFlushOnceItIsDurable() {
        var al = evictingTransactionFormed(inFlight: 1)
        // A miss while transaction 2 (and its flush) is in flight joins transaction 3, formed
        // only once 2 is durable: by then extent 1's release is covered by 2's flush.
        #expect(write(&al, 5) == .awaitTransaction(3))
        al.transactionDurable(2)
        complete(&al, 2)
        _ = persistPages(&al)
        #expect(al.endTurn() == 3)
        #expect(!al.transactionNeedsVolumeFlush)  // extent 1 was released before transaction 2's flush
    }

    @Test func twoTransactionsGoInFlightTogetherEachHoldingTheWholeSet() {
        var al = log(inFlight: 2)
        #expect(write(&al, 0) == .awaitTransaction(1))
        #expect(al.endTurn() == 1)
        #expect(write(&al, 1) == .awaitTransaction(2))
        #expect(al.endTurn() == 2)  // while 1 is in flight
        #expect(Array(al.transactionExtents) == [0, 1], "1's joiner is in 2 as well")
        #expect(al.transactionsInFlight == 2 && al.isInFlight(1) && al.isInFlight(2))
        #expect(write(&al, 2) == .awaitTransaction(3))
        #expect(al.endTurn() == nil)  // at the limit
        // The disk finishes 2 first: nothing is taken, and 2 still counts in flight (3 must not
        // be written while 1 may still be torn: the ring's proof allows one slot's gap).
        al.transactionDurable(2)
        #expect(al.lastDurableTransaction == 0 && !al.isResident(extent: 0) && !al.isResident(extent: 1))
        #expect(al.endTurn() == nil)
        al.transactionDurable(1)
        #expect(al.lastDurableTransaction == 2 && al.isResident(extent: 0) && al.isResident(extent: 1))
        #expect(al.transactionsInFlight == 0)
        #expect(al.endTurn() == 3)
        #expect(Array(al.transactionExtents) == [0, 1, 2])
        #expect(write(&al, 0) == .proceed)
    }

    /// Transaction 2 evicts extent 0 and flushes first. Transaction 3, formed while 2 is in
    /// flight, drops extent 0 as well and may be durable before 2's flush is done: it flushes
    /// too, unless (the seeded fault) 2's flush was counted done when asked for.
    @Test(arguments: [false, true])
    func aTransactionFormedWhileAnEarlierOnesFlushIsPendingFlushesToo(countsFlushWhenAsked: Bool) {
        var al = evictingTransactionFormed(inFlight: 2, countsFlushWhenAsked: countsFlushWhenAsked)
        al.requestTransaction()
        #expect(al.endTurn() == 3)
        #expect(Array(al.transactionExtents) == [1, 2])
        #expect(al.transactionEvicts, "3 drops extent 0 against the durable set")
        #expect(al.transactionNeedsVolumeFlush == !countsFlushWhenAsked)
        al.transactionDurable(3)
        al.transactionDurable(2)
        // Once 2 is durable its flush counts: a transaction dropping nothing new needs none.
        al.requestTransaction()
        #expect(al.endTurn() == 4)
        #expect(!al.transactionEvicts && !al.transactionNeedsVolumeFlush)
    }

    @Test func anExtentWithWritesInFlightIsNeverEvicted() {
        var al = log(capacity: 2)
        _ = write(&al, 1)
        _ = write(&al, 2)
        _ = al.endTurn()
        al.transactionDurable(1)
        // Both extents still have their write in flight: nothing can make room.
        #expect(write(&al, 3) == .retryLater)
        #expect(al.isResident(extent: 1) && al.isResident(extent: 2))
        complete(&al, 2)
        #expect(write(&al, 3) == .awaitTransaction(2))
        #expect(al.isEvicting(extent: 2) && !al.isEvicting(extent: 1))
    }

    @Test func aWriteAcrossTwoExtentsReservesBothOrNeither() {
        var al = log(capacity: 2)
        _ = write(&al, 7)
        _ = al.endTurn()
        al.transactionDurable(1)
        // Extent 7 is busy and a two-extent write needs two new slots: refused whole.
        #expect(al.noteWrite(offsetBytes: 10 * Self.extent - 4096, lengthBytes: 8192) == .retryLater)
        #expect(al.writesInFlight(extent: 9) == 0 && !al.isResident(extent: 9))
        complete(&al, 7)
        #expect(al.noteWrite(offsetBytes: 10 * Self.extent - 4096, lengthBytes: 8192) == .awaitTransaction(2))
        #expect(al.writesInFlight(extent: 9) == 1 && al.writesInFlight(extent: 10) == 1)
    }

    @Test func anExtentStraddlingTwoBitmapPagesNeedsBoth() {
        var al = log(capacity: 1, extentsPerWrite: 1)
        _ = write(&al, 31)  // blocks 31·1024 ... 32·1024-1 cross block 32 512, page 1's first
        _ = al.endTurn()
        al.transactionDurable(1)
        complete(&al, 31)
        _ = write(&al, 40)
        #expect(persistPages(&al) == [0, 1])
        #expect(al.endTurn() == 2)
    }

    @Test func afterACrashTheLoggedExtentsAreDirtyCoalescedAndClippedToTheVolume() {
        let regions = ActivityLog.dirtyRegions(
            afterCrash: [9, 3, 4, 300], extentBytes: Self.extent, volumeSizeBytes: 9 * Self.extent + 4096)
        #expect(regions == [
            ActivityLog.Region(offsetBytes: 3 * Self.extent, lengthBytes: 2 * Self.extent),
            ActivityLog.Region(offsetBytes: 9 * Self.extent, lengthBytes: 4096),
        ])
    }

    @Test func numbersContinueFromTheNewestTransactionFoundAtLoad() {
        var al = ActivityLog(
            volumeSizeBytes: 1 << 30, extentBytes: Self.extent, capacity: 8, blockBytes: 4096,
            extentsPerWriteMax: 2, lastTransaction: 41)
        #expect(write(&al, 0) == .awaitTransaction(42))
        #expect(al.endTurn() == 42)
    }

    /// Random writes, completions, turns, page writes and transaction completions. After every
    /// step: every write issued to the disk is covered by the last durable transaction, the
    /// transaction holds at most `capacity` extents, and an extent dropped by a transaction
    /// had no write in flight and its pages persisted after its eviction began.
    /// With several transactions in flight, finished by the disk in any order: every issued
    /// write is covered by the last durable transaction and by each one in flight — whichever a
    /// crash leaves newest on disk.
    @Test(arguments: ActivityLogBatching.allCases, [1, 2])
    func issuedWritesAreAlwaysCoveredByTheDurableLog(batching: ActivityLogBatching, inFlight: Int) {
        var random = SplitMix64(seed: 4242)
        var transactions = 0
        var evictions = 0
        for round in 0..<20 {
            var al = log(capacity: 1 + round % 6, extentsPerWrite: 1 + round % 2, volumeExtents: 64, batching: batching,
                         inFlight: inFlight)
            let counts = simulate(&al, &random, steps: 3000)
            transactions += counts.transactions
            evictions += counts.evictions
        }
        // The walk must reach the interesting paths, or it proves nothing.
        #expect(transactions > 1000 && evictions > 1000)
    }

    private struct Pending {
        var extents: ClosedRange<UInt64>
        var ticket: UInt64
    }

    private func simulate(
        _ al: inout ActivityLog, _ random: inout SplitMix64, steps: Int
    ) -> (transactions: Int, evictions: Int) {
        var transactions = 0
        var evictions = 0
        var durableSet = Set<UInt32>()
        var issued: [ClosedRange<UInt64>] = []
        var waiting: [Pending] = []
        var pagesOwed: [ActivityLog.PageRequest] = []
        var transactionsInFlight: [(number: UInt64, set: Set<UInt32>, done: Bool)] = []
        var lastTaken: UInt64 = 0
        for _ in 0..<steps {
            switch UInt64.random(in: 0..<10, using: &random) {
            case 0..<4:
                let first = UInt64.random(in: 0..<64, using: &random)
                let span = al.extentsPerWriteMax == 2 && first < 63 && Bool.random(using: &random) ? 1 : 0
                let offset = first * Self.extent + (span == 1 ? Self.extent - 4096 : 0)
                switch al.noteWrite(offsetBytes: offset, lengthBytes: UInt64(span == 1 ? 8192 : 4096)) {
                case .proceed: issued.append(first...(first + UInt64(span)))
                case .awaitTransaction(let n): waiting.append(Pending(extents: first...(first + UInt64(span)), ticket: n))
                case .retryLater: break
                }
            case 4..<6 where !issued.isEmpty:
                let done = issued.remove(at: Int.random(in: 0..<issued.count, using: &random))
                al.writeCompleted(offsetBytes: done.lowerBound * Self.extent + (done.count == 2 ? Self.extent - 4096 : 0),
                                  lengthBytes: done.count == 2 ? 8192 : 4096)
            case 6:
                while let request = al.nextPageToPersist() { pagesOwed.append(request) }
                if !pagesOwed.isEmpty { al.bitmapPagePersisted(pagesOwed.removeFirst()) }
            case 7:
                if let number = al.endTurn() {
                    precondition(transactionsInFlight.count < al.transactionsInFlightMax)
                    let set = Set(al.transactionExtents)
                    #expect(set.count == al.transactionExtents.count && set.count <= al.capacity)
                    #expect(Array(al.transactionExtents) == al.transactionExtents.sorted())
                    transactionsInFlight.append((number, set, false))
                }
            default:
                // The disk finishes any transaction in flight; the log takes them in order.
                let open = transactionsInFlight.indices.filter { !transactionsInFlight[$0].done }
                guard !open.isEmpty else { break }
                let finished = open[Int.random(in: 0..<open.count, using: &random)]
                transactionsInFlight[finished].done = true
                al.transactionDurable(transactionsInFlight[finished].number)
                while let first = transactionsInFlight.first, first.done {
                    transactionsInFlight.removeFirst()
                    transactions += 1
                    evictions += durableSet.subtracting(first.set).count
                    durableSet = first.set
                    lastTaken = first.number
                }
                #expect(al.lastDurableTransaction == lastTaken, "the log takes durable transactions in order")
                let durable = al.lastDurableTransaction
                let released = waiting.filter { $0.ticket <= durable }
                waiting.removeAll { $0.ticket <= durable }
                issued += released.map(\.extents)
            }
            for write in issued {
                #expect(write.allSatisfy { durableSet.contains(UInt32($0)) }, "write to \(write) not covered")
                // Every extent with an issued write stays in each transaction being written.
                for next in transactionsInFlight { #expect(write.allSatisfy { next.set.contains(UInt32($0)) }) }
            }
        }
        return (transactions, evictions)
    }
}

