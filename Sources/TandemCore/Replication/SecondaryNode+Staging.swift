// SecondaryNode's staged catch-up (docs/replication.md, *Staged catch-up*): a catch-up session
// that starts on a synced, consistent copy writes its Data to the staging journal instead of
// the volume, so the volume keeps the image it held and the copy stays Consistent. At the
// primary's SyncComplete the node drains what is being staged, commits the journal (a durable
// record, before anything touches the volume), has it applied, and forgets it; what the
// stream carried meanwhile waits (backpressure) and then goes to the volume. A catch-up that
// outgrows `stagingBytesMax` commits what it staged the same way, marked Inconsistent, and
// goes on in place (the DRBD way). The decisions are here; the driver moves the bytes.

/// Where a staged catch-up stands.
enum StagingPhase: Sendable, Equatable {
    /// No journal: writes go to the volume.
    case off
    /// Writes go to the journal.
    case staging
    /// The journal is to be committed once no staged write or flush is in flight; new writes
    /// wait. `noRoom`: the catch-up outgrew the journal (the copy is Inconsistent from the
    /// commit on).
    case draining(noRoom: Bool)
    /// The commit record is being stored.
    case committing(noRoom: Bool)
    /// A consistency group's member, drained: the journal is whole and waits for the group's
    /// decision to commit (`.groupCommitDecided`; docs/groups.md, *Catch-up*). New writes wait.
    case awaitingGroup
    /// The driver applies the journal to the volume.
    case applying(noRoom: Bool)
    /// The record that forgets the journal is being stored.
    case clearing
}

/// The staging state of a SecondaryNode (stored in it as one value).
struct SecondaryStaging: Sendable {
    var phase = StagingPhase.off
    /// Where the next record goes in the journal.
    var endBytes: UInt64 = 0
    var writesInFlight = 0
    var flushInFlight = false
    /// The journal's end after the last staged write of each epoch not yet recorded durable,
    /// oldest first (bounded by the epochs the machine has in flight).
    var epochEnds: [(epoch: Epoch, endBytes: UInt64)] = []
    /// The primary demoted for a planned failover while a commit was under way: the answer
    /// waits until the journal is applied and forgotten (or the disk fails).
    var failoverAnswerHeld = false
    /// The journal applied was a no-room commit's: while its record is being forgotten
    /// (`clearing`) the volume holds part of the catch-up, not a consistent image.
    var appliedNoRoom = false
    /// Verify's digest reads asked while a commit or apply is under way: the volume is not yet
    /// the image the primary verifies against, so they are read once the journal is forgotten.
    var digestsHeld: [(offsetBytes: UInt64, lengthBytes: UInt64)] = []
    /// A group member's catch-up is whole (its primary's SyncComplete came while staging): the
    /// journal waits for the group's other members, the stream still goes to it.
    var catchUpComplete = false
    /// The sequence that SyncComplete named: the catch-up is whole once the journal holds
    /// every write through it.
    var catchUpThroughSequence: WriteSequence = 0
    /// The drain under way is the group's (it ends in `awaitingGroup`, not in the commit).
    var groupDrain = false
    /// The group decided to commit this journal (durably): the volume's image is the
    /// catch-up's from now on, a crash rolls it forward.
    var groupDecided = false

    init(record: ReplicationRecord) {
        guard let staged = record.staging else { return }
        precondition(!staged.committed, "a committed journal is applied before the node starts")
        phase = .staging
        endBytes = staged.journalBytes
    }

    /// New writes and flushes wait (for the commit and the apply).
    var holds: Bool {
        switch phase {
        case .off, .staging: return false
        case .draining, .committing, .awaitingGroup, .applying, .clearing: return true
        }
    }

    /// The volume still holds a consistent image (the one before the catch-up, or the
    /// committed journal that a crash would replay).
    var keepsConsistent: Bool {
        switch phase {
        case .off: return false
        case .staging, .awaitingGroup: return true
        case .clearing: return !appliedNoRoom
        case .draining(let noRoom), .committing(let noRoom), .applying(let noRoom): return !noRoom
        }
    }
}

extension SecondaryNode {
    public var isStaging: Bool { staging.phase != .off }

    /// The copy says Consistent for a catch-up it stages (or will, once the session proves
    /// itself) that is not complete: it lacks that catch-up, so it must not take over as the
    /// holder of every write in a planned failover (the primary's drain does not wait for a
    /// copy).
    var stagesIncompleteCatchUp: Bool {
        if staging.phase == .staging { return true }
        guard let unproven, confirmedThrough == nil else { return false }
        return willStage(replacedConsistent: unproven.machine.isConsistent || consistentAtRest)
    }

    /// Journal bytes staged so far (status).
    public var stagedBytes: UInt64 { staging.phase == .off ? 0 : staging.endBytes }

    /// A session that now writes: whether it stages. A catch-up continues a journal already
    /// in use; it begins one only on a copy that is synced and consistent (a full copy, a
    /// restarted copy or one already Inconsistent has no image worth keeping).
    mutating func stageIfCatchingUp(previous: ReplicationRecord, previousConsistent: Bool,
                                    into actions: inout [SecondaryNodeAction]) {
        staging.epochEnds.removeAll()  // the new session's epochs start afresh
        staging.catchUpComplete = false  // a new session's catch-up is whole at its own SyncComplete
        if record.staging != nil {
            guard pendingCatchUp else {
                // A full copy replaces the staged catch-up: it writes in place from now on.
                record.staging = nil
                staging = SecondaryStaging(record: record)
                return
            }
            return actions.append(.beginStaging(session: record.staging!.session, journalBytes: staging.endBytes))
        }
        guard willStage(replacedConsistent: previousConsistent, record: previous) else { return }
        record.staging = StagedCatchUp(session: session, fromSession: previous.session,
                                       fromDurableEpoch: previous.durableThroughEpoch,
                                       fromContinuedFrom: previous.continuedFrom)
        staging.phase = .staging
        staging.endBytes = 0
        actions.append(.beginStaging(session: session, journalBytes: 0))
    }

    /// Whether the accepted session, a catch-up, begins a journal on this copy (before it
    /// proves itself, the copy is reported as what it will stay: Consistent).
    func willStage(replacedConsistent: Bool, record: ReplicationRecord? = nil) -> Bool {
        pendingCatchUp && config.stagingBytesMax > 0 && diskFault == nil && replacedConsistent
            && Self.isSynced(record: record ?? self.record, initialSync: config.initialSync)
    }

    /// The next held write, or one the machine submits, goes to the journal or the volume.
    mutating func route(_ write: SecondaryWrite, into actions: inout [SecondaryNodeAction]) {
        guard staging.phase == .staging else {
            consistentAtRest = false  // the volume changes: a clean stop's image no longer holds
            volumeWritesSubmitted &+= 1  // a group's image check (ConsistencyGroup+CatchUp)
            return actions.append(.submitWrite(write))
        }
        let offset = staging.endBytes
        staging.endBytes += StagingJournalRecord.recordBytes(lengthBytes: write.lengthBytes)
        staging.writesInFlight += 1
        if let last = staging.epochEnds.last, last.epoch == write.epoch {
            staging.epochEnds[staging.epochEnds.count - 1].endBytes = staging.endBytes
        } else {
            staging.epochEnds.append((write.epoch, staging.endBytes))
        }
        actions.append(.stageWrite(write, journalOffsetBytes: offset))
    }

    func hasRoom(for write: SecondaryWrite) -> Bool {
        staging.endBytes + StagingJournalRecord.recordBytes(lengthBytes: write.lengthBytes) <= config.stagingBytesMax
    }

    mutating func routeFlush(into actions: inout [SecondaryNodeAction]) {
        guard staging.phase == .staging else { return actions.append(.submitFlush) }
        staging.flushInFlight = true
        actions.append(.flushStaging)
    }

    /// The journal bytes a durable record through `epoch` may claim.
    mutating func noteDurable(_ epoch: Epoch) {
        guard staging.phase != .off, record.staging != nil else { return }
        var end = record.staging!.journalBytes
        while let first = staging.epochEnds.first, first.epoch <= epoch {
            end = max(end, first.endBytes)
            staging.epochEnds.removeFirst()
        }
        record.staging!.journalBytes = end
    }

    /// A staged write or flush ended (the caller feeds the machine).
    mutating func stagedIOEnded(write: Bool) {
        if write, staging.writesInFlight > 0 { staging.writesInFlight -= 1 }
        if !write { staging.flushInFlight = false }
    }

    /// The catch-up is complete (SyncComplete) or the journal is full: commit what is staged.
    mutating func beginCommit(noRoom: Bool, writeBytes: UInt64, into actions: inout [SecondaryNodeAction]) {
        guard staging.phase == .staging else { return }
        staging.phase = .draining(noRoom: noRoom)
        if noRoom {
            actions.append(.notice(.catchUpInconsistent(stagedBytes: staging.endBytes, writeBytes: writeBytes,
                                                        stagingBytesMax: config.stagingBytesMax)))
        }
        continueStaging(into: &actions)
    }

    /// Moves a commit on once what it waits for is done. A stop (a promotion) does not halt
    /// it: the primary called this copy UpToDate at SyncComplete, so the drain that follows
    /// still ends in the commit record, and the promotion applies the journal (StagingSettlement).
    mutating func continueStaging(into actions: inout [SecondaryNodeAction]) {
        guard case .draining(let noRoom) = staging.phase, staging.writesInFlight == 0, !staging.flushInFlight,
            diskFault == nil
        else { return }
        if staging.groupDrain {
            // A group member: the journal is whole; the group decides when it commits.
            staging.groupDrain = false
            staging.phase = .awaitingGroup
            return
        }
        // Everything staged is complete: the whole journal is a prefix of the stream (a
        // subset of its last epoch at most), which the commit makes durable with the record.
        record.staging!.journalBytes = staging.endBytes
        record.staging!.committed = true
        if !noRoom {
            record.synced = true
            record.promotedInconsistent = false
        }
        staging.phase = .committing(noRoom: noRoom)
        record.generation += 1
        actions.append(.commitStaging(record))
    }

    /// A stored record moves the commit on: committed → apply; forgotten → writes go on.
    mutating func stagingRecorded(_ stored: ReplicationRecord, into actions: inout [SecondaryNodeAction]) {
        switch staging.phase {
        case .committing(let noRoom):
            guard let staged = stored.staging, staged.committed else { return }
            staging.phase = .applying(noRoom: noRoom)
            actions.append(.applyStaging(journalBytes: staged.journalBytes))
        case .clearing:
            guard stored.staging == nil else { return }
            let answerHeld = staging.failoverAnswerHeld
            let digests = staging.digestsHeld
            staging = SecondaryStaging(record: stored)
            releaseHeld(into: &actions)
            for digest in digests { actions.append(.readForDigest(offsetBytes: digest.offsetBytes, lengthBytes: digest.lengthBytes)) }
            if answerHeld { actions.append(.failoverAnswered(demoted: true)) }
        case .off, .staging, .draining, .awaitingGroup, .applying:
            return
        }
    }

    /// The link ended: digest reads held for it are not answered.
    mutating func dropHeldDigests() {
        for digest in staging.digestsHeld {
            if let index = digestRegionsInFlight.firstIndex(of: digest.offsetBytes) { digestRegionsInFlight.remove(at: index) }
        }
        staging.digestsHeld.removeAll()
    }

    /// The driver applied the journal and flushed the volume.
    mutating func stagingApplied(errno: Int32, nowNs: UInt64, into actions: inout [SecondaryNodeAction]) {
        guard case .applying(let noRoom) = staging.phase else { return }
        guard errno == 0 else {
            return fail(SecondaryDiskFault(operation: "staging apply", errno: errno), nowNs: nowNs, into: &actions)
        }
        actions.append(.notice(.stagingApplied(bytes: record.staging?.journalBytes ?? 0)))
        record.staging = nil
        staging.phase = .clearing
        staging.appliedNoRoom = noRoom
        writeRecord(into: &actions)
    }

    /// What waited for the session's record or a commit goes on, in order.
    mutating func releaseHeld(into actions: inout [SecondaryNodeAction]) {
        guard diskFault == nil else {
            heldWrites.removeAll()
            flushHeld = false
            return
        }
        guard !awaitingSessionRecord, !staging.holds else { return }
        while let first = heldWrites.first {
            if staging.phase == .staging, !hasRoom(for: first) {
                let bytes = StagingJournalRecord.recordBytes(lengthBytes: first.lengthBytes)
                return beginCommit(noRoom: true, writeBytes: bytes, into: &actions)
            }
            route(heldWrites.removeFirst(), into: &actions)
        }
        if flushHeld {
            flushHeld = false
            routeFlush(into: &actions)
        }
    }

}

extension SecondaryNode {
    /// What this copy's volume holds, if it is consistent: during a staged catch-up the image
    /// from before it (the record's `from…`), once the commit record is stable the catch-up's
    /// (a crash replays it), otherwise the record's session and durable epoch.
    public var consistentAsOf: ConsistentPoint? {
        guard diskFault == nil else { return nil }
        if let staged = record.staging, staging.phase != .off {
            guard staging.keepsConsistent else { return nil }
            switch staging.phase {
            case .off, .staging, .draining, .committing, .awaitingGroup:
                // The commit record is not stable yet: a crash would keep staging (a group's
                // decision rolls it forward, but names no epoch of this member's).
                return ConsistentPoint(session: staged.fromSession, epoch: staged.fromDurableEpoch)
            case .applying, .clearing:
                return recordedPoint
            }
        }
        guard diskState != .inconsistent, diskState != .failed, record.session != 0 else { return nil }
        return recordedPoint
    }

    /// The record's point, with the primary's time of it when one was stamped.
    private var recordedPoint: ConsistentPoint {
        ConsistentPoint(session: record.session, epoch: record.durableThroughEpoch,
                        wallClockNs: record.consistentAsOfNs == 0 ? nil : record.consistentAsOfNs)
    }
}
