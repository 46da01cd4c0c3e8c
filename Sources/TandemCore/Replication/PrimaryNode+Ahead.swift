// PrimaryNode's tracking: going Ahead instead of blocking the application, and the catch-up
// session that follows.
//
// An async primary whose buffer is full, or a sync primary with `fencing: dont-care` whose
// link is down while writes wait for the peer, goes Ahead: every write still held is marked in
// the dirty bitmap, the stream stops waiting for the peer (`.trackingStarted`), any link is
// hung up, and from then on each write is marked before it is admitted and acknowledged once
// it is on this disk. The peer is Outdated.
//
// The next dial names a new session whose basis is a catch-up from the points the bitmap
// covers (CatchUp.swift). Once that link is up, admission pauses until nothing is in flight,
// a fresh stream starts (sequence 1, epoch 1, as a new session does on the secondary), and the
// copy walks the bitmap; application writes stream as usual meanwhile. The peer is
// Inconsistent until the copy's SyncComplete, as in DRBD's resync.

extension PrimaryNode {
    /// Whether the node must stop waiting for its peer now.
    private var aheadReason: String? {
        // Diskless: a disk that lacks writes cannot take them alone.
        guard !isAhead, !stopping, !diskFailed, localDisk.lacking == nil, enabled, config.hasPeer else { return nil }
        if let reason = periodicAheadReason { return reason }
        if let reason = groupAheadReason { return reason }
        let waiting = primary.writesInFlight > 0 || !queue.isEmpty || zeroing != nil
        if peerOutdatedConfirmed, waiting, link != .up { return "the control plane outdated the peer (outdate-peer)" }
        if config.primary.mode == .async {
            var reason: String?
            if blockedOnBuffer {
                reason = "the replication buffer is full"
            } else if gate.blocked && link != .up {
                // Every extent of the activity log holds writes the absent peer has not confirmed.
                reason = "the activity log is full of writes the peer lacks"
            } else {
                reason = rpoTargetAheadReason
            }
            // Adaptive: a write admitted sync waits for the peer whatever happens later; Ahead
            // would acknowledge it without (only `fencing: dont-care` allows that, as in sync).
            if reason != nil, adaptiveMode != nil, !config.syncTracksWithoutPeer || link == .up, primary.syncPending {
                reason = nil
            }
            // Adaptive, the sync rule below applies while it admits sync or a sync write waits;
            // async with none waiting, it keeps buffering as async does.
            guard reason == nil, let adaptive = adaptiveMode, adaptive.mode == .sync || primary.syncPending else {
                return reason
            }
        }
        guard config.syncTracksWithoutPeer, waiting, link != .up else { return nil }
        return "the peer is away (fencing dont-care)"
    }

    /// Why `outdate-peer` cannot be taken now (nil: it can).
    public var outdatePeerRefusal: String? {
        if !enabled || stopping { return "replication is not running" }
        if link == .up { return "the peer is connected: it is not outdated (it holds the stream, or is being caught up)" }
        return nil
    }

    /// Goes Ahead when due; true when it did (admission can go on).
    mutating func enterAheadIfDue(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) -> Bool {
        guard let reason = aheadReason else { return false }
        isAhead = true
        // A peer that stages the copy keeps its image from before it: Outdated, not Inconsistent.
        // So does one whose staged catch-up's CaughtUp has not come (its journal is durable);
        // an in-place copy's peer may not have stored its `synced` record yet.
        peerInconsistentWhenAhead = ((copyWanted || awaitingCaughtUp) && !peerStagesCatchUp)
            || peerInconsistentThroughEpoch != nil
        // The RPO age counts from the oldest write the peer lacks, acknowledged before this.
        // Ahead again before the last catch-up ended: the older writes are still missing.
        let unconfirmedAgeNs = primary.rpoAgeNs(nowNs: nowNs)
        let since = nowNs - min(unconfirmedAgeNs, nowNs)
        // Periodic mode with nothing unconfirmed: the peer lacks nothing yet; the RPO age
        // counts from the first write tracked (trackIfAhead).
        if periodNs == nil || unconfirmedAgeNs > 0 {
            aheadSinceNs = aheadSinceNs == 0 ? since : min(aheadSinceNs, since)
        }
        // Everything the peer has not confirmed durable goes into the bitmap: held writes
        // (copy chunks too) whatever their state, and the copy's unread regions are set already.
        markHeldWrites()
        // Periodic mode: writes the stream still held (admitted during the cycle, answered
        // after it) are writes the peer lacks from now on; without this the RPO age said 0
        // while they were acknowledged (found by the simulator, Simulation+Periodic).
        if periodNs != nil, aheadSinceNs == 0, bitmap.outOfSyncBytes > 0 { aheadSinceNs = max(nowNs, 1) }
        catchUpBases = SessionBasis.basesAfterLosingPeer(
            session: session, peerDurableEpoch: primary.peerDurableEpoch, previous: catchUpBases)
        if primary.isConnected { drive(.connectionDown, nowNs: nowNs, into: &actions) }
        drive(.trackingStarted, nowNs: nowNs, into: &actions)
        hangUp("going Ahead: \(reason)", into: &actions)
        if link == .dialing { link = .idle }
        pendingSession = nil
        restartPending = false
        deferredPeerHello = nil
        startCopy()
        invalidateCleanStop(into: &actions)
        actions.append(.notice(.ahead(reason: reason, outOfSyncBytes: bitmap.outOfSyncBytes)))
        return true
    }

    /// Marks every write the stream still holds (not confirmed durable by the peer).
    mutating func markHeldWrites() {
        let primary = self.primary
        primary.forEachHeldWrite { offset, length in _ = bitmap.setRange(offsetBytes: offset, lengthBytes: UInt64(length)) }
    }

    /// A dial while Ahead names a new session that catches up from the bitmap's bases.
    mutating func prepareCatchUpSession() {
        guard isAhead else { return }
        sessionsStarted += 1
        var generator = SplitMix64(seed: session ^ (sessionsStarted &* 0x9E37_79B9_7F4A_7C15))
        var next = generator.next()
        while next == 0 || next == session || catchUpBases.contains(where: { $0.session == next }) {
            next = generator.next()
        }
        if catchUpBases.isEmpty { markEveryBlock() }
        pendingSession = (next, catchUpBases.isEmpty ? .fullCopy : .catchUp(catchUpBases))
    }

    /// The peer holds none of the catch-up's bases: the next session copies the whole volume.
    mutating func refuseCatchUp(because reason: String, into actions: inout [PrimaryNodeAction]) {
        catchUpBases = []
        markEveryBlock()
        actions.append(.notice(.fullCopyStarted(reason: reason)))
    }

    /// Nothing of the old stream is in flight: it can be replaced.
    private var isQuiet: Bool {
        primary.writesInFlight == 0 && primary.flushesPending == 0 && !localFlushInFlight
            && localWritesInFlight == 0 && zeroing == nil && !copyReadInFlight && !verifyReadInFlight
    }

    /// Starts the catch-up session's stream once the old one is quiet; true when it did.
    mutating func restartStreamIfQuiet(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) -> Bool {
        guard restartPending, isQuiet, let pending = pendingSession else { return false }
        precondition(copyChunksHeld.isEmpty, "copy chunks held across a stream restart")
        restartPending = false
        pendingSession = nil
        (session, basis) = pending
        isAhead = false
        primary = ReplicationPrimary(config: config.primary)
        startGroupNumbering()
        applyAdmissionMode()
        releasedThrough = 0
        peerInconsistentThroughEpoch = nil
        for index in ticketOfSequence.indices { ticketOfSequence[index] = -1 }
        actions.append(.streamRestarted)
        if bitmap.outOfSyncBytes == 0 {
            // The session needs a first write and the copy's SyncComplete: one block goes.
            _ = bitmap.setBlocks(BlockRun(first: 0, count: 1))
        }
        startCopy()
        // Until the peer's ReplicaHello says how it takes this copy, it keeps its image.
        peerStagesCatchUp = !peerInconsistentWhenAhead
        actions.append(.notice(.catchUpStarted(bytes: copyTotalBytes)))
        drive(.connectionUp, nowNs: nowNs, into: &actions)
        if let hello = deferredPeerHello {
            deferredPeerHello = nil
            peerMessage(hello, nowNs: nowNs, into: &actions)
        }
        return true
    }

    /// A peer that speaks only version 2 read a catch-up's Hello as a full copy (its `bitmap`
    /// field is 0) and accepted it whatever its copy holds: copy everything, as it expects.
    /// Both the Hello of a pending catch-up session and a session that started as one (a
    /// restart from a sealed bitmap, writes while disabled).
    mutating func peerSpeaks(_ version: UInt16, into actions: inout [PrimaryNodeAction]) {
        guard version < WireFormat.catchUpVersion, helloBasis.isCatchUp else { return }
        catchUpBases = []
        if let pending = pendingSession {
            pendingSession = (pending.session, .fullCopy)
            markEveryBlock()
        } else {
            basis = .fullCopy
            markWholeVolume()
        }
        actions.append(.notice(.fullCopyStarted(reason:
            "the peer speaks protocol \(version), which cannot catch up from a bitmap: the whole volume is copied "
            + "(upgrade it: docs/operations.md, rolling upgrade)")))
    }
}
