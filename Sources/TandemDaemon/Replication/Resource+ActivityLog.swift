// Resource's activity log between primary sessions (docs/replication.md, *Stops and
// restarts*; docs/metadata.md, *Activity-log transaction*). The write path's decisions are
// the node's (PrimaryNode+ActivityLog); here the metadata file's ring is read at open and
// opened for each session:
//
// - A primary session's start writes a transaction naming no extent, with the bases the
//   session starts from (those of a clean restart or of an in-sync start; none for a copy),
//   before the start record that sets `crashed-primary`. So the ring never speaks for writes
//   it did not see: writes while disabled come between a stop and that transaction.
// - `crashed-primary` is set with the start record and cleared with the stop record (and at
//   a role change). Found set at open — the primary did not stop — with no writes while
//   disabled since, the ring's newest transaction, proven (ActivityLogRing), gives what the
//   next session catches up: its extents, from its bases (reason `crash-recovery`), and when
//   it says the bitmap pages count (the primary was Ahead or catching up) the set bits of the
//   durable pages too. A ring that proves nothing, or a page that cannot be proven, is
//   published (`activity-log-unreadable`) and the volume is copied.
// - The node's page writes (`.persistBitmapPages`) go through the metadata file, durable
//   before they are answered.
// - A session's start first writes again the ring slots a crash left unfinished before its
//   newest transaction (MetadataFile.settleActivityLog): with transactions in flight together
//   the disk may finish a newer one first, and the ring's proof allows that gap only beside
//   the newest.
import Glibc
import TandemCore
import TandemIO

extension Resource {
    /// `al_extents` of this resource (0: no log).
    var activityLogExtents: Int { Int(spec.alExtents ?? metadata.latest.alExtentsMax) }

    /// A primary that did not record its stop: catch up from the ring's newest transaction.
    func loadActivityLogAtOpen() {
        let node = metadata.latest
        guard spec.role == .primary, node.flags.contains(.crashedPrimary), !node.writtenWhileDisabled,
            !node.peerLacksWrites, !node.bitmapSealed, node.record.cleanStop == 0
        else {
            // A stop's seal keeps the regions of a compare it ended early set: the next start
            // resumes that compare from its record (Resource.compareRegionsForStart).
            if !(spec.role == .primary && node.bitmapSealed) { removeCrashCompareRecord() }
            return
        }
        // A compare this start does not resume is over: its record goes (kept below otherwise).
        defer { if trackedSinceStop?.checksumRegions.isEmpty ?? true { removeCrashCompareRecord() } }
        let proven: Result<ActivityLogTransaction?, ActivityLogRing.ProofError>
        do throws(IOError) { proven = try metadata.readActivityLog() } catch {
            return activityLogUnreadable("\(error)")
        }
        switch proven {
        case .failure(let error):
            activityLogUnreadable("metadata \(metadata.path): \(error)")
        case .success(nil):
            logger.notice("the primary did not stop cleanly and its activity log is empty: the next session copies the volume")
        case .success(let transaction?) where transaction.bases.isEmpty:
            logger.notice("the primary did not stop cleanly before its activity log proved what its peer holds (a copy not yet on the pages, a stop, a failed disk): the next session copies the volume",
                          metadata: ["transaction": "\(transaction.transaction)"])
        case .success(let transaction?):
            var bitmap = DirtyBitmap(volumeSizeBytes: volume.sizeBytes, blockBytes: UInt64(node.bitmapBlockBytes))
            if transaction.bitmapPagesCount {
                do throws(MetadataBitmapError) { bitmap = try metadata.loadUnsealedBitmap() } catch {
                    return activityLogUnreadable("\(error)")
                }
                guard bitmap.volumeSizeBytes == volume.sizeBytes else {
                    return activityLogUnreadable("metadata \(metadata.path): the bitmap describes another volume size")
                }
            }
            let extents = ActivityLog.dirtyRegions(afterCrash: transaction.extents, extentBytes: UInt64(node.alExtentBytes),
                                                   volumeSizeBytes: volume.sizeBytes)
            // The extents' regions the durable pages do not mark are compared by digest first,
            // and so are those of a compare this crash interrupted that the pages still mark.
            let regionBytes = max(ChecksumResync.regionBytesDefault, bitmap.blockBytes)
            let resumed = loadCrashCompareRecord(newest: transaction.transaction, geometry: bitmap)
            var checksumRegions = ChecksumResync.plan(extents: extents, dirty: bitmap, regionBytes: regionBytes,
                                                      resuming: resumed)
            var resumedBytes: UInt64 = 0
            if resumed != nil {
                let fresh = ChecksumResync.plan(extents: extents, dirty: bitmap, regionBytes: regionBytes)
                resumedBytes = ChecksumResync.bytes(of: checksumRegions) - ChecksumResync.bytes(of: fresh)
            }
            // What the killed process wrote may still be only in the page cache or the device's
            // cache: a region found the same is cleared without a later local flush, so make it
            // durable first, or a power loss would take from this copy what the peer keeps.
            if !checksumRegions.isEmpty, let code = flushVolumeForCompare() {
                checksumRegions = []
                failDiskAtCompareFlush(code)
            }
            for region in extents {
                _ = bitmap.setRange(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes)
            }
            trackedSinceStop = TrackedBitmap(bitmap: bitmap, bases: transaction.bases, fromCrash: true,
                                             checksumRegions: checksumRegions)
            if !checksumRegions.isEmpty {
                keepCrashCompareRecord(checksumRegions, transaction: transaction.transaction, geometry: bitmap)
            }
            publishActivityLogRecovered(transaction, bitmap: bitmap, checksumRegions: checksumRegions, resumedBytes: resumedBytes)
        }
    }

    private func publishActivityLogRecovered(_ transaction: ActivityLogTransaction, bitmap: DirtyBitmap,
                                             checksumRegions: [ChecksumRegion], resumedBytes: UInt64) {
        let checksumBytes = ChecksumResync.bytes(of: checksumRegions)
        let message = transaction.extents.isEmpty
            ? "the primary did not stop cleanly: its activity log names no extent; the next session catches up what its bitmap marks"
            : "the primary did not stop cleanly: the next session catches up the activity log's extents"
        logger.notice("\(message)",
                      metadata: ["transaction": "\(transaction.transaction)", "extents": "\(transaction.extents.count)",
                                 "bitmap_pages": "\(transaction.bitmapPagesCount)",
                                 "out_of_sync_bytes": "\(bitmap.outOfSyncBytes)", "checksum_bytes": "\(checksumBytes)",
                                 "checksum_resumed_bytes": "\(resumedBytes)"])
        context.events.publish(resource: spec.name, "activity-log-recovered", [
            "transaction": .int(Int64(clamping: transaction.transaction)),
            "extents": .int(Int64(transaction.extents.count)),
            "bitmap_pages": .bool(transaction.bitmapPagesCount),
            "out_of_sync_bytes": .int(Int64(clamping: bitmap.outOfSyncBytes)),
            "checksum_bytes": .int(Int64(clamping: checksumBytes)),
            "checksum_resumed_bytes": .int(Int64(clamping: resumedBytes)),
        ])
    }

    private func activityLogUnreadable(_ message: String) {
        logger.error("the activity log proves nothing: the next session copies the volume", metadata: ["error": "\(message)"])
        context.events.publish(resource: spec.name, "activity-log-unreadable", ["message": .string(message)])
    }

    /// Before a primary session's start record: the ring's transaction for the session's start
    /// (no extent; the bases `basis` starts from when it needs no copy), durable. A catch-up's
    /// `tracked` bitmap is written to the bitmap pages first and the transaction counts them,
    /// with the catch-up's bases: a crash before the node's own first transaction then catches
    /// up the same regions again (and resumes the compare's record) — with no bases it would
    /// copy the whole volume. Returns the node's log settings (nil: no log). Throws when the
    /// ring cannot be written.
    func openActivityLog(for basis: SessionBasis, tracked: DirtyBitmap?,
                         writeBytesMax: UInt64) throws(IOError) -> ActivityLogSettings? {
        let extentBytes = UInt64(metadata.latest.alExtentBytes)
        var extents = activityLogExtents
        if extents > 0 && ActivityLogSettings.extentsPerWrite(writeBytesMax: writeBytesMax, extentBytes: extentBytes) > extents {
            logger.warning("al_extents is too small for max_request_bytes: no activity log (a crash restart copies the volume)",
                           metadata: ["al_extents": "\(extents)", "max_request_bytes": "\(writeBytesMax)"])
            extents = 0
        }
        if case .failure(let error) = try metadata.readActivityLog() {
            logger.warning("the activity log is reset", metadata: ["error": "\(error)"])
            try metadata.resetActivityLog()
        } else {
            let settled = try metadata.settleActivityLog()
            if !settled.isEmpty {
                logger.notice("activity-log slots a crash left unfinished are written again before the session's first transaction",
                            metadata: ["transactions": "\(settled)"])
            }
        }
        var bases: [CatchUpBase] = []
        var pagesCount = false
        switch basis {
        case .continues, .assumeInSync: bases = extents > 0 ? basis.startingBases : []
        case .catchUp:
            pagesCount = extents > 0 && writeTrackedPages(tracked)
            if pagesCount { bases = basis.startingBases }
        case .fullCopy: break
        }
        let number = metadata.activityLogNext
        if extents > 0 || metadata.activityLogNewest != 0 {
            try metadata.writeActivityLog(ActivityLogTransaction(
                transaction: number, resourceUUID: metadata.latest.resourceUUID, extents: [], bases: bases,
                bitmapPagesCount: pagesCount && !bases.isEmpty))
        }
        guard extents > 0 else { return nil }
        var settings = ActivityLogSettings(extents: extents, extentBytes: extentBytes, writeBytesMax: writeBytesMax,
                                           lastTransaction: number)
        settings.trackedPagesDurable = pagesCount && !bases.isEmpty
        settings.transactionsInFlightMax = activityLogTransactionsInFlight()
        return settings
    }

    /// Test and benchmark only: `TANDEM_TEST_AL_IN_FLIGHT` = 1 ... the default sets how many
    /// transactions a primary writes at once (the same build's A/B in docs/benchmarks.md).
    /// Unset in production; another value is ignored with a warning.
    static let inFlightVariable = "TANDEM_TEST_AL_IN_FLIGHT"

    /// The transactions the node may have in flight: the default, fewer on a small ring.
    private func activityLogTransactionsInFlight() -> Int {
        let ringSlots = Int(metadata.latest.geometry.alSlots)
        let limit = ActivityLogSettings.transactionsInFlight(ringSlots: ringSlots)
        guard let value = getenv(Self.inFlightVariable).map({ String(cString: $0) }) else { return limit }
        guard let asked = Int(value), asked >= 1, asked <= limit else {
            logger.warning("\(Self.inFlightVariable) ignored: 1 ... \(limit) on this ring", metadata: ["value": "\(value)"])
            return limit
        }
        return asked
    }

    /// A catch-up's tracked bitmap on the bitmap pages, durable: every page with a set bit (a
    /// page's stale set bits elsewhere only add regions). A diskless node's pages hold what
    /// this disk lacks (Resource+DisklessRegions): not written. False: not written.
    private func writeTrackedPages(_ tracked: DirtyBitmap?) -> Bool {
        guard let tracked, !metadata.latest.flags.contains(.localLacksWrites) else { return false }
        return persistActivityLogPages(tracked, pages: tracked.pagesWithSetBits, alsoSet: []) == 0
    }

    /// The node asks for transaction `number`: `done` runs with 0 once it is durable (written
    /// through the ring), or with the errno.
    func writeActivityLog(_ number: UInt64, extents: [UInt32], bases: [CatchUpBase], bitmapPagesCount: Bool,
                          done: @escaping (Int32) -> Void) {
        let transaction = ActivityLogTransaction(
            transaction: number, resourceUUID: metadata.latest.resourceUUID, extents: extents, bases: bases,
            bitmapPagesCount: bitmapPagesCount)
        metadata.writeActivityLogAsync(transaction) { [weak self] code in
            if code != 0, let self {
                self.logger.error("writing the activity log failed", metadata: [
                    "metadata": "\(self.metadata.path)", "error": "\(String(cString: strerror(code))) (errno \(code))",
                ])
            }
            done(code)
        }
    }

    /// The node asks for bitmap pages (nil: every page): written and durable on return (0),
    /// or the errno.
    func persistActivityLogPages(_ bitmap: DirtyBitmap, pages: [Int]?, alsoSet: [BlockRun]) -> Int32 {
        guard BitmapAreaCodec.fits(bitmap, metadata.latest) else {
            logger.error("the node's bitmap does not fit the metadata file", metadata: ["metadata": "\(metadata.path)"])
            return EIO
        }
        do throws(IOError) {
            try metadata.writeBitmapPages(bitmap, pages: pages, alsoSet: alsoSet)
            return 0
        } catch {
            logger.error("writing bitmap pages failed", metadata: ["metadata": "\(metadata.path)", "error": "\(error)"])
            return error.errno
        }
    }
}
