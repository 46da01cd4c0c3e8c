// PrimaryNode's copy: the bitmap's dirty runs go to the peer in chunks (every block for a full
// copy, the tracked regions for a catch-up), as ordinary writes of the Data stream, while
// application writes go on. Up to `copyBuffersMax` chunks are read at once (the driver keeps
// a buffer per chunk until it is released), each under a region lock: a run is read only when
// no local write overlapping it is in flight (so the chunk holds the newest data of its region
// and is sequenced after every write that touched it), and an application write overlapping a
// run being read waits until the chunk is admitted. The next run waiting for a busy region
// makes writes to that region wait too, so a hot region cannot starve the copy. Reads end and
// are admitted in any order (their runs do not overlap). A chunk's bits are cleared when it is
// admitted (if the node goes Ahead before the peer confirmed it, it is marked again with every
// held write; a read that ends while Ahead, or after the copy started over, is discarded and
// its bits stay set). The copy ends when the last chunk's write is released (durable on the
// peer): then SyncComplete. A link lost mid-copy does not restart it: the chunks already
// admitted are re-sent with every other unconfirmed write and the cursor goes on. A peer that
// refuses to continue the session (`unrelated-data`) restarts it from 0 as a full copy. After
// a crash, the regions of the activity log that PrimaryNode+Checksum still has to compare are
// skipped: the compare decides whether they are copied at all.

/// A copy read in flight: its run and the copy it belongs to.
struct CopyRead: Sendable {
    var run: BlockRun
    var generation: UInt64
}

extension PrimaryNode {
    /// Every block is dirty: the copy moves the whole volume.
    mutating func markWholeVolume() {
        markEveryBlock()
        startCopy()
    }

    /// Sets every bit (the peer may lack any block).
    mutating func markEveryBlock() {
        _ = bitmap.setBlocks(BlockRun(first: 0, count: bitmap.blockCount))
        gate.wholeVolumeMarked = true
        activityLogBitsWithoutWrite()  // every page is written, all set, before pages count
    }

    /// A catch-up of nothing (PrimaryStart: an empty tracked bitmap with bases, as a crash right
    /// after a catch-up ended leaves) still copies one block, so that it ends as every catch-up
    /// does (Data, then SyncComplete naming it): a SyncComplete before any Data of a session is
    /// a violation to the peer. The block is the same on both copies; the pages need not mark it.
    mutating func markOneBlockIfNothingTracked() {
        guard bitmap.outOfSyncBytes == 0, bitmap.blockCount > 0 else { return }
        _ = bitmap.setBlocks(BlockRun(first: 0, count: 1))
    }

    /// The copy (re)starts at the beginning of the bitmap.
    mutating func startCopy() {
        copyWanted = true
        peerStagesCatchUp = false  // the peer's next ReplicaHello says whether it stages this one
        copyCursor = 0
        copyRun = nil
        copyGeneration += 1
        copySentNoticed = false
        awaitingCaughtUp = false  // this copy's SyncComplete asks again (a staged peer continues its journal)
        copiedBytes = 0
        copyTotalBytes = bitmap.outOfSyncBytes
        copyLastSequence = 0
    }

    /// Reads the next dirty runs while the copy may go on: up to `copyBuffersMax` chunk buffers,
    /// within its share of the stream's room and the resync rate.
    mutating func continueCopy(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        copyWaitsForRegion = false
        guard copyWanted, resyncPermitted, !isAhead, !restartPending, !stopping, !diskFailed, !localLacksWrites, isPeerReady,
            zeroing == nil, !isBlocked
        else { return }
        // The copy leaves half the buffer to the application: a copy that filled it would
        // block an async application and send it Ahead again.
        let share = max(config.primary.bufferBytesMax / 2, UInt64(config.chunkBytes))
        while copyReads.count + copyChunksHeld.count < config.copyBuffersMax, let run = nextCopyRun(into: &actions) {
            let offset = run.first * bitmap.blockBytes
            let length = UInt32(min(run.count * bitmap.blockBytes, config.volumeSizeBytes - offset))
            let reserved = copyReadBytes + UInt64(length)
            guard primary.hasRoom(writes: copyReads.count + 1, bytes: reserved), primary.retainedBytes + reserved <= share
            else { return }
            if localWriteInFlight(overlapping: offset, offset + UInt64(length)) {
                copyWaitsForRegion = true
                return
            }
            guard pacingLeavesRoomForCopy(UInt64(length)), resyncAdmits(length, nowNs: nowNs) else { return }
            copyRun = nil
            copyCursor = run.end * bitmap.blockBytes
            copyReads.append(CopyRead(run: run, generation: copyGeneration))
            copyReadBytes = reserved
            actions.append(.readCopyChunk(offsetBytes: offset, lengthBytes: length))
        }
    }

    /// The next dirty run at or after the cursor, at most a chunk long (found once per
    /// cursor move); nil once the bitmap has no more. A run the cursor passed whose read was
    /// discarded is still dirty: once no read is in flight the walk starts again from 0.
    /// Regions a crash's checksum resync has not compared yet are left alone (+Checksum): while
    /// every set bit may lie in them the walk does not start again.
    private mutating func nextCopyRun(into actions: inout [PrimaryNodeAction]) -> BlockRun? {
        if let copyRun { return copyRun }
        if copyCursor < config.volumeSizeBytes {
            copyRun = nextCopyRunOutsideChecksum()
            if copyRun == nil { copyCursor = config.volumeSizeBytes }
        }
        if copyRun == nil, copyReads.isEmpty, bitmap.outOfSyncBytes > checksumPendingBytes {
            copyCursor = 0
            copyRun = nextCopyRunOutsideChecksum()
            if copyRun == nil { copyCursor = config.volumeSizeBytes }
        }
        if copyRun == nil { noteCopySent(into: &actions) }
        return copyRun
    }

    /// The next dirty run at or after the cursor that holds no region the checksum resync
    /// still has to compare (the cursor moves past those).
    private mutating func nextCopyRunOutsideChecksum() -> BlockRun? {
        let maxBlocks = UInt64(config.chunkBytes) / bitmap.blockBytes
        while copyCursor < config.volumeSizeBytes,
            let run = bitmap.nextDirtyRun(from: copyCursor / bitmap.blockBytes, maxBlocks: maxBlocks) {
            let (outside, skipTo) = copyRunOutsideChecksum(run)
            if let outside { return outside }
            precondition(skipTo > copyCursor, "the copy's cursor must move past a checksum region")
            copyCursor = skipTo
        }
        return nil
    }

    /// Every dirty run has been read and admitted: said once per copy.
    private mutating func noteCopySent(into actions: inout [PrimaryNodeAction]) {
        guard copyCursor >= config.volumeSizeBytes, copyReads.isEmpty, bitmap.outOfSyncBytes == 0, !copySentNoticed,
            checksumResync == nil
        else { return }
        copySentNoticed = true
        actions.append(.notice(.copySent(bytes: copiedBytes)))
    }

    /// A local write (an application write or a zero chunk) overlapping [start, end) is
    /// submitted and not complete: a read now could miss its data.
    private func localWriteInFlight(overlapping start: UInt64, _ end: UInt64) -> Bool {
        active.contains { tickets[$0].localPending > 0 && start < tickets[$0].end && tickets[$0].start < end }
    }

    /// The region lock: a mutation of [start, end) waits while a copy read of it is in flight,
    /// while the copy's next run waits for that region to go quiet, or while the verify has
    /// asked it and waits for its digests (PrimaryNode+Verify).
    func overlapsCopy(start: UInt64, end: UInt64) -> Bool {
        let blockBytes = bitmap.blockBytes
        func overlaps(_ run: BlockRun) -> Bool { start < run.end * blockBytes && run.first * blockBytes < end }
        if copyWaitsForRegion, let copyRun, overlaps(copyRun) { return true }
        return copyReads.contains { overlaps($0.run) } || overlapsVerify(start: start, end: end)
            || overlapsChecksumResync(start: start, end: end)
    }

    mutating func copyChunkRead(
        _ offset: UInt64, _ length: UInt32, errno: Int32, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        guard let index = copyReads.firstIndex(where: { $0.run.first * bitmap.blockBytes == offset }) else {
            preconditionFailure("a copy chunk result nobody asked for")
        }
        let read = copyReads.remove(at: index)
        copyReadBytes -= UInt64(length)
        guard errno == 0 else {
            // The copy stays wanted and unfinished (the failed disk reads no more of it): the
            // peer's copy is Inconsistent, not UpToDate.
            actions.append(.discardCopyChunk(offsetBytes: offset))
            return failDisk("read", errno, into: &actions)
        }
        // Gone Ahead while it was read, or the copy started over: the run stays dirty.
        guard !isAhead, read.generation == copyGeneration else {
            actions.append(.discardCopyChunk(offsetBytes: offset))
            return noteCopySent(into: &actions)
        }
        _ = bitmap.clearBlocks(read.run)
        copiedBytes += UInt64(length)
        copyChunksOutstanding += 1
        let ticket = allocateTicket(.copyChunk, request: 0, start: offset, end: offset + UInt64(length))
        tickets[ticket].writesOutstanding = 1
        drive(.copyChunkSubmitted(request: RequestID(ticket), offsetBytes: offset, lengthBytes: length),
              nowNs: nowNs, into: &actions)
        closeCopyEpochIfFull(nowNs: nowNs, into: &actions)
        if copyLastSequence > releasedThrough {
            copyChunksHeld.append(CopyChunkHeld(sequence: copyLastSequence, lengthBytes: length))
        }
        noteCopyChunkForCheckpoint(read.run)
        noteCopySent(into: &actions)
    }

    /// A chunk's buffer comes back only when the peer has confirmed its epoch durable, and an
    /// epoch of a sync stream closes only when one of its writes is acknowledged — by then
    /// every read that completed meanwhile has joined it. Left alone, the copy's epochs grow
    /// to the whole window: the peer confirms it all at once, after its last chunk, and the
    /// window refills only then (stop and go; docs/benchmarks.md, ninth session: 64 chunks per
    /// DurableAck, the window full of chunks waiting for it). Closing the epoch every
    /// `copyEpochChunksMax` chunks lets the peer confirm the window an eighth at a time while
    /// the rest moves. Splitting an epoch is always allowed: it only orders more.
    var copyEpochChunksMax: Int { max(1, config.copyBuffersMax / 8) }

    private mutating func closeCopyEpochIfFull(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        let epoch = primary.openEpoch
        if epoch != copyEpoch { (copyEpoch, copyChunksInEpoch) = (epoch, 0) }
        copyChunksInEpoch += 1
        guard copyChunksInEpoch >= copyEpochChunksMax else { return }
        drive(.epochCloseWanted, nowNs: nowNs, into: &actions)
        copyChunksInEpoch = 0
    }

    /// Once the last chunk is released (durable on the peer), the peer holds the volume.
    mutating func checkCopyDone(into actions: inout [PrimaryNodeAction]) {
        guard copyWanted, copyCursor >= config.volumeSizeBytes, copyReads.isEmpty, bitmap.outOfSyncBytes == 0,
            copyChunksOutstanding == 0, checksumResync == nil,
            copyLastSequence != 0, copyLastSequence < primary.oldestHeldSequence, isPeerReady
        else { return }
        copyWanted = false
        (copySampleNs, copyRateSmoothedBytesPerSecond) = (0, 0)  // a later copy's rate starts afresh
        // The peer holds what it lacked since then once the SyncComplete's effect is durable
        // there: a staged catch-up committed and applied, an in-place copy's `synced` record
        // stored. A peer of protocol 7 says so (CaughtUp, PrimaryNode+CaughtUp); until then
        // it is not UpToDate. The first SyncComplete of a link only: a CaughtUp carries no
        // sequence, so after an earlier one (a verify's repair copy, in place on a synced
        // record) a late answer to that one would be taken for this one's. An older peer
        // is UpToDate from here, as before.
        if peerVersion >= WireFormat.caughtUpVersion, periodNs != nil || confirmedOnLink == nil {
            awaitingCaughtUp = true
        } else {
            aheadSinceNs = 0
        }
        // The copy is complete through its last chunk: the peer holds a consistent image
        // from now on (UpToDate once it also holds every acknowledged write).
        confirmedOnLink = copyLastSequence
        actions.append(.sendSyncComplete(throughSequence: copyLastSequence))
        actions.append(.notice(.copyDone(bytes: copiedBytes)))
    }

    /// The copy's rate (status `resync_rate_bytes_per_second`): smoothed while it moves, 0 the
    /// moment it cannot (done, or no peer) — not at the next sample, a second later.
    public var copyRateBytesPerSecond: UInt64 { copyWanted && isPeerReady ? copyRateSmoothedBytesPerSecond : 0 }

    /// Smoothed bytes per second of the copy (half the newest second, half before), sampled
    /// on ticks at least 0.9 s apart.
    mutating func sampleCopyRate(nowNs: UInt64) {
        guard copyWanted, isPeerReady else {
            copySampleNs = 0
            copyRateSmoothedBytesPerSecond = 0
            return
        }
        guard copySampleNs != 0 else {
            (copySampleNs, copySampleCursor) = (nowNs, copiedBytes)
            return
        }
        guard nowNs >= copySampleNs + 900_000_000 else { return }
        let recent = (copiedBytes - min(copySampleCursor, copiedBytes)) * 1_000_000_000 / (nowNs - copySampleNs)
        copyRateSmoothedBytesPerSecond = copyRateSmoothedBytesPerSecond == 0
            ? recent : (copyRateSmoothedBytesPerSecond + recent) / 2
        (copySampleNs, copySampleCursor) = (nowNs, copiedBytes)
    }
}
