// PrimaryNode's activity log (PrimaryNode+ActivityLog): what a write waits for, what it keeps
// in the log until when, and what each transaction says a crash restart may catch up from;
// and the ring's proof at open (ActivityLogRing) and the transaction's bases on disk.
import TandemCore
import Testing

/// A node with an activity log of `extents` 8 KiB extents (two blocks each; writes of one
/// block: two extents per write at most), 16 MiB volume.
private struct LogHarness {
    var node: PrimaryNode
    var actions: [PrimaryNodeAction] = []

    init(mode: ReplicationAckMode = .sync, extents: Int = 2, basis: SessionBasis = .continues(from: 5),
         fault: ActivityLogTestingFault? = nil, tracked: DirtyBitmap? = nil) {
        node = PrimaryNode(
            config: PrimaryNodeConfig(
                primary: ReplicationPrimaryConfig(mode: mode, bufferBytesMax: 4 << 20),
                volumeSizeBytes: 16 << 20, chunkBytes: 4096,
                activityLog: ActivityLogSettings(extents: extents, extentBytes: 8192, writeBytesMax: 4096,
                                                 lastTransaction: 10, testingFault: fault)),
            session: 77, basis: basis, trackedBitmap: tracked)
    }

    @discardableResult
    mutating func send(_ event: PrimaryNodeEvent) -> [PrimaryNodeAction] {
        actions.removeAll()
        node.handle(event, nowNs: 1_000_000_000, into: &actions)
        return actions
    }

    mutating func connect() {
        send(.enable)
        if let (number, _) = transaction { send(.activityLogWritten(transaction: number, errno: 0)) }
        send(.linkUp)
        send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
    }

    mutating func write(_ id: RequestID, block: UInt64) {
        send(.request(id: id, .write(offsetBytes: block * 4096, lengthBytes: 4096, fua: false)))
    }

    /// A write of one block, its transaction (if it missed) durable, its local write done.
    mutating func writeThrough(_ id: RequestID, block: UInt64) {
        write(id, block: block)
        var done = written
        if let (number, _) = transaction {
            done += held
            send(.activityLogWritten(transaction: number, errno: 0))
        }
        for sequence in done { send(.localWriteDone(sequence: sequence, errno: 0)) }
    }

    var transaction: (UInt64, [UInt32])? {
        for case let .writeActivityLog(number, extents, _, _, _) in actions { return (number, extents) }
        return nil
    }

    var transactionBases: [CatchUpBase]? {
        for case let .writeActivityLog(_, _, bases, _, _) in actions { return bases }
        return nil
    }

    var pagesCount: Bool? {
        for case let .writeActivityLog(_, _, _, _, pagesCount) in actions { return pagesCount }
        return nil
    }

    var pageWrite: (ticket: UInt64, pages: [Int]?, alsoSet: [BlockRun])? {
        for case let .persistBitmapPages(ticket, pages, alsoSet) in actions { return (ticket, pages, alsoSet) }
        return nil
    }

    var evicts: Bool {
        for case let .writeActivityLog(_, _, _, flush, _) in actions { return flush }
        return false
    }

    var held: [WriteSequence] { actions.compactMap { if case let .holdLocalWrite(write) = $0 { write.sequence } else { nil } } }
    var written: [WriteSequence] { actions.compactMap { if case let .writeLocal(write) = $0 { write.sequence } else { nil } } }
    var issued: [WriteSequence] { actions.compactMap { if case let .issueLocalWrite(sequence) = $0 { sequence } else { nil } } }
    var sentData: [WriteSequence] {
        actions.compactMap { if case let .send(.data(data)) = $0 { data.sequence } else { nil } }
    }
}

@Suite struct PrimaryNodeActivityLogTests {
    @Test func aMissIsHeldFromBothDisksUntilItsTransactionIsDurableThenAHitGoesAtOnce() {
        var h = LogHarness()
        h.connect()
        h.write(1, block: 6)
        #expect(h.held == [1] && h.written.isEmpty, "kept, not written: its extent is in no durable transaction")
        #expect(h.sentData.isEmpty, "not sent either: the peer must not hold what no log names")
        guard let (number, extents) = h.transaction else {
            Issue.record("no transaction for a miss")
            return
        }
        #expect(number == 12 && extents == [3], "after the driver's session start (10) and the node's bases (11)")
        h.send(.activityLogWritten(transaction: number, errno: 0))
        #expect(h.issued == [1] && h.sentData == [1], "written locally and sent in the same turn")
        h.write(2, block: 7)
        #expect(h.written == [2] && h.sentData == [2] && h.transaction == nil, "a hit (extent 3): no log write")
    }

    @Test func sendsKeepTheirOrderBehindAHeldWrite() {
        var h = LogHarness(extents: 3)
        h.connect()
        h.write(1, block: 0)
        h.send(.activityLogWritten(transaction: h.transaction!.0, errno: 0))
        h.write(2, block: 2)  // a miss: held
        let number = h.transaction!.0
        h.write(3, block: 1)  // a hit: written locally at once, but its send waits behind write 2's
        #expect(h.written == [3] && h.sentData.isEmpty)
        h.send(.activityLogWritten(transaction: number, errno: 0))
        #expect(h.issued == [2] && h.sentData == [2, 3])
    }

    @Test func anExtentStaysUntilThePeerHasItsWriteNotJustThisDisk() {
        var h = LogHarness(mode: .async, extents: 2)
        h.connect()
        for (id, block) in [(RequestID(1), UInt64(0)), (2, 2)] {
            h.write(id, block: block)
            let sequence = h.held[0]
            h.send(.activityLogWritten(transaction: h.transaction!.0, errno: 0))
            h.send(.localWriteDone(sequence: sequence, errno: 0))
        }
        // Both extents hold writes the peer has not confirmed: a third extent cannot come in.
        h.write(3, block: 4)
        #expect(h.held.isEmpty && h.written.isEmpty && h.transaction == nil && h.node.queuedRequests == 1)
        h.send(.peer(.durableThroughEpoch(h.node.primary.openEpoch)))
        #expect(h.held.count == 1 && h.evicts, "admitted once the peer has them; the transaction evicts, flushing first")
        #expect(h.transaction!.1 == [1, 2] || h.transaction!.1 == [0, 2])
        #expect(h.pageWrite == nil && h.pagesCount == false, "in sync no bit is set: no page is written, none counts")
    }

    @Test func theSeededFaultLetsAnExtentGoAtLocalCompletion() {
        var h = LogHarness(mode: .async, extents: 2, fault: .releasesAtLocalCompletion)
        h.connect()
        for (id, block) in [(RequestID(1), UInt64(0)), (2, 2)] {
            h.write(id, block: block)
            let sequence = h.held[0]
            h.send(.activityLogWritten(transaction: h.transaction!.0, errno: 0))
            h.send(.localWriteDone(sequence: sequence, errno: 0))
        }
        h.write(3, block: 4)
        #expect(h.held.count == 1, "the wrong behaviour the simulator must catch")
    }

    @Test func eachTransactionRecordsTheBasesACrashRestartMayCatchUpFrom() {
        var h = LogHarness(mode: .sync, extents: 3)
        h.connect()
        h.write(1, block: 0)
        #expect(h.transactionBases == [CatchUpBase(session: 77, durableThroughEpoch: 0), .all(of: 5)],
                "nothing of this session confirmed: the session it continues from too")
        h.send(.activityLogWritten(transaction: h.transaction!.0, errno: 0))
        h.send(.localWriteDone(sequence: 1, errno: 0))
        h.send(.peer(.dataAck(sequence: 1)))
        h.send(.peer(.durableThroughEpoch(1)))
        h.write(2, block: 2)
        #expect(h.transactionBases == [CatchUpBase(session: 77, durableThroughEpoch: 1)])
    }

    /// A full copy's every block is written to the pages first (PrimaryNode+CopyCheckpoint);
    /// until that write is durable a transaction proves no base (a crash copies the volume).
    @Test func duringAFullCopyATransactionProvesNoBaseUntilEveryPageIsWritten() {
        var copying = LogHarness(mode: .sync, extents: 3, basis: .fullCopy)
        copying.send(.enable)
        #expect(copying.transaction == nil, "no base to record: the session's start transaction already says none")
        #expect(copying.pageWrite?.pages == [0], "the copy's bits go to the pages, all set: \(copying.actions)")
        copying.write(1, block: 0)
        #expect(copying.transactionBases == [] && copying.pagesCount == false, "\(copying.actions)")
    }

    /// The node after `linkDown` with three extents each holding a write the absent peer
    /// lacks, then a fourth write that makes it go Ahead (its transaction in `actions`).
    private static func aheadWithAFullLog(fault: ActivityLogTestingFault? = nil) -> LogHarness {
        var h = LogHarness(mode: .async, extents: 3, fault: fault)
        h.connect()
        h.send(.linkDown(reason: "cut", refusal: nil))
        for extent in UInt64(0)..<3 { h.writeThrough(RequestID(extent + 1), block: 2 * extent) }
        h.write(4, block: 6)
        return h
    }

    @Test func aheadATransactionWouldRecordTheCatchUpBases() {
        let h = Self.aheadWithAFullLog()
        #expect(h.node.isAhead && !h.node.catchUpBases.isEmpty)
        #expect(h.node.activityLogBases == h.node.catchUpBases, "as a clean stop would seal the bitmap")
        #expect(h.pagesCount == nil, "the next transaction evicts: it waits for the page (below)")
    }

    @Test func anEvictionWhileAheadWritesItsBitmapPagesBeforeItsTransaction() {
        var h = Self.aheadWithAFullLog()
        // The fourth extent's transaction evicts one whose write the bitmap now marks.
        #expect(h.transaction == nil, "no transaction before the evicted extent's page: \(h.actions)")
        let write = try! #require(h.pageWrite, "\(h.actions)")
        #expect(write.pages == [0])
        h.send(.bitmapPagesPersisted(ticket: write.ticket, errno: 0))
        #expect(h.transaction != nil && h.evicts && h.pagesCount == true, "the page is durable: \(h.actions)")
        #expect(h.transactionBases == h.node.catchUpBases)
    }

    @Test func theSeededFaultEvictsWithoutWritingThePages() {
        let h = Self.aheadWithAFullLog(fault: .evictsBeforePagesPersisted)
        #expect(h.pageWrite == nil && h.transaction != nil && h.evicts && h.pagesCount == true, "\(h.actions)")
    }

    @Test func bitsOfATrackedBitmapAreWrittenBeforeATransactionCountsPages() {
        var tracked = DirtyBitmap(volumeSizeBytes: 16 << 20, blockBytes: 4096)
        _ = tracked.setRange(offsetBytes: 1 << 20, lengthBytes: 64 << 10)
        let bases = [CatchUpBase(session: 5, durableThroughEpoch: 9)]
        var h = LogHarness(mode: .async, extents: 3, basis: .catchUp(bases), tracked: tracked)
        h.send(.enable)
        let whole = try! #require(h.pageWrite, "\(h.actions)")
        #expect(whole.pages == [0], "every page with a set bit: the loaded bits are on no page yet")
        #expect(h.pagesCount != true, "no transaction counts pages before they are durable: \(h.actions)")
        h.send(.bitmapPagesPersisted(ticket: whole.ticket, errno: 0))
        #expect(h.pagesCount == true && h.transactionBases?.isEmpty == false, "recorded at once: \(h.actions)")
    }

    @Test func aFailedPageWriteFailsTheDiskAndTheLog() {
        var h = Self.aheadWithAFullLog()
        let write = try! #require(h.pageWrite)
        h.send(.bitmapPagesPersisted(ticket: write.ticket, errno: 5))
        #expect(h.node.diskFailed && h.transaction == nil)
        #expect(h.actions.contains { if case .notice(.diskFailed(operation: "bitmap page write", _)) = $0 { true } else { false } })
    }

    @Test func aFailedLogWriteFailsTheHeldWriteAsAFailedLocalWrite() {
        var h = LogHarness()
        h.connect()
        h.write(1, block: 6)
        h.send(.activityLogWritten(transaction: h.transaction!.0, errno: 5))
        #expect(h.issued.isEmpty && h.node.diskFailed, "never written here")
        #expect(h.sentData == [1], "sent, as a write whose local write failed is: the stream answers it")
        #expect(h.actions.contains { if case .notice(.diskFailed(operation: "activity-log write", _)) = $0 { true } else { false } })
    }
}

@Suite struct ActivityLogRingTests {
    static let uuid: UInt128 = 0xABCD

    static func slot(_ number: UInt64, _ extents: [UInt32] = [1, 4], bases: [CatchUpBase] = []) -> [UInt8] {
        ActivityLogTransaction(transaction: number, resourceUUID: uuid, extents: extents, bases: bases).encode()
    }

    static let zero = [UInt8](repeating: 0, count: 4096)

    static func newest(_ slots: [[UInt8]]) -> Result<ActivityLogTransaction?, ActivityLogRing.ProofError> {
        ActivityLogRing.newest(slots, resourceUUID: uuid, extentsMax: 1000)
    }

    @Test func aTransactionCarriesItsBasesThroughTheDisk() throws {
        let bases = [CatchUpBase(session: 9, durableThroughEpoch: 40), .all(of: 3)]
        let decoded = try ActivityLogTransaction.decode(Self.slot(7, [2, 9, 1000], bases: bases), resourceUUID: Self.uuid,
                                                        extentsMax: 1000).get()
        #expect(decoded.bases == bases && decoded.extents == [2, 9, 1000] && decoded.transaction == 7)
    }

    @Test func aTransactionCarriesThePagesFlagAtOffset36AndRefusesUnknownFlags() throws {
        var bytes = ActivityLogTransaction(transaction: 7, resourceUUID: Self.uuid, extents: [3],
                                           bases: [.all(of: 3)], bitmapPagesCount: true).encode()
        #expect(bytes[36] == 1 && bytes[37] == 0 && bytes[38] == 0 && bytes[39] == 0)
        #expect(try ActivityLogTransaction.decode(bytes, resourceUUID: Self.uuid, extentsMax: 1000).get().bitmapPagesCount)
        #expect(Self.slot(7)[36..<40].allSatisfy { $0 == 0 }, "without the flag the field stays as it was: reserved 0")
        #expect(try !ActivityLogTransaction.decode(Self.slot(7), resourceUUID: Self.uuid, extentsMax: 1000).get().bitmapPagesCount)
        bytes[36] = 3  // a flag this version does not know, resealed
        for index in 4..<8 { bytes[index] = 0 }
        let crc = CRC32C.checksum(bytes)
        for index in 0..<4 { bytes[4 + index] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(index))) }
        guard case .failure(.invalidField(let reason)) = ActivityLogTransaction.decode(bytes, resourceUUID: Self.uuid,
                                                                                        extentsMax: 1000) else {
            Issue.record("an unknown flag was accepted")
            return
        }
        #expect(reason.contains("unknown transaction flags"))
    }

    @Test func aRingNeverWrittenProvesNothingToCatchUpAndIsNoError() throws {
        #expect(try Self.newest(Array(repeating: Self.zero, count: 4)).get() == nil)
    }

    @Test func theNewestIsFoundInAFilledRingAndAfterWrapping() throws {
        #expect(try Self.newest([Self.zero, Self.slot(1), Self.slot(2), Self.zero]).get()?.transaction == 2)
        #expect(try Self.newest([Self.slot(4), Self.slot(5), Self.slot(6), Self.slot(3)]).get()?.transaction == 6)
    }

    @Test func onlyTheSlotsBesideTheNewestMayBeTornByTheCrash() throws {
        #expect(ActivityLogRing.transactionsInFlightMax == 2, "these rings are drawn for two transactions in flight")
        var torn = Self.slot(7)
        torn[100] ^= 0xFF
        // 5 is newest; slot 2 (transaction 6's) was being written: 5 is proven.
        #expect(try Self.newest([Self.slot(4), Self.slot(5), torn, Self.slot(3)]).get()?.transaction == 5)
        // Transaction 4 was in flight with 5 and the disk finished 5 first: 5 is proven.
        #expect(try Self.newest([torn, Self.slot(5), torn, Self.slot(3)]).get()?.transaction == 5)
        // The same damage to transaction 3's slot (written before 5 could be): nothing proven.
        guard case .failure(let error) = Self.newest([Self.slot(4), Self.slot(5), Self.slot(2), torn]) else {
            Issue.record("a damaged slot that must hold transaction 3 was believed")
            return
        }
        #expect(error.slot == 3 && error.description.contains("activity-log slot 3"))
    }

    @Test func aTransactionInTheWrongSlotOrAGapProvesNothing() {
        if case .success = Self.newest([Self.slot(4), Self.slot(6), Self.slot(2), Self.slot(3)]) {
            Issue.record("transaction 6 in slot 1 was believed")
        }
        // Eight slots, 10 newest (slot 2): 9 (slot 1) may be stale, 8 (slot 0) may not.
        var ring = (0..<8).map { Self.slot(UInt64($0 < 3 ? $0 + 8 : $0)) }
        ring[1] = Self.slot(1)
        if case .failure(let error) = Self.newest(ring) { Issue.record("a stale slot beside the newest refused: \(error)") }
        ring[0] = Self.zero
        guard case .failure(let error) = Self.newest(ring) else {
            Issue.record("a ring with 10, a stale 9 and nothing where 8 belongs was believed")
            return
        }
        #expect(error.slot == 0, "\(error)")
    }

    /// A crash left transaction 4 torn and 5 durable: the next session's start writes 6, and
    /// from then on the proof judges 4's slot. So the start first writes it again — a copy of the
    /// newest under 4's number — and the ring proves its newest at every later crash.
    @Test func aSlotACrashLeftUnfinishedBeforeTheNewestIsSettledWithTheNewestsCopy() throws {
        var torn = Self.slot(4)
        torn[100] ^= 0xFF
        let newest = ActivityLogTransaction(transaction: 5, resourceUUID: Self.uuid, extents: [2, 3],
                                            bases: [CatchUpBase(session: 2, durableThroughEpoch: 9)])
        var ring = [torn, newest.encode(), Self.slot(2), Self.slot(3)]
        #expect(try Self.newest(ring).get() == newest)
        let unsettled = ActivityLogRing.unsettled(ring, newest: 5, resourceUUID: Self.uuid, extentsMax: 1000)
        #expect(unsettled == [4])
        // Without settling: once 6 is written, the torn 4 is judged and the ring proves nothing.
        var unsettledRing = ring
        unsettledRing[2] = Self.slot(6)
        if case .success = Self.newest(unsettledRing) { Issue.record("a torn slot two before the newest was believed") }
        let sealed = ActivityLogRing.sealed(newest, as: 4)
        #expect(sealed.transaction == 4 && sealed.extents == newest.extents && sealed.bases == newest.bases)
        ring[0] = sealed.encode()
        #expect(ActivityLogRing.unsettled(ring, newest: 5, resourceUUID: Self.uuid, extentsMax: 1000).isEmpty)
        ring[2] = Self.slot(6)
        ring[3] = Self.slot(7)
        #expect(try Self.newest(ring).get()?.transaction == 7)
        // A ring that never got past its first transaction has nothing before it to settle.
        #expect(ActivityLogRing.unsettled([Self.zero, Self.slot(1), Self.zero, Self.zero], newest: 1,
                                          resourceUUID: Self.uuid, extentsMax: 1000).isEmpty)
    }

    /// FuzzPages' first finding: a sealed slot whose transaction number is past Int.max
    /// trapped the proof (`Int(newest)`), so a damaged metadata file stopped the daemon at open.
    /// Numbers up to 2^64 − 1 are judged like any other.
    @Test func transactionNumbersPastIntMaxAreJudgedNotTrapped() throws {
        let top = UInt64.max  // slot 3 of 4 (2^64 − 1 = 4k + 3)
        #expect(try Self.newest([Self.slot(top - 3), Self.slot(top - 2), Self.slot(top - 1), Self.slot(top)]).get()?.transaction == top)
        let big = UInt64(Int.max) + 2  // 2^63 + 1, slot 1 of 4
        guard case .failure(let error) = Self.newest([Self.zero, Self.slot(big), Self.zero, Self.zero]) else {
            Issue.record("a lone transaction 2^63 + 1 with nothing before it was believed")
            return
        }
        #expect(error.slot == 3, "\(error)")  // 2^63 − 1's: 2^63 (slot 0) may be torn
    }

    /// FuzzPages' second finding: a sealed slot numbered 0 (transactions start at 1) in the
    /// slot after it, the one a crash may leave torn, went unchecked, and a ring holding
    /// nothing else passed for never written, so a crash restart would copy nothing.
    @Test func aRingOfTransactionZeroIsRefusedNotTakenForNeverWritten() {
        guard case .failure(let error) = Self.newest([Self.zero, Self.slot(0), Self.zero, Self.zero]) else {
            Issue.record("a ring with a sealed transaction 0 passed for never written")
            return
        }
        #expect(error.slot == 1 && error.description.contains("transaction 0"), "\(error)")
    }
}
