import Glibc
import TandemCore

// The primary's side of a simulated node: TandemCore's PrimaryNode, the machine the daemon
// runs (PrimaryReplicator only carries out its actions). This file does what that driver
// does: requests, local I/O results, copy reads and the link's life in as events; answers,
// local I/O, messages, records and link commands out. After the peer's disk failed the
// resource detaches replication (the node stops) and writes go to the local disk alone.

extension Simulation {
    func primaryConfig(lastTransaction: UInt64 = 0) -> PrimaryNodeConfig {
        var activityLog = scenario.activityLog
        activityLog?.lastTransaction = lastTransaction
        var config = PrimaryNodeConfig(
            primary: scenario.primaryConfig,
            volumeSizeBytes: UInt64(scenario.blockCount) * SimulationScenario.blockSizeBytes,
            hasPeer: true, chunkBytes: UInt32(UInt64(scenario.copyChunkBlocks) * SimulationScenario.blockSizeBytes),
            copyBuffersMax: scenario.copyBuffers,
            verifyRegionBytes: UInt64(scenario.copyChunkBlocks) * SimulationScenario.blockSizeBytes,
            requestsQueuedMax: 64, backoffInitialNs: 100_000, backoffMaxNs: 2_000_000,
            syncTracksWithoutPeer: scenario.fencingDontCare, activityLog: activityLog)
        config.adaptive = scenario.adaptive
        config.rpoTarget = scenario.pacing?.settings  // Simulation+Pacing
        config.readBalancing = scenario.reads?.policy ?? .preferLocal
        config.periodNs = scenario.periodNs
        if scenario.checksumCheckpointBytes > 0 { config.checksumCheckpointBytes = scenario.checksumCheckpointBytes }
        config.copyCheckpointBytes = scenario.copyCheckpointBytes  // SimulationTests+CopyResume
        config.peerDrainTimeoutNs = scenario.liveness?.timeoutNs ?? Self.peerDrainTimeoutNs  // Simulation+Diskless
        return config
    }

    /// Resource.loadActivityLogAtOpen: a primary that did not record its stop catches up the
    /// extents of its ring's newest transaction, from the bases it proves; the extents' regions
    /// the durable pages do not mark are compared by digest first (ChecksumResync.plan).
    private func trackedAfterCrash(_ node: SimNode, peerLacksWrites: Bool)
        -> (bitmap: DirtyBitmap, bases: [CatchUpBase], checksumRegions: [ChecksumRegion])? {
        // Diskless: the record's flag makes the start resync this disk from the peer instead.
        guard let log = scenario.activityLog, node.crashedPrimary, !peerLacksWrites, !node.localLacksWrites,
            node.record.cleanStop == 0,
            let transaction = node.activityLogDurable, !transaction.bases.isEmpty
        else { return nil }
        let volumeSizeBytes = UInt64(scenario.blockCount) * SimulationScenario.blockSizeBytes
        var bitmap = DirtyBitmap(volumeSizeBytes: volumeSizeBytes, blockBytes: SimulationScenario.blockSizeBytes)
        // Ahead or catching up: the durable pages count as well (never written: all clear).
        if transaction.bitmapPagesCount, let pages = node.durablePages { bitmap = pages }
        let extents = ActivityLog.dirtyRegions(afterCrash: transaction.extents, extentBytes: log.extentBytes,
                                               volumeSizeBytes: volumeSizeBytes)
        let checksumRegions = !scenario.checksumCompare ? [] : planCompare(node, transaction, extents: extents, dirty: bitmap)
        if !checksumRegions.isEmpty { node.disk.flushNow() }  // Resource.flushVolumeForCompare
        for region in extents {
            _ = bitmap.setRange(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes)
        }
        return (bitmap, transaction.bases, checksumRegions)  // empty too: PrimaryStart decides
    }

    /// Resource.openActivityLog: the session's first transaction (no extent), durable before
    /// the start record; a catch-up's tracked bitmap on the pages first, counted by it.
    private func openActivityLog(_ node: SimNode, basis: SessionBasis, tracked: DirtyBitmap?) -> (UInt64, pagesCount: Bool) {
        // The stopped node's last transactions complete first (the daemon's start is synchronous).
        for transaction in node.activityLogInFlight { node.activityLogLanded(transaction) }
        node.activityLogInFlight.removeAll()
        guard scenario.activityLog != nil || node.activityLogDurable != nil else { return (0, false) }
        var bases: [CatchUpBase] = []
        if scenario.activityLog != nil {
            switch basis {
            case .continues, .assumeInSync: bases = basis.startingBases
            case .catchUp:
                guard let tracked else { break }
                for page in tracked.pagesWithSetBits {  // Resource.writeTrackedPages
                    let first = UInt64(page) * DirtyBitmap.bitsPerPage
                    let end = min(first + DirtyBitmap.bitsPerPage, tracked.blockCount)
                    landPage(node, page, setBlocks: (first..<end).filter { tracked.isSet(block: $0) })
                }
                bases = basis.startingBases
            case .fullCopy: break
            }
        }
        let number = (node.activityLogDurable?.transaction ?? 0) + 1
        let pagesCount = basis.isCatchUp && !bases.isEmpty
        node.activityLogDurable = ActivityLogTransaction(transaction: number, resourceUUID: 1, extents: [], bases: bases,
                                                         bitmapPagesCount: pagesCount)
        return (number, pagesCount)
    }

    func writeActivityLog(_ node: SimNode, _ transaction: ActivityLogTransaction) {
        node.activityLogInFlight.append(transaction)
        events.schedule(.activityLogDone(node: node.index, incarnation: node.incarnation, transaction: transaction.transaction),
                        atNs: nowNs + diskWriteLatencyNs())
    }

    /// PrimaryReplicator.persistBitmapPages: the pages are encoded now (the node's bitmap and
    /// the runs it names) and durable after a disk write's latency.
    func persistBitmapPages(_ node: SimNode, _ primary: PrimarySide, ticket: UInt64, pages: [Int]?, alsoSet: [BlockRun]) {
        let bitmap = primary.node.bitmap
        var written: [(page: Int, setBlocks: [UInt64])] = []
        for page in pages ?? Array(0..<bitmap.pageCount) {
            let first = UInt64(page) * DirtyBitmap.bitsPerPage
            let end = min(first + DirtyBitmap.bitsPerPage, bitmap.blockCount)
            var set: [UInt64] = []
            for block in first..<end where bitmap.isSet(block: block) || alsoSet.contains(where: { $0.first <= block && block < $0.end }) {
                set.append(block)
            }
            written.append((page, set))
        }
        node.pageWritesInFlight.append((ticket, primary, written))
        events.schedule(.bitmapPagesDone(node: node.index, incarnation: node.incarnation, ticket: ticket),
                        atNs: nowNs + diskWriteLatencyNs())
    }

    func bitmapPagesDone(_ node: SimNode, ticket: UInt64) {
        guard let index = node.pageWritesInFlight.firstIndex(where: { $0.ticket == ticket && $0.primary === node.primary })
        else { return }
        let write = node.pageWritesInFlight.remove(at: index)
        for page in write.pages { landPage(node, page.page, setBlocks: page.setBlocks) }
        drivePrimary(node, .bitmapPagesPersisted(ticket: ticket, errno: 0))
    }

    /// One page of the bitmap area becomes durable with exactly these blocks set.
    func landPage(_ node: SimNode, _ page: Int, setBlocks: [UInt64]) {
        let volumeSizeBytes = UInt64(scenario.blockCount) * SimulationScenario.blockSizeBytes
        var pages = node.durablePages
            ?? DirtyBitmap(volumeSizeBytes: volumeSizeBytes, blockBytes: SimulationScenario.blockSizeBytes)
        let first = UInt64(page) * DirtyBitmap.bitsPerPage
        _ = pages.clearBlocks(BlockRun(first: first, count: min(DirtyBitmap.bitsPerPage, pages.blockCount - first)))
        for block in setBlocks { _ = pages.setBlocks(BlockRun(first: block, count: 1)) }
        node.durablePages = pages
    }

    func activityLogDone(_ node: SimNode, transaction number: UInt64) {
        guard let index = node.activityLogInFlight.firstIndex(where: { $0.transaction == number }) else { return }
        node.activityLogLanded(node.activityLogInFlight.remove(at: index))
        guard node.primary?.node.activityLog?.isInFlight(number) == true else { return }
        drivePrimary(node, .activityLogWritten(transaction: number, errno: 0))
    }

    /// A node starts (or restarts, or is promoted) as primary: the basis from its record
    /// (ResourceRoles' PrimaryStart), a new session, then `enable`.
    /// `prepare`: the driver's changes to the new node before `enable` (a split brain's union).
    func startPrimary(_ node: SimNode, handedOver: Bool = false, peerLacksWrites: Bool = false,
                      prepare: ((inout PrimaryNode) -> Void)? = nil) {
        let fault: PrimaryStartFault? = scenario.testingFault == .restartForgetsUnconfirmedWrites
            ? .restartForgetsUnconfirmedWrites : nil
        // Resource.trackedForStart: what this process tracked, else the seal loaded at open
        // (with bases; an empty bitmap too: PrimaryStart decides what it is worth).
        var tracked = (node.trackedInMemory ?? node.sealedBitmap).flatMap { $0.bases.isEmpty ? nil : $0 }
        let crashed = tracked == nil ? trackedAfterCrash(node, peerLacksWrites: peerLacksWrites) : nil
        if let crashed {
            tracked = (crashed.bitmap, crashed.bases)
            catchUpsFromActivityLog += 1
            if node.activityLogDurable?.bitmapPagesCount == true { catchUpsFromBitmapPages += 1 }
        }
        var facts = PrimaryStartFacts(record: node.record, initialSync: scenario.initialSync, handedOver: handedOver,
                                      peerLacksWrites: peerLacksWrites, tracked: tracked?.bases,
                                      trackedAfterCrash: crashed != nil)
        facts.trackedIsEmpty = tracked?.bitmap.outOfSyncBytes == 0
        facts.localLacksWrites = node.localLacksWrites  // diskless (Simulation+Diskless)
        let start = PrimaryStart(facts, fault: fault)
        if start.reason == .crashRecoveryNothingDirty { catchUpsOfNothingAfterCrash += 1 }  // +TrackedStart
        let (lastTransaction, trackedPagesDurable) = openActivityLog(node, basis: start.basis,
                                                                     tracked: start.basis.isCatchUp ? tracked?.bitmap : nil)
        let checksumRegions = compareRegionsForStart(node, tracked: tracked?.bitmap, crashed: crashed?.checksumRegions,
                                                     basis: start.basis)
        node.crashedPrimary = true
        node.record = start.record
        node.record.generation += 1
        // The start record clears the seal; the node owns the tracked bitmap from now on.
        node.sealedBitmap = nil
        node.trackedInMemory = nil
        if start.basis.isCatchUp && crashed == nil { catchUpsFromSealedBitmap += 1 }
        var session: UInt64
        repeat { session = random.between(1, UInt64.max - 1) } while checker.histories[session] != nil
        sessionsStarted += 1
        node.isPrimary = true
        node.lastPrimarySession = session
        node.lineage = checker.lineage
        node.historySession = session
        // Diskless: the peer's copy is the session's base (this disk lacks writes it holds).
        let base = node.localLacksWrites ? nodes[1 - node.index].disk.cache : node.disk.cache
        if let problem = checker.startSession(session, base: base) { fail(problem) }
        noteCopySession(session, basis: start.basis)
        generationsAtPrimaryStart(node)
        var config = primaryConfig(lastTransaction: lastTransaction)
        config.activityLog?.trackedPagesDurable = trackedPagesDurable
        node.primary = PrimarySide(node: PrimaryNode(config: config,
                                                     session: session, basis: start.basis,
                                                     trackedBitmap: tracked?.bitmap,
                                                     checksumRegions: checksumRegions,
                                                     localLacksWrites: node.localLacksWrites))
        node.primary?.rebaseAtAccept = node.localLacksWrites
        node.primary?.startedLacking = node.localLacksWrites
        trace("\(node.name) starts primary session \(session) (\(start.basis), \(start.reason))")
        if let prepare, let primary = node.primary { prepare(&primary.node) }
        drivePrimary(node, .enable)
    }

    // MARK: State machine

    func drivePrimary(_ node: SimNode, _ event: PrimaryNodeEvent) {
        guard let primary = node.primary else { return }
        // As PrimaryReplicator's `deferred`: an event that arrives while a batch is being
        // carried out (a link closed by one of its actions) is handled after that batch, so
        // the batch's later actions are not overtaken by the newer ones.
        if primary.performing { return primary.deferred.append(event) }
        primary.performing = true
        defer { primary.performing = false }
        drivePrimaryNow(node, primary, event)
        while node.primary === primary, failure == nil, !primary.deferred.isEmpty {
            drivePrimaryNow(node, primary, primary.deferred.removeFirst())
        }
    }

    private func drivePrimaryNow(_ node: SimNode, _ primary: PrimarySide, _ event: PrimaryNodeEvent) {
        primaryActions.removeAll(keepingCapacity: true)
        let wasAhead = primary.node.isAhead
        let cycleWasRunning = primary.node.periodic.running
        primary.node.handle(event, nowNs: nowNs, into: &primaryActions)
        let actions = primaryActions
        primary.batchAhead = wasAhead || primary.node.isAhead
        primary.batchInCycle = cycleWasRunning || primary.node.periodic.running
        defer { primary.batchAhead = false }
        if pacingRun != nil { observePacing(node, primary, event, actions) }
        for action in actions {
            trace("\(node.name) primary: \(action)")
            perform(action, node: node, primary: primary)
            if failure != nil || node.primary !== primary { return }
        }
        if primary.demotionRecorded {
            primary.demotionRecorded = false
            drivePrimary(node, .demotionRecorded)
        }
    }

    private func perform(_ action: PrimaryNodeAction, node: SimNode, primary: PrimarySide) {
        switch action {
        case let .answer(request, errno):
            if primary.answeredEarly.remove(request) != nil { return }  // the seeded fault answered it already
            answer(request, errno: errno)
        case .writeLocal(let write), .holdLocalWrite(let write):
            let range = blocks(offsetBytes: write.offsetBytes, lengthBytes: write.lengthBytes)
            let values: [UInt64]
            switch write.source {
            case let .request(request):
                let value = nextValue
                nextValue += 1
                guard case let .write(blocks, fua, nil) = requests[request], blocks == range else {
                    return fail("write \(write.sequence) names request \(request), which is no unadmitted write of \(range)")
                }
                requests[request] = .write(blocks: blocks, fua: fua, value: value)
                values = Array(repeating: value, count: range.count)
                noteSplitBrainWrite(node, value: value, blocks: range)
            case .zeroes:
                let value = nextValue
                nextValue += 1
                guard case .zeroes(let blocks, let fua, var chunks) = requests[write.request] else {
                    return fail("zero chunk \(write.sequence) names request \(write.request), which is no WRITE_ZEROES")
                }
                chunks.append((range, value))
                requests[write.request] = .zeroes(blocks: blocks, fua: fua, chunks: chunks)
                values = Array(repeating: value, count: range.count)
                noteSplitBrainWrite(node, value: value, blocks: range)
            case .copyChunk:
                guard let read = primary.copyChunks.removeValue(forKey: range.lowerBound) else {
                    return fail("a copy chunk of \(range) was admitted that was never read")
                }
                values = read
                guard values.count == range.count else { return fail("copy chunk \(write.sequence) has the wrong length") }
            }
            let extent = FakeDisk.Extent(firstBlock: range.lowerBound, values: values)
            payloads[PayloadKey(session: primary.session, sequence: write.sequence)] = extent
            if let problem = checker.recordAdmission(
                session: primary.session, sequence: write.sequence, epoch: write.epoch, blocks: range,
                values: values, isCopyChunk: write.source == .copyChunk) {
                return fail(problem)
            }
            // A copy chunk was just read from this disk: nothing is written locally.
            guard write.source != .copyChunk else { return }
            if case .holdLocalWrite = action {
                answerThroughPeerEarlyIfFaulty(node, primary, write)
                return primary.heldWrites[write.sequence] = (extent, write.fua)
            }
            submitWrite(node, extent, fua: write.fua, io: .primaryWrite(write.sequence, session: primary.session))
        case let .issueLocalWrite(sequence):
            guard let held = primary.heldWrites.removeValue(forKey: sequence) else {
                return fail("write \(sequence) issued without being held")
            }
            submitWrite(node, held.extent, fua: held.fua, io: .primaryWrite(sequence, session: primary.session))
        case let .writeActivityLog(number, extents, bases, flushVolumeFirst, pagesCount):
            let transaction = ActivityLogTransaction(transaction: number, resourceUUID: 1, extents: extents, bases: bases,
                                                     bitmapPagesCount: pagesCount)
            if flushVolumeFirst { return submitFlush(node, io: .activityLogFlush(transaction)) }
            writeActivityLog(node, transaction)
        case let .persistBitmapPages(ticket, pages, alsoSet):
            persistBitmapPages(node, primary, ticket: ticket, pages: pages, alsoSet: alsoSet)
        case .flushLocal:
            submitFlush(node, io: .primaryFlush(session: primary.session))
        case let .readCopyChunk(offset, length):
            let range = blocks(offsetBytes: offset, lengthBytes: length)
            events.schedule(.copyReadDone(node: node.index, incarnation: node.incarnation, session: primary.session, blocks: range),
                            atNs: nowNs + stalled(random.between(10_000, 200_000)))
        case let .readVerifyRegion(offset, length):
            events.schedule(.verifyReadDone(node: node.index, incarnation: node.incarnation, primary: true,
                                            blocks: blocks(offsetBytes: offset, lengthBytes: UInt32(length))),
                            atNs: nowNs + stalled(random.between(10_000, 200_000)))
        case let .sendDigestRequest(offset, length):
            guard let link, link.primary == node.index, primary.peerAccepted else { return }
            sendToSecondary(.digestRequest(offsetBytes: offset, lengthBytes: length))
        case .sendVerifyEnd:
            guard let link, link.primary == node.index, primary.peerAccepted else { return }
            sendToSecondary(.verifyEnd)
        case let .discardCopyChunk(offset):
            // A failed read added nothing; a chunk read while the node went Ahead is dropped.
            primary.copyChunks[Int(offset / SimulationScenario.blockSizeBytes)] = nil
        case .release:
            break  // payloads are kept by (session, sequence)
        case let .send(message):
            noteAdmissionMode(message, session: primary.session)
            checkPeriodicSend(message, node, primary)
            guard let link, link.primary == node.index, primary.peerAccepted else { return }
            sendToSecondary(.message(message))
        case let .sendSyncComplete(through):
            guard let link, link.primary == node.index, primary.peerAccepted else { return }
            sendToSecondary(.syncComplete(throughSequence: through))
        case .dial:
            dial(from: node)
        case let .closeLink(reason):
            // (A close on a cut link reaches nobody: the other side waits for its timeout.)
            if primaryConnected(node) && !primary.handingOver { disconnect("\(node.name) closes: \(reason)") }
        case let .protocolViolation(reason):
            fail("primary \(node.name) reports a protocol violation by a real secondary: \(reason)")
        case let .recordStop(cleanStop):
            unionStopRecorded(node, primary)
            node.crashedPrimary = false
            node.record = node.record.stopped(cleanStop: cleanStop)
            node.record.generation += 1
            if cleanStop != 0 {
                // Resource.trackFromCleanStop: writes without a replicator are tracked from here.
                let bitmap = DirtyBitmap(volumeSizeBytes: primary.node.config.volumeSizeBytes,
                                         blockBytes: primary.node.config.bitmapBlockBytes)
                node.trackedInMemory = (bitmap, SessionBasis.basesAfterCleanStop(cleanStop))
            }
        case .invalidateCleanStop:
            node.record = node.record.afterFirstWrite()
            node.record.generation += 1
            node.sealedBitmap = nil  // the daemon clears the seal in the same record write
        case let .persistBitmap(bases) where node.localLacksWrites:
            // Resource.persistTrackedBitmap: the next start resyncs this disk from the peer
            // whatever a seal says: nothing is sealed.
            node.trackedInMemory = (primary.node.bitmap, bases)
        case let .persistBitmap(bases):
            // Sealed after the stop's flush, in one durable metadata write (crash-atomic here).
            node.sealedBitmap = (primary.node.bitmap, bases)
            node.durablePages = primary.node.bitmap  // sealBitmap writes every page
            node.trackedInMemory = (primary.node.bitmap, bases)
            keepUnionLeft(node, primary)
        case .groupEpochClosed:
            break  // groups (docs/groups.md): the simulator models one resource, in no group
        case .recordLocalLacksWrites, .pullRegion, .notice(.localDisk), .peerDrainedBeforeStop:
            _ = performDiskless(action, node: node, primary: primary)
        case .persistLackingRegions:
            return fail("\(node.name) keeps diskless regions, which the simulator's config never asks for")
        case .drained:
            handOver(from: node)
        case .recordDemotion:
            recordDemotion(node)
            primary.demotionRecorded = true
        case .sendDemoted:
            guard let link, link.primary == node.index, primary.peerAccepted else { return }
            sendToSecondary(.demoted)
        case .streamRestarted:
            // A catch-up session starts: its history begins with what this disk holds now.
            node.lastPrimarySession = primary.session
            node.historySession = primary.session
            trace("\(node.name) starts catch-up session \(primary.session) (\(primary.node.basis))")
            if let problem = checker.startSession(primary.session, base: node.disk.cache) { return fail(problem) }
            noteCopySession(primary.session, basis: primary.node.basis)
        case .stopped:
            giveBackRemoteReads(node, primary)
            if primary.restartWhenStopped {
                // The daemon exits once its resources stopped; it is started again.
                crash(node, powerLoss: false)
                node.stoppedCleanly = true
                events.schedule(.restart(node: node.index), atNs: nowNs + random.between(100_000, 2_000_000))
            } else if primary.handingOver {
                node.primary = nil
                finishHandOver(node, session: primary.session)
            } else {
                // Replication stopped after the peer's disk failed: the resource writes alone.
                primary.standalone = true
                trace("\(node.name) detached: writes go to the local disk only")
                persistPartedAtStandAlone(node)
                reenableIfPeerRecovered(node)
            }
        case let .notice(notice):
            switch notice {
            case .diskFailed:
                node.diskFailed = true
                scheduleDiskReplacement(node)
            case let .peerDiskFailed(reason):
                trace("\(node.name): the peer's disk failed (\(reason)): replication stops")
                primary.peerDiskFailed = true
                node.record = node.record.stopped(cleanStop: 0)
                node.record.generation += 1
                pendingDetach.insert(node.index)
            case let .peerNeedsFullCopy(reason):
                // A simulated secondary acknowledges an epoch only once its record says so, and
                // records are crash-atomic: it can never claim less than it confirmed.
                return fail("primary \(node.name): a real secondary lost its record: \(reason)")
            case .copyDone:
                unionResyncEnded(node, primary)
                copiesCompleted += 1
                copiedSessions.insert(primary.session)
                generationsPeerCaughtUp(node)
            case let .verifyMismatch(offset, length):
                // No fault here corrupts a disk behind the nodes' backs: copies said to be in
                // sync that differ are a bug.
                return fail("verify on \(node.name): the peer's blocks \(blocks(offsetBytes: offset, lengthBytes: UInt32(length))) differ")
            case let .verifyEnded(checked, _, reason):
                verifyBytesChecked += checked
                trace("\(node.name) verify ended: \(checked) bytes compared\(reason.map { ", aborted: \($0)" } ?? "")")
            case .verifyStarted, .verifyRepairStarted:
                break
            case let .checksumResyncEnded(progress):
                if progress.abandonedBecause == nil { node.compareRecord = nil }  // PrimaryReplicator+Checksum
                checksumResyncsEnded += 1
                checksumBytesChecked += progress.checkedBytes
                checksumBytesDiffering += progress.differingBytes
            case .acknowledgedWithoutPeer:
                acknowledgedWithoutPeer(node, primary)  // as the daemon: before the answer that follows
            case let .connectionState(state):
                accountConnectionState(node, primary, state)
            case .ahead:
                aheadEntered += 1
            case .catchUpStarted:
                catchUpsStarted += 1
            case .modeSwitched:
                modeSwitches += 1
            case .fullCopyStarted, .copySent, .rpoTargetMissed:
                break
            case .cycleStarted:
                periodicCycleStarted(node, primary)
            case .cycleCompleted:
                periodicCycleCompleted(node, primary)
            case .localDisk:
                break  // Simulation+Diskless (matched above)
            }
        }
    }

    func copyReadCompleted(_ node: SimNode, _ primary: PrimarySide, blocks: Range<Int>) {
        let (values, errno) = node.disk.read(blocks)
        if errno == 0 { primary.copyChunks[blocks.lowerBound] = copyValues(node, primary, values, blocks: blocks) }
        drivePrimary(node, .copyChunkRead(
            offsetBytes: UInt64(blocks.lowerBound) * SimulationScenario.blockSizeBytes,
            lengthBytes: UInt32(UInt64(blocks.count) * SimulationScenario.blockSizeBytes), errno: errno))
    }

    /// A verify read: the node's blocks as they are now, digested (the primary's own region,
    /// or the region the secondary digests for its primary).
    func verifyReadCompleted(_ node: SimNode, primary isPrimary: Bool, blocks: Range<Int>) {
        let (values, errno) = node.disk.read(blocks)
        let digest = errno == 0 ? Self.digest(values) : nil
        let offset = UInt64(blocks.lowerBound) * SimulationScenario.blockSizeBytes
        let length = UInt64(blocks.count) * SimulationScenario.blockSizeBytes
        if isPrimary {
            guard node.primary != nil else { return }
            drivePrimary(node, .verifyRegionRead(offsetBytes: offset, digest: digest, errno: errno))
        } else {
            guard node.secondary != nil else { return }
            driveSecondary(node, .digestRead(offsetBytes: offset, lengthBytes: length, digest: digest, errno: errno))
        }
    }

    /// Stands in for SHA-256: any two different block lists digest differently here in practice.
    static func digest(_ values: [UInt64]) -> RegionDigest {
        var high = SplitMix64(seed: 0x7A11)
        var low = SplitMix64(seed: 0xD16E)
        var h: UInt64 = 0, l: UInt64 = 0
        for value in values {
            h = (h ^ value) &* 0x100_0000_01B3 &+ high.next()
            l = (l &+ value) &* 0x9E37_79B9_7F4A_7C15 ^ low.next()
        }
        return RegionDigest(high: h, low: l)
    }

    // MARK: Disk states

    /// What the primary says about its peer's copy (status `peer_disk_state`): the daemon's
    /// decision (`ReportedDiskStates`) over what this driver knows.
    func peerDiskState(_ node: SimNode) -> DiskState {
        guard let primary = node.primary else { return .unknown }
        let view = primary.standalone ? nil : PrimaryPeerView(
            peerDiskState: primary.node.peerDiskState, peerReady: primary.node.isPeerReady,
            peerSynced: primary.node.peerSynced)
        let states = ReportedDiskStates.decide(
            .primary(promotedInconsistent: node.record.promotedInconsistent, replicator: view),
            ownDiskFailed: node.diskFailed, peerDiskFailed: primary.peerDiskFailed)
        return states.peerDiskState ?? .unknown
    }
}
