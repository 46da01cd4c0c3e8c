// The replication side of a Resource: enable/disable, planned and forced failover, demote,
// and role changes. What each transition decides (preconditions, refusals, session start,
// records) is TandemCore's `ResourceRoles`; this file carries it out: it stops and starts
// replicators, changes roles, persists records and publishes events. Loop thread only;
// every transition ends in `done` with nil or an error.
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO

extension Resource {
    /// What a stopped secondary's record says about its volume (ResourceRoles).
    var secondaryDiskStateAtRest: DiskState {
        DiskState.ofSecondaryAtRest(record: record, initialSync: spec.initialSync,
                                    stoppedCleanly: metadata.latest.flags.contains(.secondaryCleanStop))
    }

    /// The Hello of the primary this secondary is connected to now (failover's generation check).
    private var connectedPrimaryHello: WireHello? {
        guard let secondary, secondary.isConnectedToPeer else { return nil }
        return secondary.acceptedPrimaryHello
    }

    /// This node's own copy as it stands (promotion checks).
    private var ownDiskState: DiskState { reportedDiskStates.diskState }

    var roleFacts: ResourceRoleFacts {
        ResourceRoleFacts(name: spec.name, role: spec.role, enabled: enabled, transitioning: transitioning,
                          acknowledgedOnlyInMemoryBytes: primary?.peekNode { $0.acknowledgedOnlyInMemoryBytes } ?? 0)
    }

    /// `handedOver`: set only by a planned failover (the old primary handed over every
    /// write); otherwise the record and the spec decide (`PrimaryStart`).
    func enable(handedOver: Bool = false) throws(ControlError) {
        if let refusal = ResourceRoles.checkEnable(roleFacts) { throw ControlError(refusal) }
        // Enabling is how the operator says the disk is fixed: it is used again.
        health.clear()
        backend.refusesMutations = false
        peerDiskFailure = nil
        try reopenMetadataIfFailed()
        try startReplication(handedOver: handedOver)
        refusalError = nil
        enabled = true
        writeEnabled(true)
        context.events.publish(resource: spec.name, "enabled", ["role": .string(spec.role.rawValue)])
    }

    func startReplication(handedOver: Bool) throws(ControlError) {
        switch spec.role {
        case .primary:
            try startPrimary(handedOver: handedOver)
        case .secondary:
            _ = try context.serverConnection()
            adoptResizedSize()
            let cleanStop = takeSecondaryCleanStop()
            secondary = try SecondaryReplicator(spec: spec, volume: volume, context: context, counters: counters,
                                                health: health, metadataFile: metadata, logger: logger,
                                                handedOver: demotedInProcess, cleanStop: cleanStop)
            demotedInProcess = false
            secondary?.onUpToDate = { [unowned self] hello in adoptPrimaryGeneration(hello) }
            secondary?.onPrimaryAccepted = { [unowned self] hello in primaryAccepted(hello) }
            secondary?.splitBrainBitmapFrames = { [unowned self] hello in victimBitmapFrames(for: hello) }
            secondary?.helloGenerations = { [unowned self] in helloGenerations }
            secondary?.onResizeRequested = { [unowned self] request, answer in peerAskedResize(request, answer) }
            secondary?.onLinkClosed = { [unowned self] in restartSecondaryIfResized() }
            if let secondary { context.groups.addSecondary(secondary) }  // consistency group
            backend.readOnly = true
        case .standalone:
            preconditionFailure("standalone resources do not replicate")
        }
    }

    /// Decides the session's start from the record (PrimaryStart), persists the record it
    /// says, and starts the replicator.
    private func startPrimary(handedOver: Bool) throws(ControlError) {
        _ = try context.clientConnection(peerName: spec.peer!.name)  // fail early on bad TLS config
        if let failure = health.failure {
            let what = failure.operation.hasPrefix("metadata") ? "replication metadata" : "this node's disk failed"
            throw ControlError(.ioError, "\(what): \(failure.operation): \(failure.message)")
        }
        try context.groups.reserveEpochs(for: spec)  // consistency group: numbers above the last run's
        // The facts come from the record: the flags persist what a restart would otherwise
        // forget; writes while disabled in this process are also counted.
        let node = metadata.latest
        let tracked = trackedForStart()
        let facts = PrimaryStartFacts(
            record: node.record, initialSync: spec.initialSync, handedOver: handedOver,
            peerLacksWrites: node.peerLacksWrites,
            writtenWhileDisabled: node.writtenWhileDisabled || mutationsAtCleanStop.map { $0 != mutationCount } ?? false,
            tracked: tracked?.bases, trackedAfterCrash: tracked?.fromCrash ?? false)
        var startFacts = facts
        startFacts.trackedIsEmpty = tracked?.bitmap.outOfSyncBytes == 0
        startFacts.localLacksWrites = node.flags.contains(.localLacksWrites)  // diskless (Resource+Diskless)
        let lackingRecord = startFacts.localLacksWrites ? lackingRecordAtStart() : .flagOnly  // Resource+DisklessRegions
        var lackingRegionsProven = false
        if case .regions = lackingRecord { lackingRegionsProven = true }
        let start = PrimaryStart(startFacts)
        // The ring's session-start transaction goes before the record that sets crashed-primary.
        let writeBytesMax = UInt64(max(Int(context.config.maxRequestBytes), PrimaryReplicator.chunkBytes))
        let activityLog: ActivityLogSettings?
        do throws(IOError) {
            activityLog = try openActivityLog(for: start.basis, tracked: start.basis.isCatchUp ? tracked?.bitmap : nil,
                                              writeBytesMax: writeBytesMax)
        } catch {
            health.record("metadata write", errno: error.errno)
            throw ControlError(.ioError, "replication metadata: cannot write the activity log of \(metadata.path): \(error)")
        }
        let checksumRegions = try compareRegionsForStart(tracked, basis: start.basis)  // Resource+CrashCompare
        mutationsAtCleanStop = nil
        ensurePrimaryGeneration()
        // The node owns the tracked bitmap from now on; the seal goes with this record (a
        // crash before the catch-up ends then copies the volume: nothing is missed).
        guard updateRecord({ $0 = start.record }, also: {
            $0.writtenWhileDisabled = false
            $0.set(.crashedPrimary, true)
            $0.bitmapSealedSequence = 0
            $0.catchUpBases = []
            // Diskless regions: a mark whose pages this start does not use is dropped.
            if !lackingRegionsProven { $0.flags.remove(.localLackingRegions) }
        }) else {
            throw ControlError(.ioError, "replication metadata: cannot write \(metadata.path)")
        }
        trackedSinceStop = nil
        crashAfterStartRecordForTest()  // Resource+CrashCompare
        let replicator = PrimaryReplicator(spec: spec, volume: volume, buffers: backend.buffers, context: context,
                                           basis: start.basis, trackedBitmap: start.basis.isCatchUp ? tracked?.bitmap : nil,
                                           checksumRegions: checksumRegions,
                                           activityLog: activityLog, counters: counters, health: health, logger: logger,
                                           localLacksWrites: startFacts.localLacksWrites, localLacking: takeLackingAtStop(),
                                           localLackingRecord: lackingRecord,
                                           keepsLackingRegions: metadata.latest.placement == .external)
        replicator.node.restorePeerLacksSince(peerLacksSinceNs)
        wireDiskless(replicator)
        replicator.onWriteActivityLog = { [unowned self] number, extents, bases, pagesCount, done in
            writeActivityLog(number, extents: extents, bases: bases, bitmapPagesCount: pagesCount, done: done)
        }
        replicator.onPersistBitmapPages = { [unowned self] bitmap, pages, alsoSet in
            persistActivityLogPages(bitmap, pages: pages, alsoSet: alsoSet)
        }
        replicator.sessionStartReason = start.reason.description
        replicator.onFirstWrite = { [unowned self] in _ = updateRecord { $0 = $0.afterFirstWrite() } }
        replicator.onPersistBitmap = { [unowned self] bitmap, bases in
            persistTrackedBitmap(bitmap, bases: bases)
            keepUnionLeft(bitmap)  // a split brain's survivor resumes its resync (+SplitBrainUnion)
        }
        replicator.onStopRecorded = { [unowned self] value in
            // A recorded stop: the activity log no longer speaks for the volume.
            _ = updateRecord({ $0 = $0.stopped(cleanStop: value) }, also: { $0.set(.crashedPrimary, false) })
            persistChangedBytes()
            if value != 0 {
                // Counted from the stop's start: writes that went around the stopping node
                // cancel this clean stop at the next start, as writes while disabled do.
                mutationsAtCleanStop = trackedWhileStopping?.mutationsAtStart ?? mutationCount
                trackFromCleanStop(value)
            }
            context.events.publish(resource: spec.name, "replication-stopped", ["clean": .bool(value != 0)])
        }
        // What the session has to copy as it starts (a catch-up's dirty regions, a full copy's
        // volume), before any of it went: status shows it shrinking from here.
        let outOfSyncBytes = replicator.node.outOfSyncBytes
        logger.notice("primary session starts", metadata: [
            "session_start": "\(start.basis.word)", "reason": "\(start.reason)", "out_of_sync_bytes": "\(outOfSyncBytes)",
        ])
        context.events.publish(resource: spec.name, "session-start", [
            "session_start": .string(start.basis.word), "reason": .string(start.reason.description),
            "out_of_sync_bytes": .int(Int64(clamping: outOfSyncBytes)),
        ])
        replicator.onFailoverRequested = { [unowned self] in self.plannedDemote() }
        replicator.onPeerDiskFailed = { [unowned self] reason in self.peerDiskFailed(reason) }
        replicator.onLinkConnected = { [unowned self] in peerDiskFailure = nil }
        replicator.onPeerNeedsFullCopy = { [unowned self] reason in self.peerNeedsFullCopy(reason) }
        replicator.onPeerSynced = { [unowned self, unowned replicator] in
            survivorResyncEnded(movedBytes: replicator.copiedBytes)
            if metadata.latest.peerLacksWrites { _ = updateNode { $0.peerLacksWrites = false } }
            peerCaughtUpGeneration()
            primary?.wroteWithoutPeer = false
            resolvingAsSurvivor = false
        }
        replicator.onWriteWithoutPeer = { [unowned self] in startTrackingGeneration() }
        replicator.onPeerUpToDate = { [unowned self] in
            peerCaughtUpGeneration()
            primary?.wroteWithoutPeer = false
        }
        replicator.onBytesWithoutPeer = { [unowned self] bytes in changedBytesWhileParted += bytes }
        replicator.onRegionWithoutPeer = { [unowned self] offset, length in notePartedWrite(offsetBytes: offset, lengthBytes: length) }
        beginSurvivorResync(replicator, basis: start.basis)
        replicator.helloGenerations = { [unowned self] in helloGenerations }
        replicator.judgePrimaryHello = { [unowned self] hello in judgePrimaryHello(hello) }
        replicator.onPrimaryOutcome = { [unowned self] outcome, peer in act(on: outcome, peer: peer) }
        primary = replicator
        backend.readOnly = demotedByPromotion != nil
        backend.sink = replicator
        backend.readRouter = replicator
        context.groups.addPrimary(replicator)  // consistency group (docs/groups.md)
        replicator.enable()
    }

    /// Starts the primary replicator again (after a split brain's verdict).
    func restartPrimaryReplication() throws(ControlError) {
        guard spec.role == .primary, primary == nil else { return }
        try startPrimary(handedOver: false)
    }

    /// Mutations the export has taken (a primary with replication off writes only locally).
    var mutationCount: UInt64 {
        let stats = backend.stats
        return stats.writeRequests + stats.otherRequests
    }

    /// A primary that is not replicating may take local writes the peer never sees: its
    /// record must not promise a clean stop, and writes of an earlier run cannot be counted,
    /// so a primary reopened disabled records `written-while-disabled` (PrimaryStartFacts).
    /// A new resource's writes are counted from 0.
    func prepareRecordAtOpen(creating: Bool) {
        guard spec.role == .primary, !metadata.latest.enabled else { return }
        if creating {
            mutationsAtCleanStop = 0
            return
        }
        if let opened = record.atOpen(role: spec.role, enabled: false) {
            _ = updateRecord({ $0 = opened }, also: { $0.writtenWhileDisabled = true })
        } else if !metadata.latest.writtenWhileDisabled {
            _ = updateNode { $0.writtenWhileDisabled = true }
        }
    }

    /// Stops the replicator; a primary keeps serving its volume locally.
    /// `servingAlone`: a stop after which the primary goes on serving its volume alone
    /// (`disable`, a peer's failed disk or lost record): `.stopToServeAlone`.
    func stopReplication(servingAlone: Bool = false, _ done: @escaping () -> Void) {
        if primary != nil { trackWhileStopping() }
        backend.sink = nil
        backend.readRouter = nil
        if let primary {
            self.primary = nil
            context.groups.removePrimary(primary)
            primary.disable()
            return primary.stop(servingAlone: servingAlone) { [self] in
                stopTracked()
                keepLackingAtStop(primary)  // diskless (Resource+Diskless)
                done()
            }
        }
        if let secondary {
            self.secondary = nil
            context.groups.removeSecondary(secondary)
            return secondary.stop { [self] in
                recordSecondaryCleanStop(secondary.node)
                adoptResizedSize()  // a size its primary asked for is used from now on
                done()
            }
        }
        done()
    }

    // MARK: failover

    /// `allowInconsistent`: with `force`, promote even an Inconsistent copy (the operator
    /// accepts data that is no state the primary ever had). The rules are ResourceRoles'.
    func failover(force: Bool, allowInconsistent: Bool = false, _ done: @escaping (ControlError?) -> Void) {
        let step = ResourceRoles.failover(
            roleFacts, force: force, allowInconsistent: allowInconsistent,
            diskFailure: health.failure.map { "\($0.operation): \($0.message)" },
            peerConnected: secondary?.isConnectedToPeer == true, ownDiskState: ownDiskState,
            behindPeer: connectedPrimaryHello.flatMap { PeerHelloCheck.copyBehindPrimary(own: generations, hello: $0) })
        switch step {
        case .failure(let refusal):
            done(ControlError(refusal))
        case .success(.promote(let kind)):
            promote(kind, done)
        case .success(.askPeerToDemote):
            transitioning = true
            context.events.publish(resource: spec.name, "failover-started", [:])
            secondary!.requestFailover { [self] demoted in
                transitioning = false
                guard demoted else { return done(ControlError(ResourceRoles.peerLeftBeforeDemoting)) }
                promote(.planned, done)
            }
        }
    }

    private func promote(_ kind: PromotionKind, _ done: @escaping (ControlError?) -> Void) {
        let state = ownDiskState
        let promotion: Promotion
        switch ResourceRoles.promotion(kind, ownDiskState: state) {
        case .failure(let refusal):
            let seen = "failover refused: " + refusal.message
            if let secondary { secondary.noteRefusal(seen) } else { refusalError = seen }
            return done(ControlError(refusal))
        case .success(let allowed):
            promotion = allowed
        }
        transitioning = true
        let wasEnabled = enabled
        stopReplication { [self] in
            transitioning = false
            guard settleStagingForPromotion() else {  // stage: the journal first (Resource+Staging)
                return done(ControlError(.ioError, "failover refused: the staging journal cannot be settled"))
            }
            changeRole(to: .primary)
            promoteGeneration(planned: kind == .planned)
            _ = updateRecord { $0 = $0.promoted(inconsistent: promotion.inconsistent) }
            if promotion.inconsistent {
                promotedInconsistent = true
                logger.warning("promoted an Inconsistent copy (allow_inconsistent)")
                context.events.publish(resource: spec.name, "promoted-inconsistent", ["disk_state": .string(state.rawValue)])
            }
            context.events.publish(resource: spec.name, "promoted", ["reason": .string(kind.reason)])
            enabled = false
            writeEnabled(false)
            if promotion.enablesAfter(wasEnabled: wasEnabled) {
                do throws(ControlError) { try enable(handedOver: true) } catch { return done(error) }
            }
            done(nil)
        }
    }

    /// `demote` from the control socket: drain, then become secondary.
    func demote(_ done: @escaping (ControlError?) -> Void) {
        let step = ResourceRoles.demote(roleFacts, replicating: primary != nil, drained: primary?.isDrained ?? true,
                                        peerConnected: primary?.isConnectedToPeer == true)
        switch step {
        case .failure(let refusal):
            done(ControlError(refusal))
        case .success(.becomeSecondaryNow):
            becomeSecondary(enable: false)
            done(nil)
        case .success(.drainThenHandOver):
            let primary = primary!
            let wanted = enabled
            transitioning = true
            primary.drain { [self] in
                // The demotion is durable before the peer hears Demoted (PrimaryNode's
                // `.handOver`): a crash before it leaves this node primary and the peer,
                // never told, secondary — never two primaries.
                self.primary = nil
                context.groups.removePrimary(primary)
                backend.sink = nil
                backend.readRouter = nil
                primary.handOver(recordDemotion: { [self] in persistDemotion() }, done: { [self] in
                    transitioning = false
                    finishDemotion(enable: wanted)
                    done(nil)
                })
            }
        }
    }

    /// The secondary asked for a planned failover.
    private func plannedDemote() {
        demote { [self] error in
            if let error { logger.warning("planned failover refused", metadata: ["error": "\(error.message)"]) }
        }
    }

    func becomeSecondary(enable wanted: Bool) {
        transitioning = true
        stopReplication { [self] in
            transitioning = false
            persistDemotion()
            finishDemotion(enable: wanted)
        }
    }

    /// The role change and the demoted record, written before anyone is told.
    private func persistDemotion() {
        changeRole(to: .secondary)
        context.events.publish(resource: spec.name, "demoted", [:])
        enabled = false
        writeEnabled(false)
        // The old peer becomes primary and sends everything from now on.
        writeSyncedRecord()
    }

    private func finishDemotion(enable wanted: Bool) {
        demotedInProcess = true
        guard wanted else { return }
        do throws(ControlError) { try enable() } catch {
            logger.error("enabling replication as secondary after the demotion failed",
                         metadata: ["error": "\(error.message)"])
        }
    }

    func changeRole(to role: ResourceRole) {
        spec.role = role
        if role == .primary { demotedInProcess = false }
        backend.readOnly = role == .secondary
        if role == .secondary { stopServing() } else { startServing() }
        _ = updateNode {
            $0.roleLastTaken = MetadataRole(role)
            $0.set(.crashedPrimary, false)  // the activity log was of the old role's sessions
            $0.set(.secondaryCleanStop, false)  // it spoke of the secondary's last stop only
            $0.set(.splitBrain, false)  // a split brain is between two primaries
        }
        splitBrain = nil
        dropTrackedBitmap()
        persist?(spec)
        context.events.publish(resource: spec.name, "role", ["role": .string(role.rawValue)])
    }

    /// A demoted primary's volume is the newest there is (ReplicationRecord.demoted).
    func writeSyncedRecord() {
        _ = updateRecord { $0 = $0.demoted() }
        promotedInconsistent = false
    }

    /// The replication record as it will be once every requested write is done.
    var record: ReplicationRecord { metadata.latest.record }

    /// Changes and durably writes the record (its write count bumped) and, in the same
    /// superblock write, other fields (`also`). False, with the disk failed, if it fails.
    func updateRecord(_ change: (inout ReplicationRecord) -> Void,
                      also: (inout MetadataSuperblock) -> Void = { _ in }) -> Bool {
        updateNode { node in
            var record = node.record
            change(&record)
            record.generation = node.recordWrites + 1
            node.record = record
            also(&node)
        }
    }

    /// Changes and writes the superblock: synchronously (durable on return) unless the
    /// secondary replicator has a ring write under way, behind which it is queued.
    func updateNode(_ change: (inout MetadataSuperblock) -> Void) -> Bool {
        do throws(IOError) {
            try metadata.update(change)
            return true
        } catch {
            logger.error("writing the metadata failed", metadata: ["metadata": "\(metadata.path)", "error": "\(error)"])
            health.record("metadata write", errno: error.errno)  // the resource's disk failed
            return false
        }
    }

    func writeEnabled(_ on: Bool) {
        guard metadata.latest.enabled != on else { return }
        _ = updateNode { $0.enabled = on }
    }

    /// The operator's last enable/disable, as the metadata holds it (restart).
    var recordSaysEnabled: Bool { metadata.latest.enabled }

    func removeReplicationFiles() throws(ResourceStoreError) {
        metadata.close()
        do throws(IOError) {
            // Internal metadata: its slots are zeroed, the volume stays.
            if let internalLayout {
                try MetadataFileIO.wipeInternal(path: metadata.path, layout: internalLayout)
            } else {
                try MetadataFileIO.remove(path: metadata.path)
            }
        } catch {
            logger.warning("removing the metadata file failed", metadata: ["error": "\(error)"])
        }
        // Its staging journal, parted bitmap and format 2's files (ResourceStateFiles).
        try ResourceStateFiles.remove(ResourceStateFiles.paths(stateDir: context.config.stateDir, name: spec.name,
                                                                stagingPath: spec.stagingPath))
    }
}

extension ControlError {
    /// A role rule's refusal as the control socket returns it.
    init(_ refusal: RoleRefusal) {
        switch refusal.code {
        case .wrongState: self.init(.wrongState, refusal.message)
        case .busy: self.init(.busy, refusal.message)
        }
    }
}
