import TandemCore

// The primary's `peer_consistent_as_of` (PrimaryNode.peerConsistentAsOf), checked against the
// peer's real state after every step. The point (S, E) promises that the peer's consistent
// image holds at least session S's history through epoch E: every write of S admitted in an
// epoch up to E (E = epochAll: every write of S), or, where S wrote nothing to a block by
// then, S's base there. It is a lower bound — the peer may have made more durable than it
// confirmed — so the check is per block on the write identities, which grow in admission
// order over the whole run: the image's block must hold that write or a newer one.
//
// Which image: the peer's volume as its disk holds it durably (the point is what the peer
// confirmed durable, so it must survive the peer's power loss), or, once a staged catch-up's
// commit is durable, that volume with the journal replayed (the image the peer serves after
// a restart or promotion). A point is never claimed of an Inconsistent copy (nil then).
//
// Found by this check (2026-12-06): the primary's point runs ahead of a staging peer's
// consistent image. A peer that stages a catch-up confirms epochs durable once they are in its
// journal, and the primary takes its point from those confirmations; but the image the peer
// would serve (after a restart or a promotion) gains them only with the commit, which follows
// the SyncComplete's arrival. When the link drops between the SyncComplete and its arrival —
// periodic mode closes the link right after it, and every cycle to a staging peer does this —
// the point names the staged session for as long as the journal waits uncommitted (until the
// next catch-up resumes and commits it). The writes are durable on the peer (in the journal),
// so the check then holds the point against the journal and counts the step
// (`peerPointsAheadOfCommit`). Worse, the point can name a staged catch-up session whose copy
// never completed (the link lost mid-copy, the node Ahead: `catchUpBases.first` is that
// session at its confirmed epoch): that session's base — the whole primary content at its
// start — is then on the peer neither in the volume nor in the journal (seed 28 of the
// periodic run; also after the commit of a later catch-up, and without staging). Wherever the
// point names a copy session whose copy never completed (`peerPointsOfIncompleteCopies`), only
// the writes of the point's epochs are required. Closing the gap
// needs the peer to confirm its commit (a wire message of its own) and the point to stay at
// the untouched image's until the copy is complete; neither is done yet (docs/replication.md,
// *The simulator*).
//
// Before this check the primary's Consistent/Outdated about a peer whose copy runs (staged
// catch-up) was counted, not checked (`stagedPeerClaimsUnchecked`): such a claim speaks of
// the image at the point, so it is checked here, through the point.

extension Simulation {
    /// A primary session starts: whether it begins with a copy.
    func noteCopySession(_ session: UInt64, basis: SessionBasis) {
        switch basis {
        case .fullCopy, .catchUp: copySessions.insert(session)
        case .continues, .assumeInSync: break
        }
    }

    /// The point the primary reports (status `peer_consistent_as_of`). The seeded fault
    /// `peerPointNamesSentEpoch` names the epoch the primary last opened (sent) instead of the
    /// one the peer confirmed durable: a primary that reports its hopes.
    func reportedPeerPoint(_ primary: PrimarySide) -> ConsistentPoint? {
        guard var point = primary.node.peerConsistentAsOf else { return nil }
        if scenario.testingFault == .peerPointNamesSentEpoch, point.session == primary.session, !point.wholeSession {
            point.epoch = max(point.epoch, primary.machine.openEpoch)
        }
        return point
    }

    /// The primary's point about its peer is true of the peer's image. Not while the primary
    /// has not seen an asymmetric cut (its word is stale: Simulation+Partition), not of a peer
    /// whose disk failed, and not of a peer that is primary itself (a failover's fencing).
    func checkPeerPoint(_ node: SimNode, _ primary: PrimarySide) -> String? {
        guard let point = reportedPeerPoint(primary) else { return nil }
        let peer = nodes[1 - node.index]
        guard !peer.isPrimary, !peer.diskFailed, peer.secondary?.diskFault == nil, !isUnawareSideOfCut(node) else {
            return nil
        }
        guard let history = checker.histories[point.session] else {
            return "primary \(node.name) says its peer \(peer.name) is consistent as of session \(point.session), which never ran"
        }
        // A diskless primary's start after a crash names its session's start, but the peer may
        // still cache writes of the last session it never flushed (a found inaccuracy, not yet
        // fixed: docs/replication.md, *The diskless primary*): counted, not compared.
        if primary.startedLacking, point.session == primary.session, point.epoch == 0, peer.disk.durable != peer.disk.cache {
            peerPointsOfLackingStarts += 1
            return nil
        }
        let image: [UInt64]
        let which: String
        var entriesOnly = false
        if let staged = peer.record.staging, staged.committed {
            // A committed journal moved the image to the catch-up's session: a point of an
            // earlier session (the base the primary still names until it hears more) is
            // superseded — values are no bound across sessions (a primary's power loss may
            // have taken back writes the peer held). After a no-room commit the peer says
            // Inconsistent itself and the primary learns it with CatchUpInPlace.
            guard point.session == peer.record.session else {
                peerPointsSuperseded += 1
                return nil
            }
            image = journalImage(peer, through: staged.journalBytes)
            which = "volume with its committed journal replayed"
        } else if let staged = peer.record.staging ?? peer.secondary?.record.staging,
            point.session != (staged.fromSession != 0 ? staged.fromSession : peer.historySession) {
            // The point names a session staged in the journal (the catch-up's, or a later one
            // that resumed the journal), not the untouched image's: the commit is not durable, so
            // its writes are durable in the journal, not in the consistent image (counted).
            image = journalImage(peer)
            which = "journal (uncommitted)"
            peerPointsAheadOfCommit += 1
            // Only the writes the point's epochs carried are durable there: the session's base is
            // the peer's only once the catch-up's copy is complete, and it may not be (header).
            entriesOnly = true
        } else {
            // The volume belongs to the peer's recorded session: once that is a later session
            // than the point's (a catch-up in place, or an applied journal, before the primary
            // hears of it), the point is superseded, as above.
            let volumeSession = (peer.secondary?.record.session).flatMap { $0 != 0 ? $0 : nil } ?? contentSession(peer)
            if peer.record.staging == nil && peer.secondary?.record.staging == nil, volumeSession != point.session {
                peerPointsSuperseded += 1
                return nil
            }
            image = peer.disk.durable
            which = "durable volume"
        }
        peerPointsChecked += 1
        // A copy session's base is the peer's only once its copy completed (header).
        if copySessions.contains(point.session) && !copiedSessions.contains(point.session) && !entriesOnly {
            entriesOnly = true
            peerPointsOfIncompleteCopies += 1
        }
        for block in 0..<history.base.count {
            var required = point.wholeSession
                ? history.entries[block].last?.value ?? history.base[block]
                : history.newestBefore(epoch: point.epoch &+ 1, block: block)
            if entriesOnly && required == history.base[block] { required = 0 }
            if image[block] < required {
                let epoch = point.wholeSession ? "every epoch" : "epoch \(point.epoch)"
                return "primary \(node.name) says its peer \(peer.name) is consistent as of session \(point.session) \(epoch), but the peer's \(which) holds \(image[block]) at block \(block), where that point has \(required)"
            }
        }
        return nil
    }
}
