// PrimaryNode's full copy: the whole volume goes to the peer in chunks, as ordinary writes of
// the Data stream, while application writes go on. A chunk is read only when no local write
// is in flight (so it holds the newest data of its region and is sequenced after every write
// that touched it) and nothing is admitted while its read is in flight. The copy ends when
// the last chunk's write is released (durable on the peer): then SyncComplete. A link lost
// mid-copy does not restart it: the chunks already admitted are re-sent with every other
// unconfirmed write and the cursor goes on. A peer that refuses to continue the session
// (`unrelated-data`) restarts it from 0 as a full copy.

extension PrimaryNode {
    /// Reads the next chunk when the copy may go on, or pauses admission until local writes
    /// have finished so that it can.
    mutating func continueCopy(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        let length = UInt32(min(UInt64(config.chunkBytes), config.volumeSizeBytes - min(copyCursor, config.volumeSizeBytes)))
        let wanted = copyWanted && !stopping && !diskFailed && !copyReadInFlight && isPeerReady
            && copyCursor < config.volumeSizeBytes && zeroing == nil && !isBlocked
            && primary.canAdmitWrite(lengthBytes: length)
            && resyncAdmits(length, consuming: localWritesInFlight == 0, nowNs: nowNs)
        copyWaitingForQuiet = wanted && localWritesInFlight > 0
        guard wanted, localWritesInFlight == 0 else { return }
        copyReadInFlight = true
        actions.append(.readCopyChunk(offsetBytes: copyCursor, lengthBytes: length))
    }

    mutating func copyChunkRead(
        _ offset: UInt64, _ length: UInt32, errno: Int32, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        precondition(copyReadInFlight && offset == copyCursor, "a copy chunk result nobody asked for")
        copyReadInFlight = false
        guard errno == 0 else {
            // The copy stays wanted and unfinished (the failed disk reads no more of it): the
            // peer's copy is Inconsistent, not UpToDate.
            actions.append(.discardCopyChunk)
            return failDisk("read", errno, into: &actions)
        }
        copyCursor += UInt64(length)
        copyChunksOutstanding += 1
        let ticket = allocateTicket(.copyChunk, request: 0, start: offset, end: offset + UInt64(length))
        tickets[ticket].writesOutstanding = 1
        drive(.writeSubmitted(request: RequestID(ticket), offsetBytes: offset, lengthBytes: length, fua: false),
              nowNs: nowNs, into: &actions)
        if copyCursor >= config.volumeSizeBytes {
            actions.append(.notice(.copySent(bytes: config.volumeSizeBytes)))
        }
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
        actions.append(.notice(.copyDone(bytes: config.volumeSizeBytes)))
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
            (copySampleNs, copySampleCursor) = (nowNs, copyCursor)
            return
        }
        guard nowNs >= copySampleNs + 900_000_000 else { return }
        let recent = (copyCursor - copySampleCursor) * 1_000_000_000 / (nowNs - copySampleNs)
        copyRateBytesPerSecond = copyRateBytesPerSecond == 0 ? recent : (copyRateBytesPerSecond + recent) / 2
        (copySampleNs, copySampleCursor) = (nowNs, copyCursor)
    }
}
