// SecondaryNode's handshake: the primary's Hello and the session verdict, the link's
// establishment and end, committing a new session once it proves itself, and the record
// write. Split from SecondaryNode.swift along its seam; the state is the node's.

extension SecondaryNode {
    mutating func hello(_ facts: PrimaryHelloFacts, nowNs: UInt64, into actions: inout [SecondaryNodeAction]) {
        let hello = facts.hello
        let resource = config.resourceName
        guard !isStopping else { return actions.append(.refuseLink(.busy, "resource '\(resource)' is stopping")) }
        if let diskFault {
            return actions.append(.refuseLink(.diskFailed,
                "the disk of resource '\(resource)' failed: \(diskFault.summary) (errno \(diskFault.errno))"))
        }
        guard let peer = config.peerName, facts.certificateNamesPeer else {
            return actions.append(.refuseLink(.unexpectedNode,
                "the peer's certificate (\(facts.certificateSubject ?? "none")) does not name the configured peer '\(config.peerName ?? "")'"))
        }
        guard hello.nodeName == peer else {
            return actions.append(.refuseLink(.unexpectedNode, "the peer says it is '\(hello.nodeName)', expected '\(peer)'"))
        }
        guard hello.role == .primary else {
            return actions.append(.refuseLink(.roleConflict, hello.role == .secondary
                ? "'\(config.nodeName)' is secondary for '\(resource)' too: neither node is primary"
                : "the peer is not primary"))
        }
        guard hello.volumeSizeBytes == config.volumeSizeBytes else {
            return actions.append(.refuseLink(.sizeMismatch, PeerHelloCheck.sizeMismatchReason(
                own: config.volumeSizeBytes, peer: hello.volumeSizeBytes, ownIsPrimary: false)))
        }
        // A group member waits for its barriers: a primary that cannot send them is refused.
        if let group = config.group, hello.protocolVersion < WireFormat.groupVersion {
            return actions.append(.refuseLink(.unsupportedVersion,
                PeerHelloCheck.olderGroupPeerReason(group: group, peerVersion: hello.protocolVersion)))
        }
        let current = hello.generations.current
        let basis = SessionBasis(generations: hello.generations)
        pendingCatchUp = basis.isCatchUp
        // An unproven session wrote nothing: the copy still holds the recorded one.
        let verdict = SecondarySessionVerdict.decide(
            recordSession: unproven?.session ?? session, recordContinuedFrom: record.continuedFrom, recordSynced: isSynced,
            fresh: record.generation == 0, recordDurableEpoch: record.durableThroughEpoch, session: current,
            basis: basis)
        if case .refuse(let reason) = verdict { return actions.append(.refuseLink(.unrelatedData, reason)) }
        if link != .none {
            // The old connection is closed without a `.linkClosed`: end its session now.
            close("replaced by a new connection from the primary", nowNs: nowNs, into: &actions)
        }
        pendingVerdict = verdict
        pendingSession = current
        primarySendsVerifyEnd = hello.protocolVersion >= WireFormat.verifyEndVersion
        link = .accepted
        actions.append(.acceptLink)
    }

    mutating func established(nowNs: UInt64, into actions: inout [SecondaryNodeAction]) {
        guard link == .accepted else { return }
        if machine.isConnected { feed(.connectionDown, nowNs: nowNs, into: &actions) }
        if pendingSession != session {
            // A new primary session (the primary restarted): its epochs start afresh. The
            // switch stays in memory until the session proves itself (`commitSession`): one
            // that ends before, say in a protocol violation, leaves the recorded session, its
            // durable epoch and the machine as they were.
            guard machine.isIdle, recordRequestedEpoch == nil, !awaitingSessionRecord else {
                return close("writes of the previous session still in flight", nowNs: nowNs, into: &actions)
            }
            // Payloads of the old session would collide with the new sequence numbers.
            actions.append(.releasePayloads)
            unproven = (machine, session)
            machine = ReplicationSecondary(config: config.machine, durableThroughEpoch: 0, restarted: false)
            session = pendingSession
        }
        link = .established
        nextProbeNs = nowNs + config.probeQuietNs
        actions.append(.endProbe)
        confirmedThrough = nil
        newestAsyncReceived = 0
        actions.append(.notice(.connectionState(.connected)))
        feed(.connectionUp, nowNs: nowNs, into: &actions)
    }

    mutating func closed(nowNs: UInt64, into actions: inout [SecondaryNodeAction]) {
        guard link != .none else { return }
        endLink(nowNs: nowNs, into: &actions)
    }

    /// Closes the current connection (the driver reports no `.linkClosed` for it).
    mutating func close(_ reason: String, nowNs: UInt64, into actions: inout [SecondaryNodeAction]) {
        actions.append(.closeLink(reason))
        endLink(nowNs: nowNs, into: &actions)
    }

    mutating func endLink(nowNs: UInt64, into actions: inout [SecondaryNodeAction]) {
        link = .none
        caughtUpOwedGeneration = nil  // owed to that link's primary only
        nextProbeNs = nowNs + config.probeQuietNs  // a quiet period counts from the link's end
        dropHeldDigests()
        endDigestFlush()
        if failoverPending {
            failoverPending = false
            actions.append(.failoverAnswered(demoted: false))
        }
        if machine.isConnected { feed(.connectionDown, nowNs: nowNs, into: &actions) }
        if let previous = unproven {
            // The new session ended before it wrote anything: back to the one recorded.
            unproven = nil
            machine = previous.machine
            session = previous.session
            actions.append(.notice(.sessionAbandoned))
        }
        actions.append(.notice(.connectionState(.wfConnection)))
    }

    /// The new session's first Data frame was accepted, or it confirmed this copy: from now
    /// on it replaces the recorded session. The record says how the session relates to this
    /// volume (`synced: false` while a full copy is under way: Inconsistent, across restarts);
    /// nothing of the session reaches the disk before it is stable (`recorded`).
    mutating func commitSession(into actions: inout [SecondaryNodeAction]) {
        guard let replaced = unproven else { return }
        unproven = nil
        let previous = record
        var synced = true, continuedFrom: UInt64 = 0
        if case .newSession(let nowSynced, let from) = pendingVerdict { (synced, continuedFrom) = (nowSynced, from) }
        record.session = session
        record.durableThroughEpoch = 0
        forgetEpochTimes()
        record.synced = synced
        record.continuedFrom = continuedFrom
        stageIfCatchingUp(previous: previous, previousConsistent: replaced.machine.isConsistent || consistentAtRest,
                          into: &actions)
        writeRecord(into: &actions)
        awaitingSessionRecord = true
    }

    mutating func writeRecord(into actions: inout [SecondaryNodeAction]) {
        // Any non-zero generation says "written" (`fresh` in the session verdict); the store
        // numbers its writes itself.
        record.generation += 1
        actions.append(.writeRecord(record))
    }
}
