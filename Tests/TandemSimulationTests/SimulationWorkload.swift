import Glibc
import TandemCore

// The application side of a simulation run: writes (some FUA), flushes, and dependent writes
// issued only once an earlier write was acknowledged. Without `overlappingWrites` a write
// never overlaps a write still in flight (as a file system would not); with it, a write may
// land on blocks a write in flight covers (NBD allows it; the core serialises them).

extension Simulation {
    func issueRequest(dependent: Bool) {
        guard nowNs <= scenario.workloadEndNs else { return }
        if !dependent {
            guard requestsIssued < scenario.operationCount else { return }
            events.schedule(.appIssue, atNs: nowNs + nextIssueGapNs())
        }
        guard !splitBrainHoldsApplication, let node = livePrimary, outstanding.count < scenario.requestsOutstandingMax
        else { return }
        let request = nextRequest
        if !dependent && random.chance(perMille: 100) { return issueFlush(node) }
        // A detached primary writes straight to its disk: overlapping writes in flight there
        // have no defined order (NBD's rule), so the application does not send them.
        let serialised = node.primary?.standalone == false
        guard let range = scenario.overlappingWrites && serialised ? anyRange() : freeRange() else { return }
        requestsIssued += 1
        nextRequest += 1
        let fua = random.chance(perMille: 100)
        switch random.below(100) {
        case 0..<6: requests[request] = .zeroes(blocks: range, fua: fua, chunks: [])
        case 6..<9: requests[request] = .trim(blocks: range)
        default: requests[request] = .write(blocks: range, fua: fua, value: nil)
        }
        outstanding.append((request, range))
        submitToPrimary(node, request)
    }

    private func anyRange() -> Range<Int> {
        let first = Int(random.below(UInt64(scenario.blockCount)))
        let count = min(Int(random.chance(perMille: 100) ? random.between(4, 8) : random.between(1, 3)), scenario.blockCount - first)
        return first..<(first + count)
    }

    private func freeRange() -> Range<Int>? {
        for _ in 0..<4 {
            let range = anyRange()
            if !outstanding.contains(where: { $0.blocks.overlaps(range) }) { return range }
        }
        return nil
    }

    /// The primary answers without its peer: detached (or detaching) after the peer's disk
    /// failed, or there is no primary.
    var isDetached: Bool {
        guard let node = livePrimary, let primary = node.primary else { return true }
        // Ahead: acknowledged on this copy alone (the peer gets it in the catch-up, if ever).
        return primary.standalone || pendingDetach.contains(node.index) || (primary.node.stopping && !primary.handingOver)
            || primary.node.isAhead || primary.batchAhead
    }

    /// The primary answers a request: `errno` 0 is an acknowledgement.
    func answer(_ request: RequestID, errno: Int32) {
        if answerFarRequest(request, errno: errno) { return }
        guard let index = outstanding.firstIndex(where: { $0.request == request }) else {
            return fail("request \(request) answered twice or never submitted")
        }
        outstanding.remove(at: index)
        requestsAnswered += 1
        switch requests.removeValue(forKey: request) {
        case let .write(blocks, fua, value?):
            // RPO counts acknowledged writes: a write answered EIO (one whose local write failed
            // and whose peer went away before applying it) was never acknowledged, and the
            // node may fail it before its stream machine acknowledged it.
            guard errno == 0 else { return }
            noteAnsweredForRPO(value: value, blocks: blocks)
            let detached = isDetached
            checker.recordWriteAcknowledged(value, blocks: blocks, fua: fua, peerCovered: !detached,
                                            admittedSync: wasAdmittedSync(value))
            // Some writes depend on this one: the application issues them only now.
            if random.chance(perMille: 400) { events.schedule(.appDependentWrite, atNs: nowNs) }
        case let .flush(snapshot):
            guard errno == 0 else { return }
            checker.recordFlushAcknowledged(snapshot: snapshot, peerCovered: flushAnswerCoversPeer)
        case .write(_, _, nil):
            if errno == 0 { fail("request \(request) acknowledged before it was admitted") }
        case let .zeroes(blocks, fua, chunks):
            guard errno == 0 else { return }
            let covered = chunks.reduce(0) { $0 + $1.blocks.count }
            guard covered == blocks.count else {
                return fail("WRITE_ZEROES \(request) of \(blocks.count) blocks acknowledged after chunks of \(covered)")
            }
            let detached = isDetached
            for chunk in chunks {
                // FUA makes the whole request durable (every chunk is written FUA).
                checker.recordWriteAcknowledged(chunk.value, blocks: chunk.blocks, fua: fua, peerCovered: !detached,
                                                admittedSync: wasAdmittedSync(chunk.value))
            }
        case .trim:
            break
        case nil:
            fail("request \(request) is no application request")
        }
    }

    // MARK: RPO

    /// A WRITE the node acknowledged (errno 0) was acknowledged by its stream machine (unless
    /// the node is stopping, which answers what is held without it): until its epoch is
    /// durable on the peer it counts in `lag_bytes` and the RPO age.
    private func noteAnsweredForRPO(value: UInt64, blocks: Range<Int>) {
        guard let node = livePrimary, let primary = node.primary, !primary.standalone, !primary.node.stopping,
            let epoch = checker.histories[primary.session]?.epochOfValue[value]
        else { return }
        answeredUnconfirmed.append((primary.session, epoch, blocks, nowNs))
    }

    /// A lower bound computed independently: the answered WRITEs whose epoch the peer has not
    /// confirmed durable (copy chunks and zero chunks, not visible here, can only add).
    func checkRPO(_ node: SimNode, _ primary: PrimarySide) -> String? {
        let machine = primary.machine
        // Tracking leaves peerDurableEpoch as the peer last confirmed it: a write of an epoch
        // it covers was confirmed, even when the confirmation and going Ahead came in one event.
        answeredUnconfirmed.removeAll { $0.session != primary.session || $0.epoch <= machine.peerDurableEpoch }
        let ageNs = answeredUnconfirmed.map { nowNs - $0.answeredNs }.max() ?? 0
        if primary.node.rpoAgeNs(nowNs: nowNs) < ageNs {
            return "primary \(node.name) reports an RPO age of \(primary.node.rpoAgeNs(nowNs: nowNs)) ns, the oldest answered unconfirmed write is \(ageNs) ns old"
        }
        if primary.node.isAhead {
            // Ahead, the bitmap stands for the peer: every answered write it lacks is marked.
            let bitmap = primary.node.bitmap
            for entry in answeredUnconfirmed {
                for block in entry.blocks where !bitmap.isSet(block: UInt64(block)) {
                    return "primary \(node.name) is Ahead, but block \(block) of an answered write the peer never confirmed is clean in its bitmap"
                }
            }
            return nil
        }
        let bytes = answeredUnconfirmed.reduce(0) { $0 + UInt64($1.blocks.count) * SimulationScenario.blockSizeBytes }
        if machine.lagBytes < bytes {
            return "primary \(node.name) reports lag_bytes \(machine.lagBytes), but answered writes not confirmed durable total \(bytes)"
        }
        if bytes == 0 && machine.lagBytes > 0 && !primary.node.copyWanted && machine.peerDurableEpoch >= machine.openEpoch {
            return "primary \(node.name) reports lag_bytes \(machine.lagBytes) with every epoch confirmed durable"
        }
        return nil
    }

    // MARK: Checks

    /// After every event: the primary holds what it acknowledged, every disk state said is
    /// true, and two nodes that both say they are in sync, with nothing admitted unanswered,
    /// hold the same blocks.
    func checkInvariants() {
        generationsAdoptedWhenUpToDate()
        checkSplitBrain()
        if failure != nil { return }
        for node in nodes where node.alive && !isFarPrimary(node) {
            if node.isPrimary, let primary = node.primary {
                // (Diskless: the acknowledged writes this disk lacks are on the peer.)
                if !lacksWrites(node) && node.lineage == checker.lineage {
                    if let problem = checker.checkPrimary(node.disk, name: node.name) { return fail(problem) }
                }
                guard !primary.standalone else { continue }
                if let problem = checkRPO(node, primary) { return fail(problem) }
                if let problem = checkPeerPoint(node, primary) { return fail(problem) }
                // What the primary says of its peer, once the peer's hello told it anything.
                // (Not while it has not seen an asymmetric cut: Simulation+Partition, *stale claims*.)
                if let link, link.primary == node.index, primary.node.isPeerReady, !isUnawareSideOfCut(node) {
                    let peer = nodes[link.secondary]
                    let claim = peerDiskState(node)
                    // A peer staging a catch-up holds it in its journal (Simulation+Staging).
                    let content = stagesACatchUp(peer) ? journalImage(peer) : peer.disk.cache
                    // Consistent or Outdated while a copy runs speaks of the image at
                    // peer_consistent_as_of — the catch-up's base, a session before this one,
                    // or a point this node knows only as a lower bound: checked through that
                    // point above (Simulation+PeerPoint). Without a point it is counted only.
                    if claim == .consistent || claim == .outdated, primary.node.copyWanted || stagesACatchUp(peer) {
                        if reportedPeerPoint(primary) == nil { stagedPeerClaimsUnchecked += 1 } else { stagedPeerClaimsChecked += 1 }
                        continue
                    }
                    // UpToDate is a claim about the peer's volume: a catch-up staged and not yet
                    // committed and applied is not on it (PrimaryNode+CaughtUp; before, the
                    // primary said UpToDate at SyncComplete and the check read the journal).
                    if claim == .upToDate, peer.alive, !peer.diskFailed, stagesACatchUp(peer) {
                        return fail("primary \(node.name) says its peer \(peer.name) is UpToDate while the peer's catch-up is staged, not on its volume")
                    }
                    let session = primary.session
                    if peer.alive, !peer.diskFailed, let problem = checker.checkClaim(
                        claim, by: "primary \(node.name) about its peer \(peer.name)",
                        content: content, session: session, currentLineage: true) {
                        return fail(problem)
                    }
                }
            } else if !node.isPrimary {
                guard !isUnawareSideOfCut(node) else { continue }
                let claim = secondaryDiskState(node)
                if stagesACatchUp(node) {
                    if node.secondary?.diskFault == nil, let problem = checkStagedCopy(node, claim: claim) { return fail(problem) }
                    continue
                }
                node.journal.untouched = nil
                let session = contentSession(node)
                let currentLineage = checker.isCurrentLineage(session: session)
                // An async UpToDate rests on the SyncComplete it received (sync: exact).
                let through = scenario.mode == .async && node.secondary?.session == session ? node.secondary?.confirmedThrough : nil
                if let session, let problem = checker.checkClaim(
                    claim, by: "secondary \(node.name)", content: node.disk.cache, session: session,
                    currentLineage: currentLineage, confirmedThrough: through) {
                    return fail(problem)
                }
                // (While a full copy is due the peer lacks the regions not copied yet.)
                if scenario.mode == .sync || scenario.adaptive != nil, currentLineage, node.record.synced, claim != .failed,
                    let problem = checker.checkSecondaryDurable(node.disk, name: node.name) {
                    return fail(problem)
                }
            }
        }
        if let primaryNode = livePrimary, let link, link.primary == primaryNode.index, !link.impostor, link.unaware == nil {
            let secondaryNode = nodes[link.secondary]
            let admittedUnanswered = outstanding.contains {
                switch requests[$0.request] {
                case .write(_, _, _?): true
                case let .zeroes(_, _, chunks): !chunks.isEmpty
                default: false
                }
            }
            let inSync = !admittedUnanswered && secondaryNode.alive && !lacksWrites(primaryNode)
                && peerDiskState(primaryNode) == .upToDate && secondaryDiskState(secondaryNode) == .upToDate
            if inSync { stepsInSync += 1 }
            if inSync, primaryNode.disk.cache != secondaryNode.disk.cache {
                return fail("both nodes say UpToDate with nothing unanswered, but primary \(primaryNode.name) holds \(primaryNode.disk.cache) and secondary \(secondaryNode.name) \(secondaryNode.disk.cache)")
            }
        }
    }

    /// At the end the pair has had time to settle: a live primary has answered everything,
    /// the secondary holds exactly the primary's content, both say UpToDate, the lag is 0.
    func checkSettled() {
        guard let primaryNode = livePrimary, let primary = primaryNode.primary else {
            return fail("no primary after the pair settled")
        }
        if !outstanding.isEmpty {
            return fail("\(outstanding.count) requests still unanswered after the pair settled: \(outstanding.map(\.request))")
        }
        if nodes.contains(where: { $0.diskFailed || $0.secondary?.diskFault != nil }) { return }
        if primaryNode.localLacksWrites {
            return fail("primary \(primaryNode.name)'s disk works again but still lacks writes its peer holds after the pair settled")
        }
        if scenario.periodNs != nil { return checkSettledPeriodic(primaryNode, primary) }
        guard let link, link.primary == primaryNode.index else { return fail("the pair did not reconnect") }
        let secondaryNode = nodes[link.secondary]
        let claim = secondaryDiskState(secondaryNode)
        let peerClaim = peerDiskState(primaryNode)
        guard claim == .upToDate, peerClaim == .upToDate else {
            return fail("after settling the secondary says \(claim.rawValue) and the primary says \(peerClaim.rawValue) of it")
        }
        if secondaryNode.disk.cache != primaryNode.disk.cache {
            return fail("settled volumes differ: primary \(primaryNode.disk.cache), secondary \(secondaryNode.disk.cache)")
        }
        if primary.machine.lagBytes != 0 { return fail("lag of \(primary.machine.lagBytes) bytes after settling") }
    }
}
