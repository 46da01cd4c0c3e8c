// PrimaryNode's split-brain resync (issue 14 §2, docs/replication.md *Split brain*): the
// survivor's session is a full copy as far as the victim is concerned (it accepts it whatever
// its record says and is Inconsistent until SyncComplete), but the copy walks only the union
// of both sides' changes since they parted instead of every block. The driver restricts the
// copy to the survivor's own changes when the session is made, and adds the victim's bitmap
// when it arrives (BitmapChunk / BitmapDone, before the victim's ReplicaHello, so before the
// copy can start: the copy waits for a ready peer). If the victim cannot send one, the driver
// widens the copy to every block before the peer is ready. The activity log keeps treating
// the session as a full copy (its transactions name no bases); what survives a crash is the
// driver's checkpoint of `copyLeftWithHeld` (the union's file) together with the log's extents.

extension PrimaryNode {
    /// Whether the copy may still be restricted or widened: the peer is not ready (its
    /// ReplicaHello not taken), so no chunk of this copy was read yet.
    public var copyNotStarted: Bool { !isPeerReady && copyReads.isEmpty && copiedBytes == 0 }

    /// At the session's start (a `fullCopy` basis, every block marked): copy only `changes`
    /// (the survivor's changes since parting, any geometry) until the victim's bitmap comes.
    public mutating func restrictCopy(to changes: DirtyBitmap) {
        precondition(basis == .fullCopy && copyNotStarted, "a split-brain copy is restricted before it starts")
        let empty = DirtyBitmap(volumeSizeBytes: bitmap.volumeSizeBytes, blockBytes: bitmap.blockBytes)
        bitmap = SplitBrainResync.union(survivor: empty, victim: changes).bitmap
        guaranteeOneBlock()
        startCopy()
    }

    /// The victim's bitmap arrived: the copy covers the union. Returns it (status: what each
    /// side changed and the union). Nothing is sent yet, so the copy starts over at block 0.
    /// `compareVictim`: the victim is a returned primary (no split brain): the regions of its
    /// set outside `survivorChanges` are compared by digest before the copy may read them
    /// (ReturnedPrimaryCompare), and only those that differ are copied.
    public mutating func unitePeerBitmap(_ victim: DirtyBitmap, survivorChanges: DirtyBitmap,
                                         compareVictim: Bool = false) -> SplitBrainResyncSet {
        let set = SplitBrainResync.union(survivor: bitmap, victim: victim)
        bitmap = set.bitmap
        startCopy()
        var compared: [ChecksumRegion] = []
        if compareVictim, checksumResync == nil {
            compared = ReturnedPrimaryCompare.plan(returned: victim, promotedChanges: survivorChanges,
                                                   geometry: bitmap, regionBytes: returnedCompareRegionBytes)
            startChecksumResync(compared, returnedPrimary: true)
        }
        return SplitBrainResyncSet(bitmap: set.bitmap, survivorChangedBytes: survivorChanges.outOfSyncBytes,
                                   victimChangedBytes: victim.outOfSyncBytes, comparedRegions: compared)
    }

    /// A returned primary's resync resumed (after a link's session ended, a stop or a crash of
    /// this node; `restrictCopy` first): the regions of `compareSet` (the regions the union
    /// compared, ReturnedPrimaryCompare) that the copy still holds whole are compared again,
    /// not copied whole. One the copy read in part since, or one that differed and was copied,
    /// is no longer whole in the copy and is left to it. Comparing is safe whatever the copy
    /// holds now: agreeing digests mean the peer holds the bytes.
    public mutating func resumeReturnedPrimaryCompare(_ compareSet: DirtyBitmap) {
        precondition(basis == .fullCopy && copyNotStarted, "a returned primary's compare resumes before its copy starts")
        guard checksumResync == nil else { return }
        let empty = DirtyBitmap(volumeSizeBytes: bitmap.volumeSizeBytes, blockBytes: bitmap.blockBytes)
        startChecksumResync(ReturnedPrimaryCompare.plan(returned: compareSet, promotedChanges: empty, geometry: bitmap,
                                                        regionBytes: returnedCompareRegionBytes),
                            returnedPrimary: true)
    }

    private var returnedCompareRegionBytes: UInt64 { max(ChecksumResync.regionBytesDefault, bitmap.blockBytes) }

    /// What the peer may still lack of this copy now: the blocks the copy has not admitted,
    /// and those of every write and chunk the peer has not confirmed durable (a chunk's bits
    /// are cleared when it is admitted, not when the peer holds it). A crash later adds only
    /// writes admitted after this, whose extents the activity log names. Copies the bitmap.
    public var copyLeftWithHeld: DirtyBitmap {
        var left = bitmap
        for run in activityLogHeldRuns(nil) { _ = left.setBlocks(run) }
        return left
    }

    /// The bitmaps cannot cover the divergence: copy every block, as before this protocol.
    public mutating func widenCopyToEveryBlock() {
        checksumResync = nil  // asked only of a ready peer: nothing is in flight yet
        markWholeVolume()
    }

    /// A copy ends once its last chunk is released, so a copy needs one: a union with no
    /// block (both sides rewrote only what they had) still sends block 0.
    private mutating func guaranteeOneBlock() {
        if bitmap.outOfSyncBytes == 0 { _ = bitmap.setBlocks(BlockRun(first: 0, count: 1)) }
    }
}
