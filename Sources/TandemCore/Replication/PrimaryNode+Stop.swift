// PrimaryNode's end: a stop (disable, shutdown, demotion) hangs up (a diskless node once its
// peer holds what it acknowledged durably: +PeerDrain), waits for local I/O,
// flushes the local disk, records the stop (clean only after that flush), answers everything
// held (a write, or a sync FLUSH, still waiting for its peer fails under `fencing:
// suspend-io` unless the node goes on serving alone) and says `.stopped`. A planned failover's hand-over keeps the link through the flush
// and the demotion record, then sends Demoted. A failure of the local disk is noted once
// here; admission then fails every later mutation and the stop's record is not clean.

extension PrimaryNode {
    // MARK: Stop

    mutating func beginStop(servingAlone: Bool = false, nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        stopServesAlone = servingAlone
        // A hand-over whose demotion is not asked for yet is called off: this node stays
        // primary and the peer, never told, stays secondary.
        if handingOver && !demotionRequested { handingOver = false }
        stopping = true
        enabled = false
        // Diskless: the peer makes the writes acknowledged through it durable first (+PeerDrain).
        if drainPeerAtStop(nowNs: nowNs, into: &actions) { return }
        hangUp("resource stopping", into: &actions)
        setConnectionState(.standAlone, into: &actions)
    }

    mutating func beginHandOver() {
        guard !stopping else { return }
        stopping = true
        handingOver = true
        enabled = false
    }

    mutating func demotionWasRecorded() {
        precondition(demotionRequested, "a demotion recorded that was not asked for")
        demotionRecorded = true
    }

    private mutating func recordStop(flushed: Bool, into actions: inout [PrimaryNodeAction]) {
        guard !stopRecorded else { return }
        stopRecorded = true
        if flushed && !isCleanForStop && !handingOver {
            // Everything the peer has not confirmed joins the bitmap, as on going Ahead: the
            // next session catches up from it instead of copying the volume.
            markHeldWrites()
            let bases = isAhead ? catchUpBases : SessionBasis.basesAfterLosingPeer(
                session: session, peerDurableEpoch: primary.peerDurableEpoch, previous: catchUpBases)
            if !bases.isEmpty { actions.append(.persistBitmap(bases: bases)) }
        }
        actions.append(.recordStop(cleanStop: flushed ? cleanStopValue : 0))
    }

    mutating func hangUp(_ reason: String, into actions: inout [PrimaryNodeAction]) {
        switch link {
        case .idle: break
        case .dialing:
            // A dial being resolved is dropped when it answers; a link being opened closes.
            link = .idle
            actions.append(.closeLink(reason))
        case .up: actions.append(.closeLink(reason))
        }
    }

    /// Once the link is gone and no local I/O runs, the local disk is flushed (always: a
    /// node that stops serving as primary — disabled, demoted, shut down — leaves every
    /// write it answered durable, whatever its disk cache held). Then a write whose local I/O
    /// completed is on this node's disk and is answered as such (unless it still waited for
    /// the peer under `suspend-io` and the node serves nothing after this stop:
    /// answerUnacknowledgedAtStop), a FLUSH is answered if that flush succeeded (a sync one
    /// the peer never confirmed durable, as such a write: the local flush alone does not keep
    /// its promise); anything else fails.
    ///
    /// A hand-over keeps the link through the flush and the demotion record, then sends
    /// Demoted and hangs up: the peer may promote only once this node can no longer come
    /// back as primary.
    mutating func checkStopped(into actions: inout [PrimaryNodeAction]) {
        guard stopping, !stopped, link == .idle || handingOver, localWritesInFlight == 0, !localFlushInFlight,
            !copyReadInFlight, !verifyReadInFlight, localDisk.pulls.isEmpty
        else { return }
        if stopFlushErrno == nil && !diskFailed {
            stopFlushInFlight = true
            localFlushInFlight = true
            return actions.append(.flushLocal)
        }
        // Only now: a clean stop says this volume holds what the peer holds, which a power
        // loss before the flush completed would make false (the cache dies, the record not).
        recordStop(flushed: stopFlushErrno == 0 && !diskFailed, into: &actions)
        if handingOver {
            guard demotionRecorded else {
                if !demotionRequested {
                    demotionRequested = true
                    actions.append(.recordDemotion)
                }
                return
            }
            if link == .up { actions.append(.sendDemoted) }
            // The link's end arrives after `.stopped`, which ignores it.
            hangUp("demoted for a planned failover", into: &actions)
            setConnectionState(.standAlone, into: &actions)
        }
        let flushed = stopFlushErrno == 0 && !diskFailed
        for index in tickets.indices {
            let ticket = tickets[index]
            let errno: Int32
            switch ticket.kind {
            case .free, .copyChunk: continue
            case _ where ticket.answered: continue  // diskless: EIO when the peer went away
            case _ where ticket.needsPeer: errno = PrimaryErrno.eio  // diskless: the peer never confirmed it
            case .write, .zeroes:
                let local = ticket.issuedAll || ticket.kind == .write
                let onDisk = local && ticket.localPending == 0 && !ticket.failed && zeroing?.ticket != index
                errno = onDisk ? answerUnacknowledgedAtStop(into: &actions) : PrimaryErrno.eio
            case .flush:
                // Answered 0, a sync FLUSH says both copies hold what it covers durably: one the
                // peer never confirmed is answered as a write held for it is.
                let waitsForPeer = primary.flushWaitsForPeer(RequestID(index))
                    && config.primary.testingFault != .stopAnswersFlushFromLocalFlush
                errno = !flushed ? PrimaryErrno.eio : waitsForPeer ? answerUnacknowledgedAtStop(into: &actions) : 0
            }
            actions.append(.answer(ticket.request, errno: errno))
        }
        // Applied by the peer, but the record never said this disk lacks them: they fail.
        for lost in localDisk.lostAwaitingRecord { actions.append(.answer(lost.request, errno: PrimaryErrno.eio)) }
        localDisk.lostAwaitingRecord.removeAll()
        while !queue.isEmpty { actions.append(.answer(queue.removeFirst().request, errno: PrimaryErrno.eio)) }
        zeroing = nil
        stopped = true
        actions.append(.stopped)
    }

    /// A write (or WRITE_ZEROES) the stop finds on this disk is one the stream never
    /// acknowledged: admitted sync, it waits for a peer that never said it applied it. Under
    /// `fencing: suspend-io` a stop after which this node serves nothing (shutdown, demotion,
    /// a returned primary's yield) fails it: a write is acknowledged only once it is on both
    /// copies, and the peer may be promoted without it (the yield then resyncs this region
    /// from the promoted node; answered 0, the acknowledged write was lost). Under `dont-care`,
    /// or when the operator disabled replication to serve alone (`.stopToServeAlone`: every
    /// later write is acknowledged alone too), it is answered from this disk, a write the peer
    /// will not get on this link: said first (B moves), as for any write acknowledged alone.
    /// A hand-over's peer gets every write before Demoted. A sync FLUSH still waiting for the
    /// peer's durable confirmation is answered the same way: answered 0 it promises every
    /// write before it durable on both copies, which the stop's local flush alone does not
    /// make true (EIO where the node serves nothing after; 0 after the notice where it serves
    /// alone, a promise now of this copy only).
    private mutating func answerUnacknowledgedAtStop(into actions: inout [PrimaryNodeAction]) -> Int32 {
        guard !handingOver else { return 0 }
        guard config.syncTracksWithoutPeer || stopServesAlone else { return PrimaryErrno.eio }
        noteAcknowledgedWithoutPeer(into: &actions)
        return 0
    }

    // MARK: Disk failure

    mutating func failDisk(_ operation: String, _ errno: Int32, into actions: inout [PrimaryNodeAction]) {
        guard !diskFailed else { return }
        diskFailed = true
        actions.append(.notice(.diskFailed(operation: operation, errno: errno)))
    }
}
