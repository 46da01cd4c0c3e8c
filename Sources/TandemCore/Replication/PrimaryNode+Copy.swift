// PrimaryNode's copy: the bitmap's dirty runs go to the peer in chunks (every block for a full
// copy, the tracked regions for a catch-up), as ordinary writes of the Data stream, while
// application writes go on. A chunk is read only when no local write is in flight (so it holds
// the newest data of its region and is sequenced after every write that touched it) and
// nothing is admitted while its read is in flight; its bits are cleared when it is admitted
// (if the node goes Ahead before the peer confirmed it, it is marked again with every held
// write). The copy ends when the last chunk's write is released (durable on the peer): then
// SyncComplete. A link lost mid-copy does not restart it: the chunks already admitted are
// re-sent with every other unconfirmed write and the cursor goes on. A peer that refuses to
// continue the session (`unrelated-data`) restarts it from 0 as a full copy.

extension PrimaryNode {
    /// Reads the next dirty run when the copy may go on, or pauses admission until local
    /// writes have finished so that it can.
    mutating func continueCopy(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        copyWaitingForQuiet = false
        guard copyWanted, resyncPermitted, !isAhead, !restartPending, !stopping, !diskFailed, !copyReadInFlight, isPeerReady,
            zeroing == nil, !isBlocked, let run = nextCopyRun(into: &actions)
        else { return }
        let offset = run.first * bitmap.blockBytes
        let length = UInt32(min(run.count * bitmap.blockBytes, config.volumeSizeBytes - offset))
        // The copy leaves half the buffer to the application: a copy that filled it would
        // block an async application and send it Ahead again.
        let share = max(config.primary.bufferBytesMax / 2, UInt64(config.chunkBytes))
        guard primary.canAdmitWrite(lengthBytes: length), primary.retainedBytes + UInt64(length) <= share,
            resyncAdmits(length, consuming: localWritesInFlight == 0, nowNs: nowNs)
        else { return }
        copyWaitingForQuiet = localWritesInFlight > 0
        guard localWritesInFlight == 0 else { return }
        copyReadInFlight = true
        copyReadRun = run
        actions.append(.readCopyChunk(offsetBytes: offset, lengthBytes: length))
    }

    /// The next dirty run at or after the cursor, at most a chunk long (found once per
    /// cursor move); nil once the bitmap has no more, when the copy has been sent.
    private mutating func nextCopyRun(into actions: inout [PrimaryNodeAction]) -> BlockRun? {
        if let copyRun { return copyRun }
        guard copyCursor < config.volumeSizeBytes else { return nil }
        let maxBlocks = UInt64(config.chunkBytes) / bitmap.blockBytes
        copyRun = bitmap.nextDirtyRun(from: copyCursor / bitmap.blockBytes, maxBlocks: maxBlocks)
        if copyRun == nil { copyCursorReachedEnd(into: &actions) }
        return copyRun
    }

    /// Every dirty run has been read and admitted.
    private mutating func copyCursorReachedEnd(into actions: inout [PrimaryNodeAction]) {
        copyCursor = config.volumeSizeBytes
        actions.append(.notice(.copySent(bytes: copiedBytes)))
    }

    mutating func copyChunkRead(
        _ offset: UInt64, _ length: UInt32, errno: Int32, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        guard let run = copyReadRun, copyReadInFlight, offset == run.first * bitmap.blockBytes else {
            preconditionFailure("a copy chunk result nobody asked for")
        }
        copyReadInFlight = false
        copyReadRun = nil
        guard errno == 0 else {
            // The copy stays wanted and unfinished (the failed disk reads no more of it): the
            // peer's copy is Inconsistent, not UpToDate.
            actions.append(.discardCopyChunk)
            return failDisk("read", errno, into: &actions)
        }
        // Gone Ahead while it was read: the run stays dirty for the next catch-up.
        guard !isAhead, copyRun == run else { return actions.append(.discardCopyChunk) }
        _ = bitmap.clearBlocks(run)
        copyRun = nil
        copyCursor = run.end * bitmap.blockBytes
        copiedBytes += UInt64(length)
        if copyCursor >= config.volumeSizeBytes { copyCursorReachedEnd(into: &actions) }
        copyChunksOutstanding += 1
        let ticket = allocateTicket(.copyChunk, request: 0, start: offset, end: offset + UInt64(length))
        tickets[ticket].writesOutstanding = 1
        drive(.writeSubmitted(request: RequestID(ticket), offsetBytes: offset, lengthBytes: length, fua: false),
              nowNs: nowNs, into: &actions)
    }

    /// Once the last chunk is released (durable on the peer), the peer holds the volume.
    mutating func checkCopyDone(into actions: inout [PrimaryNodeAction]) {
        guard copyWanted, copyCursor >= config.volumeSizeBytes, !copyReadInFlight, copyChunksOutstanding == 0,
            copyLastSequence != 0, copyLastSequence < primary.oldestHeldSequence, isPeerReady
        else { return }
        copyWanted = false
        // The copy is complete through its last chunk: the peer holds a consistent image
        // from now on (UpToDate once it also holds every acknowledged write).
        confirmedOnLink = copyLastSequence
        actions.append(.sendSyncComplete(throughSequence: copyLastSequence))
        actions.append(.notice(.copyDone(bytes: copiedBytes)))
    }

    /// Smoothed bytes per second of the copy (half the newest second, half before), sampled
    /// on ticks at least 0.9 s apart.
    mutating func sampleCopyRate(nowNs: UInt64) {
        guard copyWanted, isPeerReady else {
            copySampleNs = 0
            copyRateBytesPerSecond = 0
            return
        }
        guard copySampleNs != 0 else {
            (copySampleNs, copySampleCursor) = (nowNs, copiedBytes)
            return
        }
        guard nowNs >= copySampleNs + 900_000_000 else { return }
        let recent = (copiedBytes - min(copySampleCursor, copiedBytes)) * 1_000_000_000 / (nowNs - copySampleNs)
        copyRateBytesPerSecond = copyRateBytesPerSecond == 0 ? recent : (copyRateBytesPerSecond + recent) / 2
        (copySampleNs, copySampleCursor) = (nowNs, copiedBytes)
    }
}
