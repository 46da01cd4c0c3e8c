// PrimaryNode's link: the operator's enable and disable, dialling with backoff, the peer's
// Hello (resource, size, role), the link's up and down (a peer's `unrelated-data` refusal
// starts a full copy, `disk-failed` is reported), the peer's messages (its ReplicaHello says
// what its copy holds) and SyncComplete, which tells the peer it holds every acknowledged
// write.

extension PrimaryNode {
    // MARK: Link

    mutating func enable(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard !stopping else { return }
        enabled = true
        nextDialNs = 0
        backoffNs = config.backoffInitialNs
        setConnectionState(.connecting, into: &actions)
        dialIfDue(nowNs: nowNs, into: &actions)
    }

    mutating func disable(into actions: inout [PrimaryNodeAction]) {
        // The stop is recorded by `.stop`, after the local flush (checkStopped).
        enabled = false
        // Diskless: the stop that follows drains the peer over this link first (+PeerDrain).
        if stopDrainsPeer { return }
        hangUp("disabled by the operator", into: &actions)
        setConnectionState(.standAlone, into: &actions)
    }

    /// Judges the Hello of the peer this node dialled, as `SecondaryNode` judges a primary's:
    /// the peer must serve the same resource, on a volume of the same size, as secondary. Its
    /// certificate was checked against the configured peer by TLS already. The resource's name
    /// is the driver's (the node's config does not carry it). Changes nothing.
    /// The dialled peer's Hello, as PeerHelloCheck judges it (`own`: this node's generations
    /// and split-brain setting; its resource and size are the node's).
    public func judgePeerHello(_ hello: WireHello, own: OwnHelloFacts) -> PeerHelloOutcome {
        var facts = own
        facts.volumeSizeBytes = config.volumeSizeBytes
        facts.role = .primary
        return PeerHelloCheck.judge(own: facts, hello: hello)
    }

    mutating func setConnectionState(_ state: ConnectionState, into actions: inout [PrimaryNodeAction]) {
        guard state != connectionState else { return }
        connectionState = state
        actions.append(.notice(.connectionState(state)))
    }

    mutating func dialIfDue(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard enabled, !stopping, config.hasPeer, link == .idle, nowNs >= nextDialNs,
            periodicLetsDial(nowNs: nowNs)
        else { return }
        startCycleIfIdle(nowNs: nowNs, into: &actions)
        nextDialNs = nowNs + backoffNs
        backoffNs = min(backoffNs * 2, config.backoffMaxNs)
        link = .dialing
        prepareCatchUpSession()
        setConnectionState(.connecting, into: &actions)
        actions.append(.dial)
    }

    mutating func linkUp(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        precondition(link != .up, "link up twice")
        link = .up
        peerOutdatedConfirmed = false  // the peer is back: what it lacks is its catch-up's
        guard enabled, !stopping else {
            return actions.append(.closeLink(stopping ? "resource stopping" : "disabled by the operator"))
        }
        // After a loss the next tick redials at once, then backs off from 250 ms again.
        backoffNs = config.backoffInitialNs
        nextDialNs = 0
        confirmedOnLink = nil
        acknowledgedWithoutPeerNoted = false
        if isAhead {
            // Only a catch-up session's link may end Ahead (a dial opened before it was hung up).
            guard restartOnLinkUp else { return actions.append(.closeLink("the node went Ahead")) }
            restartPending = true
            setConnectionState(.connected, into: &actions)
            return  // the stream starts once the old one is quiet (restartStreamIfQuiet)
        }
        setConnectionState(.connected, into: &actions)
        drive(.connectionUp, nowNs: nowNs, into: &actions)
    }

    mutating func linkDown(
        _ reason: String, refusal: WireRefusal?, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        link = .idle
        // `awaitingCaughtUp` stays: the peer's word is owed on the next link (PrimaryNode+CaughtUp).
        let pendingBasis = pendingSession?.basis
        restartPending = false
        pendingSession = nil
        deferredPeerHello = nil
        if primary.isConnected { drive(.connectionDown, nowNs: nowNs, into: &actions) }
        if refusal == .unrelatedData {
            if let pendingBasis {
                // A catch-up refused: the peer holds none of its bases; the next one copies all.
                if pendingBasis != .fullCopy { refuseCatchUp(because: reason, into: &actions) }
            } else if basis != .fullCopy {
                startFullCopy(because: reason, into: &actions)
            }
        }
        if refusal == .diskFailed { actions.append(.notice(.peerDiskFailed(reason))) }
        setConnectionState(enabled && !stopping ? .connecting : .standAlone, into: &actions)
    }

    /// A write is about to be acknowledged: without the link, the peer will not get it on it.
    mutating func noteAcknowledgedWithoutPeer(into actions: inout [PrimaryNodeAction]) {
        guard link != .up, !acknowledgedWithoutPeerNoted else { return }
        acknowledgedWithoutPeerNoted = true
        actions.append(.notice(.acknowledgedWithoutPeer))
    }

    /// The peer cannot continue from this session's basis: copy the whole volume.
    private mutating func startFullCopy(because reason: String, into actions: inout [PrimaryNodeAction]) {
        basis = .fullCopy
        // The peer holds none of the bases: the next sessions copy everything.
        catchUpBases = []
        markWholeVolume()
        invalidateCleanStop(into: &actions)
        actions.append(.notice(.fullCopyStarted(reason: reason)))
    }

    mutating func peerMessage(
        _ message: SecondaryMessage, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        if restartPending {
            // The catch-up session's stream has not started: only its ReplicaHello may come.
            guard case .hello = message, deferredPeerHello == nil else {
                return actions.append(.protocolViolation("a secondary message before its ReplicaHello"))
            }
            deferredPeerHello = message
            return
        }
        // A message read before the link was dropped (e.g. after a violation) is stale.
        guard link == .up, primary.isConnected else { return }
        if case let .hello(durable, _) = message, !primary.isPeerReady, durable < primary.peerDurableEpoch {
            // The peer confirmed more before: its record was lost or replaced (a corrupt
            // slot, `create-md`). The writes it lacks were released here, so no re-send can
            // repair it, and this session's Hello would meet the same record again: the
            // owner records that the peer lacks writes and starts a new session that copies.
            let reason = "the peer's record says durable through epoch \(durable), below the "
                + "\(primary.peerDurableEpoch) it confirmed: it lost its record, so the volume is copied"
            actions.append(.notice(.peerNeedsFullCopy(reason)))
            return actions.append(.closeLink(reason))
        }
        drive(.peerMessage(message), nowNs: nowNs, into: &actions)
        guard case let .hello(_, copy) = message, primary.isPeerReady else { return }
        peerHeard = true
        notePeerCopyAtHello(copy)
        // A peer that says it is inconsistent (it restarted after a crash) holds an epoch
        // prefix only once the writes re-sent now are durable there.
        let resent = primary.newestHeldEpoch
        if copy == .inconsistent || copy == .failed, resent > primary.peerDurableEpoch {
            peerInconsistentThroughEpoch = max(peerInconsistentThroughEpoch ?? 0, resent)
        } else if copy == .inconsistent || copy == .failed {
            notePeerInconsistentWithNothingToResend()
        }
    }

    /// Tells the peer it holds every acknowledged write (SyncComplete), whenever that
    /// becomes true: in sync mode once per link (writes are acknowledged only after the peer
    /// applied them), in async mode each time the lag returns to 0 after new writes.
    mutating func confirmPeerIfInSync(into actions: inout [PrimaryNodeAction]) {
        guard isPeerReady, !copyWanted else { return }
        let sync = config.primary.mode == .sync
        guard sync || primary.lagBytes == 0 else { return }
        // Async: only through the acknowledged prefix. A write admitted but not yet
        // acknowledged may be acknowledged before the peer applied it, so the peer's UpToDate
        // must not cover it; once it arrives there the peer is Consistent until the next
        // SyncComplete. Sync: every write is acknowledged only after the peer applied it.
        let through = sync ? primary.lastSequence : primary.acknowledgedThroughSequence
        if confirmedOnLink == nil || (!sync && confirmedOnLink != through) {
            // Diskless: a write answered EIO when the peer went away is still carried and may
            // be on one disk only until the stream is done with it (+Diskless).
            guard !carriesWritesAnsweredEarly else { return }
            confirmedOnLink = through
            actions.append(.sendSyncComplete(throughSequence: through))
        }
    }
}
