// Resource's split-brain resync by the union of both bitmaps (issue 14 §2, docs/replication.md
// *Split brain*). Every primary that parted from its peer (its first write the peer will not
// get, or a forced promotion) tracks the regions it writes from then on (`parted`), beside the
// byte count the split-brain report carries; the old primary's own tracked bitmap (the writes
// its peer had not confirmed when the link went) is folded in once its replicator stopped.
// The set is kept across restarts (PartedBitmapFile): written at stops, and kept covering
// every write made with no replicator (StandAlone in a split brain, or disabled) before it goes
// to the volume, batched per loop turn, so a crash before the resolve keeps it. At a resolve (operator or policy):
// - the loser keeps its set (the file), takes C := 0 with B the parting generation, and becomes
//   secondary; to a survivor's Hello that asks (`split-brain-resync`, same B) it sends the set
//   as BitmapChunk / BitmapDone before its ReplicaHello, else it refuses `unrelated-data`;
// - the survivor starts a session that the loser takes as a full copy (Inconsistent until
//   SyncComplete) but whose copy covers only its own set, and adds the loser's when it comes.
// Where the sets cannot cover the divergence (`SplitBrainResync.plan`), a full copy, said in
// the event and in status (`split_brain_resync`). Loop thread only.
import Logging
import TandemControl
import TandemCore
import TandemIO

/// The survivor's resync while it runs (status `split_brain_resync`).
struct SurvivorResync {
    var partingGeneration: UInt64
    /// Its own changes since parting, nil when unknown (`lostReason`).
    var own: DirtyBitmap?
    var lostReason: String
    /// Set once decided: the union, or a full copy and why.
    var plan: SplitBrainResyncPlan?
    var set: SplitBrainResyncSet?
    var bitmapExchangeBytes: UInt64 = 0
    var movedBytesAtStart: UInt64 = 0
    /// The peer is a returned primary (Resource+ReturnedPrimary), not a split brain's loser:
    /// reported under its own names, and its set compared by digest.
    var returnedPrimary = false
    /// A returned primary's regions the union compares (kept in `<name>.returned-compare`
    /// until the resync ends): a resumed resync compares those still owed again.
    var compareSet: DirtyBitmap?
    /// A resumed resync (after a stop or a crash): what it resumed with, and whether it asks
    /// the peer's set again (the stop or crash came before the set did: UnionResume).
    var resumedLeftBytes: UInt64?
    var resumedAfterCrash = false
    var asksPeerSetAgain = false
}

/// Everything this file keeps (one stored property of Resource).
struct SplitBrainResyncState {
    /// Primary (or a split brain's loser): regions written since parting; nil = not tracking,
    /// or lost (`lostReason`).
    var parted: DirtyBitmap?
    var lostReason = ""
    /// The node's tracked bitmap (writes in flight at the link loss) still has to be folded in.
    var needsTracked = false
    /// What the file holds (a superset of `parted`: PartedCover), nil when there is none. A
    /// write it does not cover removes it first, or (with no replicator) extends it first.
    var fileCover: DirtyBitmap?
    var persisted: Bool { fileCover != nil }
    /// The extents the writes held in this turn need (PartedCover.hold), nil when none waits;
    /// written with the file at the turn's end (`recordPendingCover`, scheduled once).
    var coverPending: DirtyBitmap?
    var recordScheduled = false
    /// Since the resource opened: the file's rewrites before writes (status
    /// `parted_file_writes`) and the writes that waited for one (`parted_held_writes`).
    var fileWrites: UInt64 = 0
    var heldWrites: UInt64 = 0
    /// The loser's parting generation while it waits to send its set.
    var victimPartingGeneration: UInt64 = 0
    var survivor: SurvivorResync?
    /// The last resync's report, kept for status after it ended, and the survivor's session
    /// it belongs to (that session's `session_start` is `split-brain-union`).
    var lastReport: [String: JSONValue]?
    var lastSession: UInt64 = 0
    /// The last report is a returned primary's resync (ReturnedPrimaryNames).
    var lastReportReturnedPrimary = false
    /// A survivor's union resync stopped (in order, or by a crash: its last checkpoint and
    /// the activity log's extents): what is left of it (Resource+SplitBrainUnion, kept in
    /// `<name>.union-resync` too), and the export's mutations when it was taken (a write
    /// since is not in it, and the next session then copies the whole volume).
    var resumed: DirtyBitmap?
    var resumedAtMutation: UInt64 = 0
    /// A running union resync's crash checkpoint (Resource+SplitBrainUnion): the progress it
    /// was taken at and what it holds (status `checkpoint_left_bytes`); nil: none is kept.
    var checkpointProgress: CopyProgress?
    var checkpointLeftBytes: UInt64?
    /// The resumed set came from a checkpoint after a crash (with the activity log's extents).
    var resumedAfterCrash = false
    /// The resumed set is this node's side only: the peer's set never came, so it is asked
    /// again (and, for a returned primary's resync, compared when it comes).
    var resumedAsksPeerSet = false
    var resumedReturnedPrimary = false
    /// The resumed resync is a returned primary's: the regions its union compared, read at
    /// open (Resource+ReturnedPrimaryResume).
    var resumedCompareSet: DirtyBitmap?
}

extension Resource {
    var partedBitmapPath: String { PartedBitmapFile.path(stateDir: context.config.stateDir, name: spec.name) }

    private var emptyPartedBitmap: DirtyBitmap {
        DirtyBitmap(volumeSizeBytes: volume.sizeBytes, blockBytes: UInt64(metadata.latest.bitmapBlockBytes))
    }

    // MARK: tracking

    /// Parting: tracking starts afresh (B just became non-zero, or a promotion). `inFlight`:
    /// writes the peer had not confirmed may exist (a link loss), in the node's bitmap.
    func startPartedTracking(inFlight: Bool) {
        splitBrainResync.parted = emptyPartedBitmap
        splitBrainResync.lostReason = ""
        splitBrainResync.needsTracked = inFlight
        removePartedFile()
    }

    /// The peer holds everything again: nothing is parted.
    func endPartedTracking() {
        // Called at every UpToDate: only a set or a file to drop costs anything.
        let holds = splitBrainResync.parted != nil || splitBrainResync.persisted
        splitBrainResync.parted = nil
        splitBrainResync.needsTracked = false
        splitBrainResync.victimPartingGeneration = 0
        if holds { removePartedFile() }
    }

    /// A write the peer will not get, on a primary that parted.
    func notePartedWrite(offsetBytes: UInt64, lengthBytes: UInt64) {
        // On the write path: the superblock's field, not `generations` (which copies the history).
        guard spec.role == .primary, metadata.latest.bitmapGeneration != 0, lengthBytes > 0 else { return }
        if splitBrainResync.persisted { removePartedFile() }
        guard splitBrainResync.parted != nil else {
            if splitBrainResync.lostReason.isEmpty {
                splitBrainResync.lostReason = "the regions written since parting were not recorded (the node restarted without them)"
            }
            return
        }
        _ = splitBrainResync.parted!.setRange(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
    }

    /// A write with no replicator (StandAlone after a split brain, or disabled) on a primary
    /// that parted: no activity log names it after a crash, so the file covers it, durably,
    /// before it goes to the volume (PartedCover: the write's cover units whole, the activity
    /// log's extents on a volume of up to 1,024 of them, coarser above). True when the
    /// write must wait: its extents join the turn's pending set, and one durable rewrite at
    /// the turn's end (`recordPendingCover`) releases every write held in the turn — one file
    /// write per turn that brings new extents, not one per write. A set not known as a whole
    /// (the writes unconfirmed at the link loss not folded in) falls back to removing the file
    /// (a resolve then copies the whole volume, and says why).
    func notePartedWriteAlone(offsetBytes: UInt64, lengthBytes: UInt64) -> Bool {
        guard spec.role == .primary, metadata.latest.bitmapGeneration != 0, lengthBytes > 0 else { return false }
        guard splitBrainResync.parted != nil else {
            notePartedWrite(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
            return false
        }
        _ = splitBrainResync.parted!.setRange(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
        let (known, _) = ownChangesSinceParting()
        guard let known else {
            notePartedWrite(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
            return false
        }
        let extentBytes = PartedCover.unitBytes(volumeSizeBytes: volume.sizeBytes,
                                                extentBytes: UInt64(metadata.latest.alExtentBytes), blockBytes: known.blockBytes)
        guard PartedCover.hold(writeOffsetBytes: offsetBytes, lengthBytes: lengthBytes, cover: splitBrainResync.fileCover,
                               pending: &splitBrainResync.coverPending, geometry: known, extentBytes: extentBytes)
        else { return false }
        splitBrainResync.heldWrites &+= 1
        if !splitBrainResync.recordScheduled {
            splitBrainResync.recordScheduled = true
            context.loop.atTurnEnd(TurnEndAction { [weak self] in self?.recordPendingCover() })
        }
        return true
    }

    /// The turn's end: the file is rewritten once, durably, with the set it must hold for the
    /// writes held in the turn (PartedCover.record), and then they go to the volume. A file
    /// that cannot be written is removed (the set is lost: a resolve copies the whole volume,
    /// and says why); the writes go on either way, as they would with no file at all.
    func recordPendingCover() {
        splitBrainResync.recordScheduled = false
        defer { backend.releaseRecordHeld() }
        guard let pending = splitBrainResync.coverPending else { return }
        splitBrainResync.coverPending = nil
        let (known, _) = ownChangesSinceParting()
        guard let known, spec.role == .primary, metadata.latest.bitmapGeneration != 0 else {
            // The set was lost (or tracking ended) since the writes were held: no file may
            // claim to cover them.
            if splitBrainResync.persisted { removePartedFile() }
            return
        }
        let cover = PartedCover.record(cover: splitBrainResync.fileCover, known: known, pending: pending)
        do throws(ResourceStoreError) {
            try PartedBitmapFile.write(PartedBitmap(partingGeneration: metadata.latest.bitmapGeneration, bitmap: cover),
                                      to: partedBitmapPath)
            splitBrainResync.fileCover = cover
            splitBrainResync.fileWrites &+= 1
        } catch {
            logger.warning("the bitmap since parting could not be extended before a write: a resolve copies the whole volume",
                           metadata: ["error": "\(error)"])
            removePartedFile()
            splitBrainResync.parted = nil
            splitBrainResync.lostReason = "its file could not be extended before a write (\(error))"
        }
    }

    /// This node's changes since parting as a whole, or nil (and why) when not known.
    func ownChangesSinceParting() -> (bitmap: DirtyBitmap?, lostReason: String) {
        foldTrackedIntoParted()
        guard let parted = splitBrainResync.parted else {
            return (nil, splitBrainResync.lostReason.isEmpty ? "no bitmap since parting is kept" : splitBrainResync.lostReason)
        }
        guard !splitBrainResync.needsTracked else {
            return (nil, "the writes the peer had not confirmed when the link went are not known")
        }
        return (parted, "")
    }

    /// The old primary's replicator stopped: its bitmap (writes unconfirmed at the link loss
    /// and every one since) joins the parted set.
    func foldTrackedIntoParted() {
        guard splitBrainResync.needsTracked, splitBrainResync.parted != nil, let tracked = trackedSinceStop,
            !tracked.bases.isEmpty
        else { return }
        splitBrainResync.parted = SplitBrainResync.union(survivor: splitBrainResync.parted!, victim: tracked.bitmap).bitmap
        splitBrainResync.needsTracked = false
    }

    // MARK: persistence

    /// Writes the set to its file (a stop, a detection, a discard) when it is complete, and
    /// what is left of a survivor's stopped union resync (Resource+SplitBrainUnion).
    func persistPartedBitmap() {
        persistUnionLeft()
        let (bitmap, _) = ownChangesSinceParting()
        let generation = spec.role == .primary ? generations.bitmap : splitBrainResync.victimPartingGeneration
        guard let bitmap, generation != 0 else { return }
        do throws(ResourceStoreError) {
            try PartedBitmapFile.write(PartedBitmap(partingGeneration: generation, bitmap: bitmap), to: partedBitmapPath)
            splitBrainResync.fileCover = bitmap
        } catch {
            logger.warning("the bitmap since parting could not be kept: a restart resolves with a full copy",
                           metadata: ["error": "\(error)"])
        }
    }

    func removePartedFile() {
        splitBrainResync.fileCover = nil
        do throws(ResourceStoreError) { try PartedBitmapFile.remove(partedBitmapPath) } catch {
            // The file would then claim less than this node wrote: not a set to trust.
            logger.error("removing the bitmap since parting failed", metadata: ["error": "\(error)"])
            splitBrainResync.parted = nil
            splitBrainResync.lostReason = "its file could not be removed before a write (\(error))"
        }
    }

    /// At open: the set kept by the last run, if it still speaks for this node's parting.
    func loadPartedBitmapAtOpen() {
        let loaded: PartedBitmap?
        do throws(ResourceStoreError) {
            loaded = try PartedBitmapFile.load(from: partedBitmapPath, volumeSizeBytes: volume.sizeBytes,
                                              localBlockBytes: UInt64(metadata.latest.bitmapBlockBytes))
        } catch {
            logger.error("the bitmap since parting cannot be proven: a resolve copies the whole volume",
                         metadata: ["error": "\(error)"])
            splitBrainResync.lostReason = "its file cannot be proven (\(error))"
            return
        }
        let held = generations
        guard let loaded else {
            if held.bitmap != 0 && spec.role == .primary {
                splitBrainResync.lostReason = "the node stopped without recording it (a crash, or an older build)"
            }
            return
        }
        let partingHere = spec.role == .primary ? held.bitmap : (held.current == 0 ? held.bitmap : 0)
        guard loaded.partingGeneration == partingHere, partingHere != 0 else {
            removePartedFile()
            return
        }
        splitBrainResync.parted = loaded.bitmap
        splitBrainResync.fileCover = loaded.bitmap
        if spec.role == .secondary { splitBrainResync.victimPartingGeneration = loaded.partingGeneration }
    }

    /// At open: the parted set and what is left of a survivor's union resync.
    func loadSplitBrainFilesAtOpen() {
        loadPartedBitmapAtOpen()
        loadUnionLeftAtOpen()
    }
}
