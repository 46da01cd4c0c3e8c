// Resource's resolve by the union of both bitmaps: what the loser keeps and sends, what the
// survivor's session starts from (and, after a stop in order or a crash, resumes from: what
// was left of the union, kept in `<name>.union-resync`), and the status and events that say
// which way it went (Resource+SplitBrainResync describes the whole). Loop thread only.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import TandemControl
import TandemCore
import TandemIO

extension Resource {
    // MARK: the loser

    /// Before the loser's generation changes: keep its set for the survivor. False when it
    /// has none (the survivor then copies the whole volume).
    func keepChangesForSurvivor() -> Bool {
        let parting = generations.bitmap
        let (bitmap, lostReason) = ownChangesSinceParting()
        guard parting != 0, bitmap != nil else {
            logger.notice("the loser keeps no bitmap since parting: the survivor copies the whole volume",
                          metadata: ["reason": "\(parting == 0 ? "no generation since parting" : lostReason)"])
            endPartedTracking()
            return false
        }
        splitBrainResync.victimPartingGeneration = parting
        persistPartedBitmap()
        return true
    }

    /// The survivor's Hello asks for this node's set (flag `split-brain-resync`): the frames
    /// to send before the ReplicaHello, or the reason to refuse (`unrelated-data`). Nil
    /// frames and nil reason: not asked.
    func victimBitmapFrames(for hello: WireHello) -> (frames: [WireMessage]?, refusal: String?) {
        guard let node = hello.node, node.flags.contains(.splitBrainResync) else { return (nil, nil) }
        let parting = splitBrainResync.victimPartingGeneration
        guard spec.role == .secondary, parting != 0, let parted = splitBrainResync.parted else {
            return (nil, "this node keeps no bitmap of its changes since the split brain "
                + "(\(splitBrainResync.lostReason.isEmpty ? "none was kept" : splitBrainResync.lostReason)): copy the whole volume")
        }
        guard node.bitmap == parting else {
            return (nil, "this node's changes are counted since another generation than the survivor's: copy the whole volume")
        }
        return (parted.bitmapExchangeMessages(), nil)
    }

    // MARK: the survivor

    /// At the survivor's resolve, before its session starts: what it changed since parting.
    /// `returnedPrimary`: the peer is a returned primary (Resource+ReturnedPrimary).
    func prepareSurvivorResync(returnedPrimary: Bool = false) {
        let (own, lostReason) = ownChangesSinceParting()
        splitBrainResync.survivor = SurvivorResync(partingGeneration: generations.bitmap, own: own, lostReason: lostReason)
        splitBrainResync.survivor!.returnedPrimary = returnedPrimary
        splitBrainResync.lastReport = nil
    }

    /// The survivor's session is made (a full copy for the loser): restrict its copy to the
    /// union, or say now that it copies everything. A union resync stopped in order resumes
    /// with what was left of it.
    func beginSurvivorResync(_ replicator: PrimaryReplicator, basis: SessionBasis) {
        if let left = splitBrainResync.resumed { return resumeSurvivorResync(replicator, basis: basis, left: left) }
        guard var survivor = splitBrainResync.survivor, survivor.plan == nil else { return }
        listenForResyncPlan(replicator)
        guard basis == .fullCopy else { return }
        // This side's facts only (the peer's version and parting generation are checked
        // when its Hello arrives, PrimaryReplicator.checkPeerCanUnite).
        let plan = SplitBrainResync.plan(survivor: PartedChanges(partingGeneration: survivor.partingGeneration,
                                                                 bitmap: survivor.own, lostReason: survivor.lostReason),
                                         peerHelloVersion: WireFormat.helloVersion,
                                         victimPartingGeneration: survivor.partingGeneration)
        guard plan == .union, let own = survivor.own else {
            survivor.plan = plan
            splitBrainResync.survivor = survivor
            return survivorResyncDecided(plan, set: nil, exchangeBytes: 0)
        }
        replicator.beginSplitBrainResync(own: own, partingGeneration: survivor.partingGeneration,
                                         comparePeerSet: survivor.returnedPrimary)
        // Checkpointed from here, before the loser's set comes (the file says it is still to
        // come): a crash in between resumes this side and asks the loser again (UnionResume).
        startUnionCheckpoints(replicator)
    }

    private func listenForResyncPlan(_ replicator: PrimaryReplicator) {
        splitBrainResync.lastSession = replicator.session
        replicator.onSplitBrainResync = { [unowned self, unowned replicator] plan, set, exchangeBytes in
            survivorResyncDecided(plan, set: set, exchangeBytes: exchangeBytes)
            guard plan == .union else { return removeUnionLeftFile() }
            if let set, splitBrainResync.survivor?.returnedPrimary == true { keepReturnedCompareSet(set) }
            // The union is known: checkpointed now with it, before a chunk is read.
            splitBrainResync.checkpointProgress = nil
            checkpointUnionResync(replicator)
        }
    }

    /// A union to checkpoint: false once decided, true while it waits for the loser's set
    /// (`asksForPeerBitmap`; the file then says so); nil when there is none.
    private var survivorUnionPending: Bool? {
        if splitBrainResync.survivor?.plan == .union { return false }
        return asksForPeerBitmap ? true : nil
    }

    // MARK: the survivor's resync across a stop or a crash

    static func unionResyncPath(stateDir: String, name: String) -> String { "\(stateDir)/\(name).union-resync" }
    var unionResyncPath: String { Self.unionResyncPath(stateDir: context.config.stateDir, name: spec.name) }

    /// The survivor's session stopped flushed: the bitmap it sealed (what is left of the copy,
    /// and every write or chunk the peer had not confirmed, marked again) is the next session's
    /// copy (in memory, and in `<name>.union-resync` for a restart; the parted bitmap's
    /// layout). A stop that could not seal one leaves the last checkpoint (below), which a
    /// restart reads as after a crash.
    func keepUnionLeft(_ left: DirtyBitmap) {
        guard let pending = survivorUnionPending else { return }
        logger.notice("the split-brain resync stopped: the next session copies what is left of it",
                      metadata: ["left_bytes": "\(left.outOfSyncBytes)", "peer_set_pending": "\(pending)"])
        splitBrainResync.resumed = left
        splitBrainResync.resumedAsksPeerSet = pending
        splitBrainResync.resumedReturnedPrimary = pending && splitBrainResync.survivor?.returnedPrimary == true
        splitBrainResync.resumedAtMutation = mutationCount
        splitBrainResync.checkpointProgress = nil
        persistUnionLeft()
    }

    /// A union resync under way keeps a checkpoint of what is left of it in the same file, so
    /// that a crash (kill -9, power loss) resumes it: taken when its session starts (before the
    /// loser's set came: then the file says the set is still to come, and holds this side's
    /// changes and writes), again when the union is known (before a chunk is read), then at each
    /// tick the copy moved (at most once a second: a durable write of the set's runs). What a
    /// checkpoint holds is the copy's blocks not yet admitted and every write and chunk the
    /// peer had not confirmed; anything the peer lacks
    /// at a crash beyond it was written after it, and the activity log names its extents. So
    /// only a session with a log keeps one; without, a crash copies the whole volume (said
    /// here). Any checkpoint of the session is a superset: a failed write keeps the last.
    private func startUnionCheckpoints(_ replicator: PrimaryReplicator) {
        splitBrainResync.checkpointProgress = nil
        splitBrainResync.checkpointLeftBytes = nil
        guard replicator.hasActivityLog else {
            removeUnionLeftFile()
            return logger.notice("the union resync keeps no checkpoint without an activity log (al_extents 0): a crash before it ends copies the whole volume")
        }
        replicator.onSplitBrainTick = { [unowned self, unowned replicator] in checkpointUnionResync(replicator) }
        // A stop record clears `crashed-primary`, after which a restart would read a running
        // checkpoint as a stop's seal, without the extents: a stop that sealed nothing
        // (keepUnionLeft did not run) removes it first, and the next session copies all.
        let recorded = replicator.onStopRecorded
        replicator.onStopRecorded = { [unowned self] value in
            if splitBrainResync.resumed == nil {
                splitBrainResync.checkpointProgress = nil
                splitBrainResync.checkpointLeftBytes = nil
                removeUnionLeftFile()
            }
            recorded?(value)
        }
        checkpointUnionResync(replicator)
    }

    private func checkpointUnionResync(_ replicator: PrimaryReplicator) {
        guard let pending = survivorUnionPending, splitBrainResync.resumed == nil,
            replicator.session == splitBrainResync.lastSession, generations.bitmap != 0, replicator.hasActivityLog
        else { return }
        let progress = replicator.copyProgress
        guard progress != splitBrainResync.checkpointProgress else { return }
        let left = replicator.copyLeftWithHeld
        let returned = pending && splitBrainResync.survivor?.returnedPrimary == true
        do throws(ResourceStoreError) {
            try PartedBitmapFile.write(PartedBitmap(partingGeneration: generations.bitmap, bitmap: left,
                                                    peerSetPending: pending, returnedPrimary: returned), to: unionResyncPath)
            splitBrainResync.checkpointProgress = progress
            splitBrainResync.checkpointLeftBytes = left.outOfSyncBytes
        } catch {
            // The last checkpoint (or none) stays: still a superset of what the peer lacks.
            logger.warning("the union resync's checkpoint could not be written: a crash resumes from the last one",
                           metadata: ["error": "\(error)"])
        }
    }

    /// Writes the union left to its file while no write came since it was taken; removes the
    /// file (and forgets the set) once one did.
    func persistUnionLeft() {
        guard let left = splitBrainResync.resumed else { return }
        guard mutationCount == splitBrainResync.resumedAtMutation, generations.bitmap != 0 else {
            splitBrainResync.resumed = nil
            return removeUnionLeftFile()
        }
        do throws(ResourceStoreError) {
            try PartedBitmapFile.write(PartedBitmap(partingGeneration: generations.bitmap, bitmap: left,
                                                    peerSetPending: splitBrainResync.resumedAsksPeerSet,
                                                    returnedPrimary: splitBrainResync.resumedReturnedPrimary),
                                       to: unionResyncPath)
        } catch {
            logger.warning("what is left of the split-brain resync could not be kept: a restart copies the whole volume",
                           metadata: ["error": "\(error)"])
        }
    }

    func removeUnionLeftFile() {
        removeReturnedCompareSetFile()
        guard access(unionResyncPath, F_OK) == 0 else { return }
        do throws(ResourceStoreError) { try PartedBitmapFile.remove(unionResyncPath) } catch {
            logger.error("removing the split-brain resync's file failed", metadata: ["error": "\(error)"])
        }
    }

    /// At open: a survivor whose union resync stopped (in order, or by a crash: the record's
    /// `crashed-primary`) takes up what was left, as UnionResume decides: if nothing was
    /// written since (its generation still the parting one, the peer still lacking writes, no
    /// write while disabled); after a crash with the activity log's extents (the writes after
    /// the last checkpoint), the file rewritten with them before anything else (the next
    /// session's first transaction no longer names them); a file whose loser's set never came
    /// asks the loser for it again. The file stays until the resync ends.
    func loadUnionLeftAtOpen() {
        guard access(unionResyncPath, F_OK) == 0 else { return }
        var file: PartedBitmap?
        var fileProblem = ""
        do throws(ResourceStoreError) {
            file = try PartedBitmapFile.load(from: unionResyncPath, volumeSizeBytes: volume.sizeBytes,
                                            localBlockBytes: UInt64(metadata.latest.bitmapBlockBytes))
            if file == nil { fileProblem = "it is gone" }
        } catch {
            fileProblem = "\(error)"
        }
        let node = metadata.latest
        let crashed = node.flags.contains(.crashedPrimary)
        let log: (regions: [ActivityLog.Region]?, problem: String) = crashed && file != nil
            ? activityLogRegionsAfterCrash() : (nil, "")
        let plan = UnionResume.decide(UnionResumeFacts(
            file: file, fileProblem: fileProblem, isPrimary: spec.role == .primary, peerLacksWrites: node.peerLacksWrites,
            writtenWhileDisabled: node.writtenWhileDisabled, partingGeneration: generations.bitmap, crashed: crashed,
            activityLogRegions: log.regions, activityLogProblem: log.problem))
        guard case let .resume(left, afterCrash, asksPeerSet, returnedPrimary) = plan else {
            if case let .fullCopy(reason) = plan { logger.error("\(reason)") }
            return removeUnionLeftFile()
        }
        if afterCrash {
            do throws(ResourceStoreError) {
                try PartedBitmapFile.write(PartedBitmap(partingGeneration: generations.bitmap, bitmap: left,
                                                        peerSetPending: asksPeerSet, returnedPrimary: returnedPrimary),
                                           to: unionResyncPath)
            } catch {
                logger.error("what is left of the split-brain resync could not be kept with the activity log's extents: the whole volume is copied",
                             metadata: ["error": "\(error)"])
                return removeUnionLeftFile()
            }
            logger.notice("the union resync resumes after a crash: what its last checkpoint left and the activity log's extents",
                          metadata: ["left_bytes": "\(left.outOfSyncBytes)", "peer_set_pending": "\(asksPeerSet)"])
        }
        splitBrainResync.resumed = left
        splitBrainResync.resumedAtMutation = mutationCount
        splitBrainResync.resumedAfterCrash = afterCrash
        splitBrainResync.resumedAsksPeerSet = asksPeerSet
        splitBrainResync.resumedReturnedPrimary = returnedPrimary
        // A compare set is written once the union is known: none is owed while the set is not.
        if asksPeerSet { removeReturnedCompareSetFile() }
        splitBrainResync.resumedCompareSet = asksPeerSet ? nil : loadReturnedCompareSetAtOpen()
        resolvingAsSurvivor = true
    }

    /// After a crash: the regions of the activity log's newest transaction (every extent a
    /// write the peer may lack could be in), or why the ring proves none.
    private func activityLogRegionsAfterCrash() -> (regions: [ActivityLog.Region]?, problem: String) {
        let proven: Result<ActivityLogTransaction?, ActivityLogRing.ProofError>
        do throws(IOError) { proven = try metadata.readActivityLog() } catch {
            return (nil, "it cannot be read: \(error)")
        }
        guard case .success(let transaction?) = proven else { return (nil, "no transaction is proven") }
        let node = metadata.latest
        return (ActivityLog.dirtyRegions(afterCrash: transaction.extents, extentBytes: UInt64(node.alExtentBytes),
                                         volumeSizeBytes: volume.sizeBytes), "")
    }

    /// The session after a stop or a crash: the copy covers what was left (the peer is not
    /// asked again when its changes are in it; it is when its set never came), and checkpoints
    /// go on; after a write since, or for a session that is no full copy, the plan says why
    /// the whole volume is copied.
    private func resumeSurvivorResync(_ replicator: PrimaryReplicator, basis: SessionBasis, left: DirtyBitmap) {
        let unchanged = mutationCount == splitBrainResync.resumedAtMutation && generations.bitmap != 0
        let afterCrash = splitBrainResync.resumedAfterCrash
        let asksPeerSet = splitBrainResync.resumedAsksPeerSet
        // A returned primary's resync stays one, with its compare (Resource+ReturnedPrimaryResume).
        let compareSet = splitBrainResync.survivor?.compareSet ?? splitBrainResync.resumedCompareSet
        let returnedPrimary = splitBrainResync.survivor?.returnedPrimary
            ?? (compareSet != nil || splitBrainResync.resumedReturnedPrimary)
        splitBrainResync.resumed = nil
        splitBrainResync.resumedAfterCrash = false
        splitBrainResync.resumedAsksPeerSet = false
        splitBrainResync.resumedReturnedPrimary = false
        splitBrainResync.resumedCompareSet = nil
        splitBrainResync.lastReport = nil
        var survivor = SurvivorResync(partingGeneration: generations.bitmap, own: asksPeerSet ? left : nil,
                                      lostReason: afterCrash ? "resumed after a crash" : "resumed after a stop")
        survivor.returnedPrimary = returnedPrimary
        survivor.compareSet = compareSet
        survivor.resumedLeftBytes = left.outOfSyncBytes
        survivor.resumedAfterCrash = afterCrash
        survivor.asksPeerSetAgain = asksPeerSet
        splitBrainResync.survivor = survivor
        listenForResyncPlan(replicator)
        guard basis == .fullCopy, unchanged else {
            removeUnionLeftFile()
            guard basis == .fullCopy else { return }
            return survivorResyncDecided(.fullCopy(reason: "the union resync stopped, and this node wrote before it "
                + "resumed: the whole volume is copied"), set: nil, exchangeBytes: 0)
        }
        if asksPeerSet {
            // Decided when the loser's set comes (or cannot: then a full copy, said then).
            replicator.beginSplitBrainResync(own: left, partingGeneration: generations.bitmap, comparePeerSet: returnedPrimary)
        } else {
            replicator.resumeSplitBrainResync(remaining: left, compareSet: compareSet)
            survivorResyncDecided(.union, set: nil, exchangeBytes: 0)
        }
        startUnionCheckpoints(replicator)
    }

    /// The Hello tail's flag: a survivor whose union is still possible asks for the set.
    var asksForPeerBitmap: Bool {
        guard let survivor = splitBrainResync.survivor else { return false }
        return survivor.plan == nil && survivor.own != nil
    }

    private func survivorResyncDecided(_ plan: SplitBrainResyncPlan, set: SplitBrainResyncSet?, exchangeBytes: UInt64) {
        guard var survivor = splitBrainResync.survivor else { return }
        survivor.plan = plan
        survivor.set = set
        survivor.bitmapExchangeBytes = exchangeBytes
        splitBrainResync.survivor = survivor
        let names = SurvivorResyncNames(returnedPrimary: survivor.returnedPrimary)
        var fields: [String: JSONValue] = ["plan": .string(names.word(plan))]
        switch plan {
        case .union where survivor.resumedLeftBytes != nil:
            fields["reason"] = .string(UnionResume.reason(afterCrash: survivor.resumedAfterCrash,
                                                          askedPeerSet: survivor.asksPeerSetAgain))
            fields["resumed_left_bytes"] = .int(Int64(clamping: survivor.resumedLeftBytes!))
            if survivor.resumedAfterCrash { fields["after_crash"] = .bool(true) }
            if survivor.asksPeerSetAgain { fields["peer_set_asked_again"] = .bool(true) }
        case .union:
            fields["reason"] = .string("both bitmaps since parting are known: only their union is copied")
        case .fullCopy(let reason):
            fields["reason"] = .string(reason)
        }
        if let set {
            fields["local_changed_bytes"] = .int(Int64(clamping: set.survivorChangedBytes))
            fields["peer_changed_bytes"] = .int(Int64(clamping: set.victimChangedBytes))
            fields["union_bytes"] = .int(Int64(clamping: set.unionBytes))
            fields["bitmap_exchange_bytes"] = .int(Int64(clamping: exchangeBytes))
        }
        splitBrainResync.lastReport = fields
        splitBrainResync.lastReportReturnedPrimary = survivor.returnedPrimary
        logger.notice("\(names.logName)", metadata: ["plan": "\(names.word(plan))", "reason": "\(fields["reason"]!)"])
        context.events.publish(resource: spec.name, names.event, fields)
    }

    /// The survivor's peer holds everything: the resync is over (status keeps its report,
    /// with the bytes the copy moved).
    func survivorResyncEnded(movedBytes: UInt64) {
        guard splitBrainResync.survivor != nil else { return }
        splitBrainResync.survivor = nil
        splitBrainResync.resumed = nil
        splitBrainResync.checkpointProgress = nil
        splitBrainResync.checkpointLeftBytes = nil
        removeUnionLeftFile()
        splitBrainResync.lastReport?["moved_bytes"] = .int(Int64(clamping: movedBytes))
        splitBrainResync.lastReport?["done"] = .bool(true)
    }

    /// Status: `split_brain_resync` (the running or last resync), the set since parting
    /// (`mergePartedStatus`) and, in a split brain, `out_of_sync_bytes`.
    func mergeSplitBrainResyncStatus(into fields: inout [String: JSONValue]) {
        if var report = splitBrainResync.lastReport {
            if report["done"] == nil, let primary { report["moved_bytes"] = .int(Int64(clamping: primary.copiedBytes)) }
            if report["done"] == nil, let left = splitBrainResync.checkpointLeftBytes {
                report["checkpoint_left_bytes"] = .int(Int64(clamping: left))
            }
            let names = SurvivorResyncNames(returnedPrimary: splitBrainResync.lastReportReturnedPrimary)
            fields[names.statusKey] = .object(report)
            // The loser takes the session as a full copy; what moves is the union.
            if report["plan"] == .string(names.word(.union)), let primary,
                primary.session == splitBrainResync.lastSession {
                fields["session_start"] = .string(names.sessionStart)
                fields["session_start_reason"] = .string(names.sessionStartReason)
            }
        }
        mergePartedStatus(into: &fields)
    }

    /// `parted_bytes` (the regions written since parting, by block: exactly those while the
    /// node has run since; after a restart the file's cover), or `parted_lost_reason` when a
    /// parted primary keeps no set; the parted-bitmap file's write-ahead counters. And, on a
    /// primary in a split brain with no session running (StandAlone, disabled, restarted),
    /// `out_of_sync_bytes` and `lag_bytes`: what this node has that its peer lacks — its
    /// changes since parting, the same set as `parted_bytes`; the whole volume when that set is lost (a
    /// resolve that keeps this side then copies every block). Not the tracked bitmap of the
    /// session the detection stopped: no session catches up from it in a split brain (the
    /// resolve decides), and a crash does not keep it. docs/control-protocol.md.
    private func mergePartedStatus(into fields: inout [String: JSONValue]) {
        let parted = splitBrainResync.parted
        if let parted {
            fields["parted_bytes"] = .int(Int64(clamping: parted.outOfSyncBytes))
        } else if spec.role == .primary, metadata.latest.bitmapGeneration != 0, !splitBrainResync.lostReason.isEmpty {
            fields["parted_lost_reason"] = .string(splitBrainResync.lostReason)
        }
        if spec.role == .primary {
            fields["parted_file_writes"] = .int(Int64(clamping: splitBrainResync.fileWrites))
            fields["parted_held_writes"] = .int(Int64(clamping: splitBrainResync.heldWrites))
        }
        guard splitBrain != nil, spec.role == .primary, primary == nil else { return }
        let apartBytes = Int64(clamping: parted?.outOfSyncBytes ?? volume.sizeBytes)
        fields["out_of_sync_bytes"] = .int(apartBytes)
        fields["lag_bytes"] = .int(apartBytes)  // what a failover to the peer would lose: the same set
    }
}
