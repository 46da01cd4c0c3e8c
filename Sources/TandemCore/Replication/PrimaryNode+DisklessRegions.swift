// PrimaryNode's diskless regions (issue 13 §4): the record keeps which regions a diskless
// primary's disk lacks, so a restart (kill -9 included) pulls those from the peer, not the
// whole volume. The rule is the Ahead bitmap's, in the other direction: a region's bit is
// durable before a write over it goes through the peer (and so before it is acknowledged).
//
// - The first record (before the flag `local-lacks-writes`): every page of the lacking set as
//   it is then (the regions of the writes that failed here), written anew, then the mark
//   `local-lacking-regions` (`.persistLackingRegions(fresh: true)`). If it cannot be kept, the
//   flag is recorded alone, as before: a restart pulls the whole volume.
// - A write (or WRITE_ZEROES) through the peer whose blocks are not durable yet waits at the
//   head of the queue; one page write at a time carries its blocks, those of every mutation
//   queued behind it and any failed write's region not durable yet (a group commit: one
//   fdatasync for the lot). Writes over regions already durable go at once.
// - A later page write that fails refuses writes through the peer (EIO, with the reason): the
//   pages may no longer cover what the peer would take.
// - Bits are never cleared in the record while the flag stands (pulled regions stay set: a
//   superset costs a pull, never a missed region); the flag's clearing drops the mark too.
// The driver answers `.lackingRegionsPersisted`; `keepsLackingRegions` false (a driver that
// cannot) keeps the flag-only record. No I/O, no clock.

extension PrimaryNode {
    /// At start: the record says this disk lacks writes. Which ones (LackingStart.decide):
    /// `kept`, the exact set the last node of this process left at its stop; else the
    /// record's proven regions; else the whole volume, and why.
    mutating func startLacking(kept: DirtyBitmap?, record: LackingRecord) {
        let blockBytes = LocalDiskResync.blockBytes(volumeSizeBytes: config.volumeSizeBytes)
        let start = LackingStart.decide(volumeSizeBytes: config.volumeSizeBytes, blockBytes: blockBytes, kept: kept,
                                        record: record)
        if let lacking = start.lacking {
            localDisk.lacking = lacking
        } else {
            noteLocalLossOfEverything()
            localDisk.wholeVolumeBecause = start.wholeVolumeBecause
        }
        localDisk.durable = start.durable
        localDisk.regionsKept = config.keepsLackingRegions && start.durable != nil
        localDisk.recorded = true
    }

    /// Before the record's flag: the regions' pages, once (true: asked, wait for the answer).
    mutating func askFirstLackingRegions(into actions: inout [PrimaryNodeAction]) -> Bool {
        guard config.keepsLackingRegions, localDisk.regionsKept == nil, let lacking = localDisk.lacking else { return false }
        askLackingRegions(Self.runs(of: lacking, notIn: nil), fresh: true, into: &actions)
        return true
    }

    /// Whether a mutation of `start..<end` may go through the peer now: its blocks are durable
    /// in the record (or the record keeps no regions). false: a page write is asked for (or
    /// one is in flight) and the mutation waits at the head of the queue.
    mutating func lackingRegionsAdmit(start: UInt64, end: UInt64, into actions: inout [PrimaryNodeAction]) -> Bool {
        guard localDisk.regionsKept == true, end > start, let lacking = localDisk.lacking else { return true }
        let durable = localDisk.durable ?? DirtyBitmap(volumeSizeBytes: lacking.volumeSizeBytes, blockBytes: lacking.blockBytes)
        localDisk.durable = durable
        let run = durable.blocksTouched(offsetBytes: start, lengthBytes: end - start)
        if durable.setCount(in: run) == run.count { return true }
        guard localDisk.regionsInFlight == nil else { return false }
        // Group commit: what failed here and is not durable yet, this mutation, those queued.
        var runs = localDisk.lossUnpersisted ? Self.runs(of: lacking, notIn: durable) : []
        localDisk.lossUnpersisted = false
        runs.append(run)
        for position in 1..<max(1, queue.count) {  // 0 is this mutation, still at the head
            let (offset, length): (UInt64, UInt64)
            switch queue[position].kind {
            case let .write(at, bytes, _): (offset, length) = (at, UInt64(bytes))
            case let .writeZeroes(at, bytes, _): (offset, length) = (at, bytes)
            case .flush, .trim: continue
            }
            guard length > 0, offset < durable.volumeSizeBytes, length <= durable.volumeSizeBytes - offset else { continue }
            let queued = durable.blocksTouched(offsetBytes: offset, lengthBytes: length)
            if durable.setCount(in: queued) < queued.count { runs.append(queued) }
        }
        askLackingRegions(runs, fresh: false, into: &actions)
        return false
    }

    /// A write that failed here after the record kept regions: its region goes to the record
    /// with the next page write (nothing waits for it: the write was answered EIO).
    mutating func persistLossIfDue(into actions: inout [PrimaryNodeAction]) {
        guard localDisk.lossUnpersisted, localDisk.regionsKept == true, localDisk.regionsInFlight == nil,
            let lacking = localDisk.lacking
        else { return }
        localDisk.lossUnpersisted = false
        let runs = Self.runs(of: lacking, notIn: localDisk.durable)
        if !runs.isEmpty { askLackingRegions(runs, fresh: false, into: &actions) }
    }

    private mutating func askLackingRegions(_ runs: [BlockRun], fresh: Bool, into actions: inout [PrimaryNodeAction]) {
        localDisk.regionsTicket += 1
        localDisk.regionsInFlight = (localDisk.regionsTicket, runs, fresh)
        localDisk.regionWrites += 1
        actions.append(.persistLackingRegions(ticket: localDisk.regionsTicket, runs: runs,
                                              blockBytes: localDisk.lacking!.blockBytes, fresh: fresh))
    }

    /// The driver's answer to `.persistLackingRegions`.
    mutating func lackingRegionsPersisted(ticket: UInt64, errno: Int32, reason: String?) {
        guard let asked = localDisk.regionsInFlight, asked.ticket == ticket else {
            preconditionFailure("a lacking-regions page write \(ticket) that was not asked for")
        }
        localDisk.regionsInFlight = nil
        guard errno == 0 else {
            let why = reason ?? "errno \(errno)"
            if asked.fresh {
                // The flag alone, as before regions were kept: a restart pulls the whole volume.
                localDisk.regionsKept = false
                localDisk.durable = nil
                return
            }
            localDisk.recordRefusal = "this node's disk lacks writes its peer holds and the record cannot keep "
                + "their regions: \(why)"
            return
        }
        if asked.fresh, let lacking = localDisk.lacking {
            localDisk.regionsKept = true
            localDisk.durable = DirtyBitmap(volumeSizeBytes: lacking.volumeSizeBytes, blockBytes: lacking.blockBytes)
        }
        for run in asked.runs { localDisk.durable?.setBlocks(run) }
    }

    /// The set runs of `bitmap` that `durable` (same geometry) does not hold whole.
    static func runs(of bitmap: DirtyBitmap, notIn durable: DirtyBitmap?) -> [BlockRun] {
        var runs: [BlockRun] = []
        var block: UInt64 = 0
        while let run = bitmap.nextDirtyRun(from: block) {
            if let durable, durable.setCount(in: run) == run.count {
                block = run.end
                continue
            }
            runs.append(run)
            block = run.end
        }
        return runs
    }
}
