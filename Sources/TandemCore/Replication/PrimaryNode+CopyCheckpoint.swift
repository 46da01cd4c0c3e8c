// PrimaryNode's copy checkpoints (issue 13 §4: a restart never copies the whole volume where
// its progress is provable). While a copy runs — a full copy or a catch-up — and the activity
// log counts the bitmap pages (PrimaryNode+ActivityLog: a full copy writes every page once,
// all set, before a transaction counts them), a crash restart catches up the durable pages ∪
// the log's extents from the transaction's bases. The pages say what the copy has done only
// once they are written again, so the pages of the chunks the peer confirmed durable are
// written, their bits clear, each time `copyCheckpointBytes` more copy bytes were confirmed
// since the last such write. A page is encoded from the node's bitmap with the runs of every
// write the peer has not confirmed (`activityLogHeldRuns`): a chunk read and not yet confirmed
// (its bits are cleared when it is admitted) stays set on disk, so on-disk pages ∪ the log's
// extents still cover every block the peer may lack; its page is written again at the next
// checkpoint. A crash therefore copies again at most the bytes confirmed since the last
// checkpoint plus the chunks in flight.
//
// The peer proves its half. The restart's catch-up names the interrupted copy's session and
// the epoch through which the peer had confirmed it (SessionBasis.basesAfterLosingPeer); a
// secondary takes it only when its own record holds that session durably through that epoch
// (CatchUpBase.isHeld, synced or not), and stays Inconsistent until the resumed copy's
// SyncComplete: a copy over an unsynced record is never staged (SecondaryNode.willStage). Any
// other record refuses (`unrelated-data`) and the primary copies the whole volume, with the
// peer's reason (PrimaryNode+Link, `fullCopyStarted`).

/// A copy chunk admitted and not yet released: it holds a chunk buffer, and counts toward the
/// next checkpoint once the peer confirmed it durable.
struct CopyChunkHeld: Sendable {
    var sequence: WriteSequence
    var lengthBytes: UInt32
}

extension PrimaryNode {
    /// A copy chunk of `run` was admitted: its pages are written again at a later checkpoint.
    mutating func noteCopyChunkForCheckpoint(_ run: BlockRun) {
        guard activityLog != nil else { return }
        let firstPage = Int(run.first / DirtyBitmap.bitsPerPage)
        let lastPage = Int((run.end - 1) / DirtyBitmap.bitsPerPage)
        for page in firstPage...lastPage where !gate.copyCheckpoint.pages.contains(page) {
            gate.copyCheckpoint.pages.append(page)
        }
    }

    /// The stream released every write through `released`: the copy chunks among them are
    /// durable on the peer (or, going Ahead, marked in the bitmap again).
    mutating func releaseCopyChunks(through released: WriteSequence) {
        while let oldest = copyChunksHeld.first, oldest.sequence <= released {
            gate.copyCheckpoint.bytes += UInt64(copyChunksHeld.removeFirst().lengthBytes)
        }
    }

    /// The end of every event, while the pages count: once enough copy bytes were confirmed,
    /// their pages are written (one checkpoint write at a time). A page that still holds a
    /// chunk the peer has not confirmed stays due for the next one.
    mutating func checkpointCopyPages(_ mode: ActivityLogMode, into actions: inout [PrimaryNodeAction]) {
        guard mode == .pages, enabled, !gate.copyCheckpoint.pages.isEmpty,
            gate.copyCheckpoint.bytes >= config.copyCheckpointBytes, !pageWriteInFlight(gate.copyCheckpoint.ticket)
        else { return }
        let pages = gate.copyCheckpoint.pages.sorted()
        let held = config.activityLog?.testingFault == .copyCheckpointClearsUnconfirmedChunks ? [] : activityLogHeldRuns(pages)
        gate.copyCheckpoint.pages = pages.filter { !activityLogHeldRuns([$0]).isEmpty }
        gate.copyCheckpoint.bytes = 0
        gate.copyCheckpoint.ticket = requestPageWrite(pages, alsoSet: held, into: &actions)
    }
}
