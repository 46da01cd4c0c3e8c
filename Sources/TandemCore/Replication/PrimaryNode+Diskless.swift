// PrimaryNode's diskless mode (DRBD's diskless primary after `on-io-error detach`, issue 16
// §4): whether mutations are refused, served by this disk or sent through the peer is decided
// here (`mutationPath`), once. With this node's disk failed and a peer that may serve reads
// (PrimaryNode+Reads: sync, connected, UpToDate, protocol 6), writes go to the peer only:
//
// - First the record must say, durably, that this disk lacks writes (`.recordLocalLacksWrites`,
//   the metadata file's flag; it lives on another device than the volume by default). Until
//   it is written mutations wait in the queue; if it cannot be (internal metadata, a failed
//   record write) they are refused with EIO and status says why.
// - A write through the peer is kept (`.holdLocalWrite`: the payload for the stream) but never
//   written here; its local half counts as done at once, so it is acknowledged when the peer
//   applied it, as any sync write; a FLUSH once the peer made it durable. Its region is marked
//   in `localDisk.lacking` before it is admitted.
// - When the peer goes away (link down, no longer UpToDate) every mutation through it not yet
//   acknowledged is answered EIO at once (it may or may not have reached the peer, as a failed
//   write may), later ones are refused, and reads fail (this disk lacks writes): nothing is
//   ever acknowledged that the peer did not apply, and no read returns this disk's old data.
// - Once the disk is usable again (disable + enable, or a restart: the record keeps the flag,
//   and where it can the regions, +DisklessRegions) the lacking regions are pulled from the peer (ReadRequests; the driver writes each reply
//   here), at most `pullsInFlightMax` at a time, never a region with a write unanswered.
//   Writes meanwhile go to both disks (`.localAndPeer`; one that overlaps a pull in flight
//   waits for it, so an older pulled copy never lands over it) and still need the peer; reads
//   of a region not pulled yet go to the peer. When nothing is left the driver flushes this
//   disk and clears the flag (`.recordLocalLacksWrites(false)`), and this disk serves again.
// No I/O, no clock.

extension PrimaryNode {
    /// Decided once for every mutation (and read: `routeRead`).
    public var mutationPath: MutationPath {
        guard diskFailed || localDisk.lacking != nil else { return .local }
        // A failure after which nothing went through the peer yet, on a node that cannot
        // record it: the failure's own rule (EIO) holds.
        if let refusal = localDisk.recordRefusal { return .refused(refusal) }
        if let refusal = peerReadsRefusal {
            let disk = diskFailed ? "this node's disk failed" : "this node's disk lacks writes its peer holds"
            return .refused("\(disk) and the peer cannot take them: \(refusal)")
        }
        if localDisk.clearing || !localDisk.recorded { return .awaitingRecord }
        return diskFailed ? .throughPeer : .localAndPeer
    }

    /// The mutation path admits (or waits for the record, which it asks for).
    var mutationsAdmitted: Bool {
        switch mutationPath {
        case .local, .throughPeer, .localAndPeer: return true
        case .awaitingRecord, .refused: return false
        }
    }

    /// This disk lacks writes the peer holds, as the record says: it serves no read and takes
    /// no write until it is resynced.
    public var localLacksWrites: Bool { localDisk.recorded }

    /// With this disk failed, the bytes of writes acknowledged through the peer that it has
    /// not confirmed durable: no durable copy holds them (the peer applied them, but a power
    /// loss there drops them), only this node's retained payloads, which a stop discards.
    /// A stop asks the peer to make them durable first (+PeerDrain); `ResourceRoles.disable`
    /// is refused while it is not 0 and the peer is not connected.
    public var acknowledgedOnlyInMemoryBytes: UInt64 { diskFailed ? primary.lagBytes : 0 }

    /// A write (or flush) that met this disk's failure: its region is unknown here.
    mutating func noteLocalLoss(offsetBytes: UInt64, lengthBytes: UInt64) {
        ensureLackingBitmap()
        _ = localDisk.lacking!.setRange(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
        localDisk.lossUnpersisted = true  // +DisklessRegions: to the record with the next page write
    }

    /// A failed flush: whatever this disk cached since the last good one may be lost.
    mutating func noteLocalLossOfEverything() {
        ensureLackingBitmap()
        _ = localDisk.lacking!.setBlocks(BlockRun(first: 0, count: localDisk.lacking!.blockCount))
        localDisk.wholeVolume = true
        localDisk.lossUnpersisted = true
        if localDisk.wholeVolumeBecause == nil {
            localDisk.wholeVolumeBecause = "a flush of this disk failed: whatever it cached since the last good one may be lost"
        }
    }

    private mutating func ensureLackingBitmap() {
        guard localDisk.lacking == nil else { return }
        localDisk.lacking = DirtyBitmap(volumeSizeBytes: config.volumeSizeBytes,
                                        blockBytes: LocalDiskResync.blockBytes(volumeSizeBytes: config.volumeSizeBytes))
    }

    /// Admission of a write through the peer: its region is marked before it can be sent.
    mutating func markThroughPeer(offsetBytes: UInt64, lengthBytes: UInt64) {
        ensureLackingBitmap()
        _ = localDisk.lacking!.setRange(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
        localDisk.writesThroughPeer += 1
        localDisk.bytesThroughPeer += lengthBytes
    }

    /// Admission's turn while the record is being written: asks for it once. false: wait.
    mutating func awaitLocalLacksRecord(into actions: inout [PrimaryNodeAction]) {
        guard !localDisk.recordInFlight, !localDisk.clearing, localDisk.regionsInFlight == nil else { return }
        ensureLackingBitmap()
        if askFirstLackingRegions(into: &actions) { return }  // +DisklessRegions: the regions before the flag
        localDisk.recordInFlight = true
        actions.append(.recordLocalLacksWrites(true))
    }

    /// An admitted mutation's ticket on `path`: it needs the peer while this disk lacks writes,
    /// and skips this disk (its region marked as lacking) while the disk is failed.
    mutating func admitOnPath(_ ticket: Int, _ path: MutationPath) {
        guard path != .local else { return }
        tickets[ticket].needsPeer = true
        guard path == .throughPeer else { return }
        tickets[ticket].skipsLocal = true
        let start = tickets[ticket].start, end = tickets[ticket].end
        if end > start { markThroughPeer(offsetBytes: start, lengthBytes: end - start) }
    }

    /// A mutation of this range must wait: a pull in flight overlaps it.
    func overlapsPull(start: UInt64, end: UInt64) -> Bool {
        localDisk.pulls.contains { start < $0.offsetBytes + UInt64($0.lengthBytes) && $0.offsetBytes < end }
    }

    /// A read of this range must not be served by this disk: it lacks (part of) it.
    func localLacks(start: UInt64, end: UInt64) -> Bool {
        guard localDisk.recorded, let lacking = localDisk.lacking else { return false }
        if diskFailed || localDisk.clearing { return true }
        return lacking.anySet(offsetBytes: start, lengthBytes: end - start) || overlapsPull(start: start, end: end)
    }

    /// The driver's answer to `.recordLocalLacksWrites`.
    mutating func localLacksRecorded(set: Bool, errno: Int32, reason: String?, into actions: inout [PrimaryNodeAction]) {
        if set {
            localDisk.recordInFlight = false
            guard errno == 0 else {
                localDisk.recordRefusal = "this node's disk failed and the record cannot say that it lacks the writes "
                    + "the peer would take: \(reason ?? "errno \(errno)")"
                return
            }
            localDisk.recorded = true
            actions.append(.notice(.localDisk(.writesThroughPeer(lackingBytes: localDisk.lackingBytes))))
            return
        }
        precondition(localDisk.clearing, "a cleared record that was not asked for")
        localDisk.clearing = false
        guard errno == 0 else {
            // The flag stays: a restart pulls the whole volume again; this run fails the disk.
            failDisk(reason ?? "metadata write", errno, into: &actions)
            return
        }
        let pulled = localDisk.pulledBytes
        let parked = localDisk.lostAwaitingRecord
        localDisk = LocalDiskResync()
        localDisk.lostAwaitingRecord = parked
        actions.append(.notice(.localDisk(.resynced(pulledBytes: pulled))))
    }

    // MARK: A write in flight when this disk failed

    /// A write whose local half failed (the disk just failed under it): with a peer that takes
    /// this node's writes (sync, connected, UpToDate) it stays in the stream and needs the peer,
    /// as a write through the peer does — DRBD's `on-io-error detach` completes such a request
    /// once the peer has it. false: it fails (EIO), as before a diskless mode existed.
    mutating func keepsLostWriteForPeer(_ ticket: Int) -> Bool {
        guard tickets[ticket].kind == .write || tickets[ticket].kind == .zeroes, peerReadsRefusal == nil,
            localDisk.recordRefusal == nil
        else { return false }
        tickets[ticket].needsPeer = true
        tickets[ticket].lostLocally = true
        return true
    }

    /// The stream confirmed a mutation: answer it, unless its local write failed here; then
    /// the answer waits for the record of this disk's lack (`answerLostWritesIfRecorded`):
    /// acknowledged, it must be pulled after a crash, so the record must name its region.
    mutating func answerApplied(_ ticket: Int, into actions: inout [PrimaryNodeAction]) {
        let done = tickets[ticket]
        guard done.lostLocally, !done.failed else {
            return actions.append(.answer(done.request, errno: done.failed ? PrimaryErrno.eio : 0))
        }
        localDisk.lostAwaitingRecord.append(LostWrite(request: done.request, start: done.start, end: done.end))
    }

    /// After every event: writes the peer applied over a region this disk lost are answered
    /// once the record says this disk lacks writes and (where it keeps regions) names theirs;
    /// EIO when it cannot. Asks for the record itself: no mutation may be queued to ask.
    mutating func answerLostWritesIfRecorded(into actions: inout [PrimaryNodeAction]) {
        guard !localDisk.lostAwaitingRecord.isEmpty else { return }
        if localDisk.recordRefusal != nil {
            for lost in localDisk.lostAwaitingRecord { actions.append(.answer(lost.request, errno: PrimaryErrno.eio)) }
            return localDisk.lostAwaitingRecord.removeAll()
        }
        guard localDisk.recorded else { return awaitLocalLacksRecord(into: &actions) }
        let durable = localDisk.regionsKept == true ? localDisk.durable : nil
        localDisk.lostAwaitingRecord.removeAll { lost in
            if let durable, lost.end > lost.start {
                let run = durable.blocksTouched(offsetBytes: lost.start, lengthBytes: lost.end - lost.start)
                guard durable.setCount(in: run) == run.count else { return false }
            }
            actions.append(.answer(lost.request, errno: 0))
            return true
        }
        // Not durable yet: the loss goes to the record with the next page write.
        if !localDisk.lostAwaitingRecord.isEmpty { persistLossIfDue(into: &actions) }
    }

    /// Mutations admitted while this disk lacks writes need the peer: those it can no longer
    /// take are answered EIO now (their tickets stay until the stream is done with them).
    mutating func failThroughPeerIfPeerGone(into actions: inout [PrimaryNodeAction]) {
        guard localDisk.lacking != nil, peerReadsRefusal != nil else { return }
        for index in tickets.indices where tickets[index].needsPeer && !tickets[index].answered {
            guard tickets[index].kind != .zeroes || tickets[index].writesOutstanding > 0 || zeroing?.ticket == index else {
                continue
            }
            tickets[index].answered = true
            actions.append(.answer(tickets[index].request, errno: PrimaryErrno.eio))
        }
    }

    /// Writes answered EIO when the peer went away (`failThroughPeerIfPeerGone`) that the
    /// stream still carries. Each may already be on this disk, on the peer's, on both or on
    /// neither (a failed write may be), so it is not dropped: it is re-sent on the next link
    /// and written here (a write held for the activity log is issued after its answer), and the
    /// copies end with the same content. Until the stream is done with it (written here,
    /// applied there) the copies may differ, so the peer is not told it is in sync
    /// (SyncComplete, `confirmPeerIfInSync`) before: seed 72 of the simulator's diskless class
    /// had both copies say UpToDate with such a write on this disk only.
    var carriesWritesAnsweredEarly: Bool {
        active.contains { tickets[$0].answered }
    }

    // MARK: The resync from the peer

    /// Pulls what this disk lacks while the peer can serve it; clears the record's flag once
    /// nothing is left.
    mutating func continueLocalResync(into actions: inout [PrimaryNodeAction]) {
        persistLossIfDue(into: &actions)  // +DisklessRegions
        if localDisk.pullFailedThisEvent {
            localDisk.pullFailedThisEvent = false
            return  // asked again at the next event (`regionPulled`)
        }
        guard localDisk.recorded, !localDisk.clearing, !diskFailed, enabled, !stopping, isPeerReady,
            peerReadsRefusal == nil, var lacking = localDisk.lacking
        else { return }
        if !localDisk.resyncing {
            localDisk.resyncing = true
            localDisk.resyncTotalBytes = localDisk.lackingBytes
            actions.append(.notice(.localDisk(.resyncStarted(bytes: localDisk.resyncTotalBytes,
                                                             wholeVolume: localDisk.wholeVolume))))
        }
        let blockBytes = lacking.blockBytes
        let runBlocksMax = max(1, UInt64(WireFormat.readBytesMax) / blockBytes)
        var wrapped = false
        while localDisk.pulls.count < LocalDiskResync.pullsInFlightMax {
            guard let run = lacking.nextDirtyRun(from: localDisk.cursorBlock, maxBlocks: runBlocksMax) else {
                if wrapped || localDisk.cursorBlock == 0 { break }
                localDisk.cursorBlock = 0
                wrapped = true
                continue
            }
            let offset = run.first * blockBytes
            let length = min(run.count * blockBytes, config.volumeSizeBytes - offset)
            // A write not answered yet may not be on the peer: the region waits for it.
            if readOverlapsUnanswered(start: offset, end: offset + length) { break }
            _ = lacking.clearBlocks(run)
            localDisk.cursorBlock = run.end
            localDisk.pulls.append(PulledRegion(offsetBytes: offset, lengthBytes: UInt32(length)))
            actions.append(.pullRegion(offsetBytes: offset, lengthBytes: UInt32(length)))
        }
        localDisk.lacking = lacking
        // An unanswered write through the peer keeps its bits (its region waits above).
        guard lacking.outOfSyncBytes == 0, localDisk.pulls.isEmpty else { return }
        localDisk.clearing = true
        actions.append(.recordLocalLacksWrites(false))
    }

    /// A pull ended: 0, or the errno of the peer's read (`local` false: pulled again later) or
    /// of this disk's write (`local` true: the disk failed again).
    mutating func regionPulled(offsetBytes: UInt64, lengthBytes: UInt32, errno: Int32, local: Bool,
                               into actions: inout [PrimaryNodeAction]) {
        guard let index = localDisk.pulls.firstIndex(of: PulledRegion(offsetBytes: offsetBytes, lengthBytes: lengthBytes)) else {
            preconditionFailure("a pull of \(offsetBytes)+\(lengthBytes) that was not asked for")
        }
        localDisk.pulls.remove(at: index)
        guard errno == 0 else {
            _ = localDisk.lacking?.setRange(offsetBytes: offsetBytes, lengthBytes: UInt64(lengthBytes))
            if offsetBytes / (localDisk.lacking?.blockBytes ?? 1) < localDisk.cursorBlock { localDisk.cursorBlock = 0 }
            if local { failDisk("write", errno, into: &actions) }
            // Pulled again at the next event, not in this one: the drivers give a link's pulls
            // back before they report the link's loss, and fail a pull asked for without a link
            // at once, so asking again now looped (seed 89 of the simulator's diskless class;
            // the daemon's event loop the same).
            localDisk.pullFailedThisEvent = !local
            return
        }
        localDisk.pulledBytes += UInt64(lengthBytes)
    }
}

extension PrimaryNode {
    /// A peer read came back unserved: read here (`.local`, counted in flight), unless this
    /// disk lacks the region (`.refused`: answered EIO).
    public mutating func routeFallback(offsetBytes: UInt64, lengthBytes: UInt64) -> ReadRoute {
        if localLacksWrites, localLacks(start: offsetBytes, end: offsetBytes + lengthBytes) { return .refused }
        routeFallback()
        return .local
    }
}
