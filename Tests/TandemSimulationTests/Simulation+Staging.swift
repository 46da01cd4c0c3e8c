import Glibc
import TandemCore

// Simulation+Staging: the secondary's staging journal (staged consistent catch-up;
// docs/replication.md, *Staged catch-up*) as SecondaryReplicator+Staging, StagingJournal and
// Resource+Staging carry it out for SecondaryNode+Staging's decisions: a journal device of its
// own beside the volume, whose records land, are flushed, survive a kill and may be lost at a
// power loss; the commit (the journal synced, then the record stored); the apply, record by
// record (a crash may stop it anywhere); and the settlement (StagingSettlement) at a restart
// and at a promotion: a committed journal is replayed, an uncommitted one resumed or dropped.
//
// Checks (GuaranteeChecker's claims over the image a crash now would leave):
// - while the durable record names an uncommitted journal, the volume is untouched (exactly
//   what it held when the catch-up began) and a crash-consistent copy of the session it
//   belongs to (async: an epoch prefix; sync: nothing never admitted — the sync writes
//   acknowledged meanwhile sit in the journal, decision (a), so they are not claimed);
// - once the commit is durable, the volume with the journal replayed is what the node's
//   claim says (the catch-up's session);
// - a copy staging a catch-up never says UpToDate, and the primary's UpToDate about it holds
//   for the volume with every staged record in it;
// - a promotion settles first: after a commit it applies the journal (decision (b): nothing
//   the catch-up carried is lost), before one it serves the untouched image;
// - a committed journal and an uncommitted journal's claimed prefix are on the journal device
//   when a restart or a promotion reads them.
// Randomness: the journal's latencies and crash outcomes come from `stagingRandom`, so seeds
// without staging replay as before.

/// One node's staging journal device.
struct SimJournal {
    enum State: Equatable {
        case inFlight(FakeDisk.Tag)
        /// On the device (a kill keeps it), not yet covered by a completed flush.
        case landed
        /// Covered by a flush or the commit's sync (a power loss keeps it).
        case durable
    }

    struct Record {
        var offsetBytes: UInt64
        var sequence: WriteSequence
        var extent: FakeDisk.Extent
        var state: State
    }

    /// The staging session the records belong to (0: none yet).
    var session: UInt64 = 0
    /// In journal order.
    var records: [Record] = []
    /// The staging flush in flight: its tag and the records it covers.
    var flush: (tag: FakeDisk.Tag, covers: [UInt64])?
    /// The apply in progress: through which journal bytes, and the next record to write.
    var applying: (journalBytes: UInt64, next: Int)?
    /// What the volume held when the durable record first named an uncommitted journal (the
    /// image a promotion now would serve).
    var untouched: [UInt64]?

    /// The records a settlement of `journalBytes` reads, in order (nil: one is missing).
    func prefix(through journalBytes: UInt64) -> [Record]? {
        var expected: UInt64 = 0
        var result: [Record] = []
        for record in records where record.offsetBytes < journalBytes {
            guard record.offsetBytes == expected, !record.isInFlight else { return nil }
            result.append(record)
            expected += StagingJournalRecord.recordBytes(lengthBytes: UInt32(UInt64(record.extent.values.count) * SimulationScenario.blockSizeBytes))
        }
        return expected >= journalBytes ? result : nil
    }
}

extension SimJournal.Record {
    var isInFlight: Bool { if case .inFlight = state { true } else { false } }
}

/// The journal's I/O completions (Simulation.Event.staging).
enum StagingEvent {
    case writeDone(FakeDisk.Tag)
    case flushDone(FakeDisk.Tag)
    /// The apply writes its next record to the volume.
    case applyStep
}

extension Simulation {
    // MARK: Actions

    /// `.beginStaging`: the volume is flushed (it must hold the image the record names), and
    /// the journal of `session` is written from `journalBytes` on.
    func beginStaging(_ node: SimNode, session: UInt64, journalBytes: UInt64) {
        if node.journal.session != session { node.journal = SimJournal(session: session) }
        node.journal.records.removeAll { $0.offsetBytes >= journalBytes }
        let tag = makeTag()
        node.disk.submitFlush(tag: tag)
        let code = node.disk.completeFlush(tag) ?? EIO
        if code != 0 { driveSecondary(node, .stagingFailed(SecondaryDiskFault(operation: "flush", errno: code))) }
    }

    /// `.stageWrite`: the write's record goes to the journal at `offset`.
    func stageWrite(_ node: SimNode, _ write: SecondaryWrite, offsetBytes: UInt64, extent: FakeDisk.Extent) {
        let tag = makeTag()
        node.journal.records.removeAll { $0.offsetBytes >= offsetBytes }
        node.journal.records.append(SimJournal.Record(offsetBytes: offsetBytes, sequence: write.sequence, extent: extent,
                                                      state: .inFlight(tag)))
        stagedWrites += 1
        if scenario.testingFault == .stagedWritesReachTheVolume {
            // The seeded bug: the driver writes the payload through to the volume as well.
            let volumeTag = makeTag()
            node.disk.submitWrite(extent, fua: false, tag: volumeTag)
            _ = node.disk.completeWrite(volumeTag)
        }
        events.schedule(.staging(.writeDone(tag), node: node.index, incarnation: node.incarnation),
                        atNs: nowNs + stagingRandom.between(10_000, 150_000))
    }

    func flushStaging(_ node: SimNode) {
        let tag = makeTag()
        let covers = node.journal.records.filter { $0.state == .landed }.map(\.offsetBytes)
        node.journal.flush = (tag, covers)
        events.schedule(.staging(.flushDone(tag), node: node.index, incarnation: node.incarnation),
                        atNs: nowNs + stagingRandom.between(50_000, 1_000_000))
    }

    /// `.commitStaging`: the journal is synced (synchronously, as the daemon does), then the
    /// committing record is stored like any other.
    func commitStaging(_ node: SimNode, _ record: ReplicationRecord) {
        if scenario.testingFault != .commitSkipsJournalSync {
            for index in node.journal.records.indices where node.journal.records[index].state == .landed {
                node.journal.records[index].state = .durable
            }
        }
        commitsStored += 1
        storeRecord(node, record)
    }

    /// `.applyStaging`: the journal's first `journalBytes` go to the volume record by record
    /// (each FUA, as the apply's final flush would make them), then `.stagingApplied`.
    func applyStaging(_ node: SimNode, journalBytes: UInt64) {
        node.journal.applying = (journalBytes, 0)
        events.schedule(.staging(.applyStep, node: node.index, incarnation: node.incarnation),
                        atNs: nowNs + stagingRandom.between(10_000, 200_000))
    }

    func handleStaging(_ event: StagingEvent, node: SimNode) {
        switch event {
        case let .writeDone(tag):
            guard let index = node.journal.records.firstIndex(where: { $0.state == .inFlight(tag) }) else { return }
            let sequence = node.journal.records[index].sequence
            let code = node.disk.metadataWriteResult()
            if code == 0 { node.journal.records[index].state = .landed } else { node.journal.records.remove(at: index) }
            driveSecondary(node, .writeCompleted(sequence: sequence, errno: code))
        case let .flushDone(tag):
            guard let flush = node.journal.flush, flush.tag == tag else { return }
            node.journal.flush = nil
            let code = node.disk.metadataWriteResult()
            if code == 0 {
                for index in node.journal.records.indices where flush.covers.contains(node.journal.records[index].offsetBytes)
                    && node.journal.records[index].state == .landed {
                    node.journal.records[index].state = .durable
                }
            }
            driveSecondary(node, .flushCompleted(errno: code == ENOSPC ? 0 : code))
        case .applyStep:
            applyNextRecord(node)
        }
    }

    /// One record of the apply to the volume; after the last, the flush and `.stagingApplied`.
    private func applyNextRecord(_ node: SimNode) {
        guard let applying = node.journal.applying else { return }
        guard let records = node.journal.prefix(through: applying.journalBytes) else {
            node.journal.applying = nil
            return fail("\(node.name) applies a committed journal of \(applying.journalBytes) bytes that is not on its device")
        }
        guard applying.next < records.count else {
            node.journal.applying = nil
            appliesCompleted += 1
            return driveSecondary(node, .stagingApplied(errno: 0))
        }
        let code = writeThrough(node, records[applying.next].extent)
        guard code == 0 else {
            node.journal.applying = nil
            return driveSecondary(node, .stagingApplied(errno: code))
        }
        node.journal.applying!.next += 1
        events.schedule(.staging(.applyStep, node: node.index, incarnation: node.incarnation),
                        atNs: nowNs + stagingRandom.between(10_000, 200_000))
    }

    /// A write to the volume that is durable when it returns (the apply's, the replay's).
    private func writeThrough(_ node: SimNode, _ extent: FakeDisk.Extent) -> Int32 {
        let tag = makeTag()
        node.disk.submitWrite(extent, fua: true, tag: tag)
        return node.disk.completeWrite(tag) ?? EIO
    }

    // MARK: Crash, stop, settlement

    /// A crash: each record in flight lands or not; a power loss keeps each record not yet
    /// covered by a flush or not (a torn tail the durable record never claims).
    func crashJournal(_ node: SimNode, powerLoss: Bool) {
        node.journal.flush = nil
        node.journal.applying = nil
        var kept: [SimJournal.Record] = []
        for var record in node.journal.records {
            switch record.state {
            case .inFlight:
                guard stagingRandom.chance(perMille: 500) else { continue }
                record.state = powerLoss ? .durable : .landed
            case .landed:
                guard powerLoss else { break }
                guard stagingRandom.chance(perMille: 500) else { continue }
                record.state = .durable
            case .durable:
                break
            }
            kept.append(record)
        }
        node.journal.records = kept
    }

    /// The secondary stops for a promotion: the staged I/O in flight completes and the node
    /// hears of it (a drain that ends in the commit still commits: SecondaryNode+Staging), and
    /// an apply under way runs to its end, as the daemon's stop waits for them.
    func drainStagingIO(_ node: SimNode) {
        for record in node.journal.records {
            guard case let .inFlight(tag) = record.state else { continue }
            handleStaging(.writeDone(tag), node: node)
        }
        if let flush = node.journal.flush { handleStaging(.flushDone(flush.tag), node: node) }
        while node.journal.applying != nil, failure == nil { applyNextRecord(node) }
    }

    /// StagingSettlement, carried out as StagingJournal.settle does (synchronously, before the
    /// node starts as secondary or takes the primary role). Checks that the journal a record
    /// names is on the device and, at a promotion, that the image served is the one the
    /// record promised: a committed journal applied (nothing the catch-up carried is lost),
    /// an uncommitted one dropped with the volume untouched.
    func settleStaging(_ node: SimNode, promoting: Bool) {
        let settlement = StagingSettlement.decide(record: node.record, promoting: promoting)
        switch settlement {
        case .none:
            return
        case let .resume(journalBytes):
            guard node.journal.prefix(through: journalBytes) != nil else {
                return fail("\(node.name)'s record claims \(journalBytes) journal bytes its staging journal does not hold")
            }
            node.journal.records.removeAll { $0.offsetBytes >= journalBytes }
        case let .replay(journalBytes, record):
            guard let records = node.journal.prefix(through: journalBytes) else {
                return fail("\(node.name)'s record commits \(journalBytes) journal bytes its staging journal does not hold")
            }
            stagingReplays += 1
            if promoting && scenario.testingFault == .promotionDropsCommittedJournal {
                // The seeded bug: the promotion serves the volume without the committed journal.
                node.record = record
                break
            }
            for entry in records where writeThrough(node, entry.extent) != 0 {
                return trace("\(node.name): the replay failed")  // the resource's disk failed
            }
            node.record = record
        case let .discard(record):
            stagingDiscards += 1
            if let untouched = node.journal.untouched, untouched != node.disk.cache {
                return fail("\(node.name) is promoted with its journal dropped, but its volume \(node.disk.cache) is not the image \(untouched) the catch-up began on")
            }
            node.record = record
        }
        if node.record.staging == nil { node.journal = SimJournal() }
    }

    /// A promotion after the commit: the journal's catch-up is on the promoted volume.
    func checkPromotedAfterCommit(_ node: SimNode, committedSession: UInt64, confirmedThrough: WriteSequence?) {
        let current = checker.isCurrentLineage(session: committedSession)
        let claim: DiskState = scenario.mode == .async && confirmedThrough != nil ? .upToDate : .consistent
        if let problem = checker.checkClaim(claim, by: "\(node.name) promoted after its journal's commit",
                                            content: node.disk.cache, session: committedSession, currentLineage: current,
                                            confirmedThrough: confirmedThrough) {
            fail(problem)
        }
    }

    // MARK: Checks

    /// Whether the node's copy is in a staged catch-up (in memory or by its durable record).
    func stagesACatchUp(_ node: SimNode) -> Bool {
        node.record.staging != nil || node.secondary?.record.staging != nil
    }

    /// The volume with the journal's records through `journalBytes` (nil: every record on the
    /// device) written over it, in order.
    func journalImage(_ node: SimNode, through journalBytes: UInt64? = nil) -> [UInt64] {
        var image = node.disk.cache
        for record in node.journal.records where !record.isInFlight {
            if let journalBytes, record.offsetBytes >= journalBytes { break }
            for (offset, value) in record.extent.values.enumerated() { image[record.extent.firstBlock + offset] = value }
        }
        return image
    }

    /// The staging checks of one secondary (instead of the plain claim check while it stages).
    /// The untouched image is taken here, at the first step the journal is named.
    func checkStagedCopy(_ node: SimNode, claim: DiskState) -> String? {
        if node.secondary?.record.staging != nil, claim == .upToDate {
            return "secondary \(node.name) says UpToDate while it stages a catch-up"
        }
        guard let staged = node.record.staging else {
            // The journal is named in memory only (its session record is being stored): the
            // volume still holds the recorded session's image.
            node.journal.untouched = node.journal.untouched ?? node.disk.cache
            return checkUntouched(node, claim: claim, session: node.record.session != 0 ? node.record.session : node.historySession)
        }
        if staged.committed {
            node.journal.untouched = nil
            let image = journalImage(node, through: staged.journalBytes)
            let session = node.record.session
            return checker.checkClaim(claim, by: "secondary \(node.name) (its committed journal replayed)", content: image,
                                      session: session, currentLineage: checker.isCurrentLineage(session: session))
        }
        node.journal.untouched = node.journal.untouched ?? node.disk.cache
        return checkUntouched(node, claim: claim, session: staged.fromSession != 0 ? staged.fromSession : node.historySession)
    }

    private func checkUntouched(_ node: SimNode, claim: DiskState, session: UInt64?) -> String? {
        if let untouched = node.journal.untouched, untouched != node.disk.cache {
            return "secondary \(node.name)'s volume changed while its catch-up is staged and uncommitted: \(untouched) became \(node.disk.cache)"
        }
        guard let session, claim == .consistent || claim == .outdated || claim == .upToDate else { return nil }
        guard scenario.mode == .sync || scenario.adaptive != nil else {
            return checker.checkClaim(claim, by: "secondary \(node.name) (staging, uncommitted)", content: node.disk.cache,
                                      session: session, currentLineage: checker.isCurrentLineage(session: session))
        }
        // Sync (and adaptive's sync admissions): the writes acknowledged during the catch-up
        // sit in the journal (decision (a)):
        // the image must hold nothing never admitted, and be what it was.
        guard let history = checker.histories[session] else {
            return "secondary \(node.name) says \(claim.rawValue) of a copy of unknown session \(session)"
        }
        return history.admittedViolation(node.disk.cache).map { "secondary \(node.name) (staging, uncommitted): \($0)" }
    }
}

extension Simulation {
    /// The phase the secondary's staged catch-up is in, as its driver sees it (nil: none).
    func stagingPhase(_ node: SimNode) -> StagingFault.Phase? {
        guard node.secondary?.isStaging == true else { return nil }
        if node.journal.applying != nil { return .apply }
        if node.recordsInFlight.contains(where: { $0.staging?.committed == true }) { return .commit }
        if node.record.staging?.committed == false, !node.journal.records.isEmpty { return .journal }
        return nil
    }

    /// After every step while a staging fault is armed: it strikes once the secondary is in
    /// its phase (or is dropped once the window passed).
    func fireArmedStagingFault() {
        guard let (fault, untilNs) = armedStagingFault else { return }
        guard nowNs <= untilNs else { return armedStagingFault = nil }
        guard let node = liveSecondary, stagingPhase(node) == fault.phase else { return }
        armedStagingFault = nil
        stagingFaultsFired += 1
        trace("staging fault: \(fault)")
        switch fault.action {
        case let .crash(powerLoss):
            crash(node, powerLoss: powerLoss)
            events.schedule(.restart(node: node.index), atNs: nowNs + stagingRandom.between(100_000, 5_000_000))
        case .forcedFailover:
            forcedFailover(allowInconsistent: false)
        }
    }
}
