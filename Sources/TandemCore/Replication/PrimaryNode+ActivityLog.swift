// PrimaryNode's activity log: what makes a crash restart cost the regions the primary's last
// moments touched (and, Ahead or catching up, the bitmap's regions) instead of the whole
// volume (docs/replication.md, *Stops and restarts*; docs/metadata.md, *Activity-log
// transaction*). The decisions are the ActivityLog's (Tracking); this file wires them into
// the write path:
//
// - Admission: every application write (and zero chunk) notes its extents. A write to an
//   extent outside the durable active set waits for the transaction naming it: its payload is
//   kept (`.holdLocalWrite`) but neither written locally nor sent to the peer until that
//   transaction is durable (`.activityLogWritten`). Sends keep their order, so every send
//   after a held write waits too. The design's overlap of the log write with the network
//   round trip (design-v3 §4) needs the secondary to log what it applies; without that, a
//   write the peer held and this node's log did not name would differ after a crash.
// - References: a write keeps its extents in the set until the stream releases it — durable
//   on the peer and written here, or (Ahead) marked in the bitmap. An evicting transaction
//   flushes the volume first when a write to an extent that leaves was released after the
//   last such flush (ActivityLog): the writes of the extent that leaves are then on stable
//   storage. An earlier flush covers an extent last written before it was asked for.
// - Bases (the mode, `ActivityLogMode`): in sync (no bit set, no copy due) a transaction
//   records the bases the peer held when it was written. Ahead or catching up it records the
//   bases a clean stop would seal the bitmap with (PrimaryNode+Stop) and says the bitmap
//   pages count: a crash restart catches up the durable pages ∪ its extents. That holds
//   because on-disk pages ∪ the log's extents ⊇ every bit set for a region the peer may lack:
//   a bit set by a write has its extent in the log, which it leaves only by an eviction whose
//   pages are durable first (`.persistBitmapPages`, encoded with the regions of copy chunks
//   the peer has not confirmed, which the bitmap no longer marks). Bits set without a write
//   (a tracked bitmap at start, verify mismatches, a full copy's `markEveryBlock`) make every
//   page holding one written before a transaction says pages count again: a full copy writes
//   every page once, all set, and then counts them like a catch-up; as the peer confirms its
//   chunks their pages are written clear (PrimaryNode+CopyCheckpoint), so a crash restart
//   resumes the copy instead of starting it over. A crash while stopping or after a disk
//   failure records no bases (the volume is copied). When the mode (or, counting pages, the
//   session or Ahead) changes, a transaction is written to record it.
// - Transactions: up to `transactionsInFlightMax` in flight at once, each the whole set; the
//   misses while they are at the limit share a later one (group commit; `ActivityLogBatching`
//   says which), which the driver writes (one 4 KiB write and a data sync). A held write is
//   issued once its transaction and every older one are durable (ActivityLog takes them in
//   order), whatever order the disk finishes them in.

/// What the next activity-log transaction may claim.
enum ActivityLogMode: Sendable, Equatable {
    /// No bases: a crash restart copies the volume.
    case none
    /// In sync: the bases the peer holds; the extents alone are what it may lack.
    case inSync
    /// Ahead or catching up: the bitmap's durable pages ∪ the extents, from the catch-up bases.
    case pages
}

extension PrimaryNode {
    /// The write path's state around the ActivityLog. Tables are allocated at the first write.
    struct ActivityLogGate: Sendable {
        /// The range of each held sequence (`sequence % writesInFlightMax`); length 0: none.
        var spanOffsets: [UInt64] = []
        var spanLengths: [UInt32] = []
        /// Writes kept but not written locally: (sequence, the transaction they wait for).
        var heldWrites: [(sequence: WriteSequence, transaction: UInt64)] = []
        /// Messages held behind a held write, in order, with the transaction they wait for.
        var heldSends: [(transaction: UInt64, message: PrimaryMessage)] = []
        /// The transaction the newest held write waits for: sends wait until it is durable.
        var sendLevel: UInt64 = 0
        /// The admission's verdict for the write being fed to the stream (0: none needed).
        var pendingTransaction: UInt64 = 0
        /// What the last transaction formed claimed (and, counting pages, for which session
        /// and whether Ahead): a change writes a transaction at once.
        var formedMode = ActivityLogMode.none
        var formedSession: UInt64 = 0
        var formedAhead = false
        /// Bumped when bits are set without a write; the value the last whole-bitmap write
        /// covered. Pages count only when they are equal.
        var bitsWithoutWrite: UInt64 = 0
        var pagesCoverThrough: UInt64 = 0
        /// Every block was marked (a full copy): a crash restart's compare is given up.
        var wholeVolumeMarked = false
        /// The copy's chunks confirmed since its pages were last written (+CopyCheckpoint).
        var copyCheckpoint = ChecksumCheckpoint()
        /// Page writes asked for and not answered, and the last ticket.
        var pageWrites: [PageWrite] = []
        var pageTicket: UInt64 = 0
        /// The head of the queue could not take a reference (no evictable extent).
        var blocked = false
        /// A log write failed: the disk failed, nothing waits for the log any more.
        var failed = false
        /// Writes held for a transaction so far (misses, and hits on an extent still joining):
        /// over `activity_log_writes`, the writes one transaction releases.
        var heldWritesTotal: UInt64 = 0
        /// Times the head of the queue found no extent it could take (`retryLater`).
        var blockedTotal: UInt64 = 0
    }

    /// Writes that waited for an activity-log transaction, since the node started.
    public var activityLogHeldWrites: UInt64 { gate.heldWritesTotal }

    /// Times an admission waited because the log had no extent to give (`retryLater`).
    public var activityLogBlockedAdmissions: UInt64 { gate.blockedTotal }

    /// A `.persistBitmapPages` in flight: the eviction pages it answers, and for a write of
    /// every page the `bitsWithoutWrite` value it covers.
    struct PageWrite: Sendable {
        var ticket: UInt64
        var requests: [ActivityLog.PageRequest]
        var covers: UInt64?
    }

    static func makeActivityLog(_ config: PrimaryNodeConfig) -> ActivityLog? {
        guard let settings = config.activityLog else { return nil }
        var log = ActivityLog(
            volumeSizeBytes: config.volumeSizeBytes, extentBytes: settings.extentBytes, capacity: settings.extents,
            blockBytes: config.bitmapBlockBytes, extentsPerWriteMax: settings.extentsPerWriteMax,
            lastTransaction: settings.lastTransaction, batching: settings.batching,
            transactionsInFlightMax: settings.transactionsInFlightMax)
        log.testingSkipsEvictionFlush = settings.testingFault == .skipsEvictionFlush
        log.testingCountsFlushWhenAsked = settings.testingFault == .countsFlushWhenAsked
        log.testingFormsFromDurableSetOnly = settings.testingFault == .formsFromDurableSetOnly
        return log
    }

    /// A transaction formed now proves in-sync bases (checked after every event: no allocation).
    var activityLogHasBases: Bool {
        !isAhead && !copyWanted && !restartPending && pendingSession == nil && peerInconsistentThroughEpoch == nil
            && !stopping && !diskFailed && bitmap.outOfSyncBytes == 0
    }

    /// Out of sync, a transaction could count the bitmap's pages (once they cover the bits
    /// set without a write, a full copy's included): bases exist as a clean stop would seal them.
    var activityLogPagesMayCount: Bool {
        !stopping && !diskFailed && (!isAhead || !catchUpBases.isEmpty)
    }

    var activityLogMode: ActivityLogMode {
        if activityLogHasBases { return .inSync }
        guard activityLogPagesMayCount, gate.pagesCoverThrough == gate.bitsWithoutWrite else { return .none }
        return .pages
    }

    /// The bases a transaction formed now proves (empty: a crash must copy the volume).
    public var activityLogBases: [CatchUpBase] { activityLogBases(activityLogMode) }

    func activityLogBases(_ mode: ActivityLogMode) -> [CatchUpBase] {
        switch mode {
        case .none: return []
        case .inSync, .pages:
            // Counting pages, as the clean stop's seal (PrimaryNode+Stop): Ahead, what the
            // peer held when the node went Ahead; catching up, what it holds of this session.
            if mode == .pages && isAhead { return catchUpBases }
            return SessionBasis.basesAfterLosingPeer(
                session: session, peerDurableEpoch: primary.peerDurableEpoch, previous: catchUpBases)
        }
    }

    /// Bits were set that no write's extent covers: the whole bitmap must be written before
    /// a transaction counts pages again.
    mutating func activityLogBitsWithoutWrite() {
        gate.bitsWithoutWrite &+= 1
    }

    /// A catch-up's tracked bitmap became the node's: bits set without a write, which the pages
    /// must hold before a transaction counts them — unless the driver wrote them before the
    /// session's start transaction, which counts them already (`trackedPagesDurable`).
    mutating func activityLogTrackedBitmapTaken() {
        activityLogBitsWithoutWrite()
        if config.activityLog?.trackedPagesDurable == true { gate.pagesCoverThrough = gate.bitsWithoutWrite }
    }

    /// Admission of a write to `offset`+`length`: false when it must wait (no extent can be
    /// taken now; retried after the next event).
    mutating func activityLogAdmits(_ offset: UInt64, _ length: UInt64) -> Bool {
        gate.pendingTransaction = 0
        guard activityLog != nil else { return true }
        switch activityLog!.noteWrite(offsetBytes: offset, lengthBytes: length) {
        case .proceed:
            break
        case .awaitTransaction(let transaction):
            gate.pendingTransaction = transaction
        case .retryLater:
            if !gate.blocked { gate.blockedTotal &+= 1 }
            gate.blocked = true
            return false
        }
        gate.blocked = false
        return true
    }

    /// The stream asks for `write`'s local write: true when it must wait for a transaction
    /// (the payload is kept, the write held). Records the write's extents until its release.
    mutating func activityLogHolds(_ write: LocalWrite) -> Bool {
        guard activityLog != nil, write.source != .copyChunk else { return false }
        if gate.spanOffsets.isEmpty {
            gate.spanOffsets = Array(repeating: 0, count: config.primary.writesInFlightMax)
            gate.spanLengths = Array(repeating: 0, count: config.primary.writesInFlightMax)
            gate.heldWrites.reserveCapacity(config.primary.writesInFlightMax)
        }
        let slot = Int(write.sequence % UInt64(config.primary.writesInFlightMax))
        precondition(gate.spanLengths[slot] == 0, "write \(write.sequence) reuses a slot still referenced")
        gate.spanOffsets[slot] = write.offsetBytes
        gate.spanLengths[slot] = write.lengthBytes
        let transaction = gate.pendingTransaction
        gate.pendingTransaction = 0
        guard transaction > activityLog!.lastDurableTransaction else { return false }
        gate.heldWrites.append((write.sequence, transaction))
        gate.heldWritesTotal &+= 1
        gate.sendLevel = max(gate.sendLevel, transaction)
        return true
    }

    /// A message of the stream: sent now, or held in order behind a held write.
    mutating func activityLogSend(_ message: PrimaryMessage, into actions: inout [PrimaryNodeAction]) {
        guard let log = activityLog else { return actions.append(.send(message)) }
        guard !gate.failed else { return actions.append(.send(message)) }
        guard !gate.heldSends.isEmpty || gate.sendLevel > log.lastDurableTransaction else {
            return actions.append(.send(message))
        }
        gate.heldSends.append((gate.sendLevel, message))
    }

    /// The link is gone: held messages were for it (the stream re-sends on the next one).
    mutating func activityLogDropHeldSends() {
        gate.heldSends.removeAll(keepingCapacity: true)
    }

    /// The stream released every write through `through` (from `from`): their extents may
    /// leave the set.
    mutating func activityLogReleased(from: WriteSequence, through: WriteSequence) {
        guard activityLog != nil, !gate.spanLengths.isEmpty, from <= through else { return }
        var sequence = from
        while sequence <= through {
            let slot = Int(sequence % UInt64(config.primary.writesInFlightMax))
            if gate.spanLengths[slot] != 0 {
                activityLog!.writeCompleted(offsetBytes: gate.spanOffsets[slot], lengthBytes: UInt64(gate.spanLengths[slot]))
                gate.spanLengths[slot] = 0
            }
            sequence += 1
        }
    }

    /// The local write of `sequence` is done (testing fault only: its reference goes now).
    mutating func activityLogLocalDone(_ sequence: WriteSequence) {
        guard config.activityLog?.testingFault == .releasesAtLocalCompletion, !gate.spanLengths.isEmpty else { return }
        activityLogReleased(from: sequence, through: sequence)
    }

    /// The driver wrote transaction `transaction` (errno 0) or failed to.
    mutating func activityLogWritten(
        _ transaction: UInt64, errno: Int32, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        guard activityLog != nil else { preconditionFailure("an activity-log result without a log") }
        guard errno == 0 else { return activityLogFailed("activity-log write", errno, nowNs: nowNs, into: &actions) }
        activityLog!.transactionDurable(transaction)
        let durable = activityLog!.lastDurableTransaction
        guard durable >= transaction else { return }  // an older one is still being written
        var kept = 0
        for index in gate.heldWrites.indices {
            let write = gate.heldWrites[index]
            if write.transaction <= durable {
                actions.append(.issueLocalWrite(write.sequence))
            } else {
                gate.heldWrites[kept] = write
                kept += 1
            }
        }
        gate.heldWrites.removeLast(gate.heldWrites.count - kept)
        var released = 0
        while released < gate.heldSends.count && gate.heldSends[released].transaction <= durable {
            actions.append(.send(gate.heldSends[released].message))
            released += 1
        }
        gate.heldSends.removeFirst(released)
    }

    /// A metadata write of the log failed: the disk failed, nothing waits for the log any more.
    /// A held write fails as a local write that failed would — not written here, still sent
    /// (in order, held sends first) and answered EIO once the stream is done with it
    /// (docs/replication.md, *Disk failures*). No log is kept from here on.
    mutating func activityLogFailed(_ operation: String, _ errno: Int32, nowNs: UInt64,
                                    into actions: inout [PrimaryNodeAction]) {
        guard !gate.failed else { return }
        failDisk(operation, errno, into: &actions)
        gate.failed = true
        for held in gate.heldSends { actions.append(.send(held.message)) }
        gate.heldSends.removeAll()
        let held = gate.heldWrites
        gate.heldWrites.removeAll()
        for write in held { localWriteDone(write.sequence, errno: PrimaryErrno.eio, nowNs: nowNs, into: &actions) }
    }

    /// The end of every event: form the next transaction if one is due and none is in flight.
    mutating func activityLogEndTurn(into actions: inout [PrimaryNodeAction]) {
        guard activityLog != nil, !gate.failed, !stopped else { return }
        let mode = activityLogMode
        if mode == .inSync {
            // No bit is set and no copy is due: what was set without a write is gone.
            gate.wholeVolumeMarked = false
            gate.pagesCoverThrough = gate.bitsWithoutWrite
        }
        // The mode changed (a copy ends; Ahead or a copy begins): the ring says so at once,
        // so that a crash restart never believes bases of a state the node has left.
        let changed = gate.formedMode != mode
            || (mode == .pages && (gate.formedSession != session || gate.formedAhead != isAhead))
        if enabled && changed && activityLog!.transactionsInFlight == 0 {
            activityLog!.requestTransaction()
        }
        activityLogPersistPages(mode, into: &actions)
        checkpointCopyPages(mode, into: &actions)
        guard let number = activityLog!.endTurn() else { return }
        let bases = activityLogBases(mode)
        gate.formedMode = bases.isEmpty ? .none : mode
        gate.formedSession = session
        gate.formedAhead = isAhead
        actions.append(.writeActivityLog(transaction: number, extents: Array(activityLog!.transactionExtents),
                                         bases: bases, flushVolumeFirst: activityLog!.transactionNeedsVolumeFlush,
                                         bitmapPagesCount: mode == .pages && !bases.isEmpty))
    }
}
