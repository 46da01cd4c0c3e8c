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
            events.schedule(.appIssue, atNs: nowNs + random.between(1_000, 120_000))
        }
        guard let node = livePrimary, outstanding.count < scenario.requestsOutstandingMax else { return }
        let request = nextRequest
        if !dependent && random.chance(perMille: 100) {
            requestsIssued += 1
            nextRequest += 1
            requests[request] = .flush(snapshot: checker.ackedRequired)
            outstanding.append((request, 0..<0))
            return submitToPrimary(node, request)
        }
        guard let range = scenario.overlappingWrites ? anyRange() : freeRange() else { return }
        requestsIssued += 1
        nextRequest += 1
        let fua = random.chance(perMille: 100)
        requests[request] = .write(blocks: range, fua: fua, value: nil)
        outstanding.append((request, range))
        submitToPrimary(node, request)
    }

    private func anyRange() -> Range<Int> {
        let first = Int(random.below(UInt64(scenario.blockCount)))
        let count = min(Int(random.between(1, 3)), scenario.blockCount - first)
        return first..<(first + count)
    }

    private func freeRange() -> Range<Int>? {
        for _ in 0..<4 {
            let range = anyRange()
            if !outstanding.contains(where: { $0.blocks.overlaps(range) }) { return range }
        }
        return nil
    }

    /// The primary answers a request: `errno` 0 is an acknowledgement.
    func answer(_ request: RequestID, errno: Int32) {
        guard let index = outstanding.firstIndex(where: { $0.request == request }) else {
            return fail("request \(request) answered twice or never submitted")
        }
        outstanding.remove(at: index)
        requestsAnswered += 1
        switch requests.removeValue(forKey: request) {
        case let .write(blocks, fua, value?):
            guard errno == 0 else { return }
            let detached = livePrimary?.primary?.standalone ?? true
            checker.recordWriteAcknowledged(value, blocks: blocks, fua: fua, peerCovered: !detached)
            // Some writes depend on this one: the application issues them only now.
            if random.chance(perMille: 400) { events.schedule(.appDependentWrite, atNs: nowNs) }
        case let .flush(snapshot):
            guard errno == 0 else { return }
            let peerCovered = livePrimary?.primary.map { $0.peerSynced && !$0.standalone } ?? false
            checker.recordFlushAcknowledged(snapshot: snapshot, peerCovered: peerCovered)
        case .write(_, _, nil):
            if errno == 0 { fail("request \(request) acknowledged before it was admitted") }
        case .copyChunk, nil:
            fail("request \(request) is no application request")
        }
    }

    // MARK: Checks

    /// After every event: the primary holds what it acknowledged, every disk state said is
    /// true, and two nodes that both say they are in sync, with nothing admitted unanswered,
    /// hold the same blocks.
    func checkInvariants() {
        for node in nodes where node.alive {
            if node.isPrimary, let primary = node.primary {
                if !node.diskFailed && node.lineage == checker.lineage {
                    if let problem = checker.checkPrimary(node.disk, name: node.name) { return fail(problem) }
                }
                guard !primary.standalone else { continue }
                if let problem = rpo.check(primary.machine, nowNs: nowNs) { return fail(problem) }
                // What the primary says of its peer, once the peer's hello told it anything.
                if let link, link.primary == node.index, primary.machine.isPeerReady {
                    let peer = nodes[link.secondary]
                    let claim = peerDiskState(node)
                    if peer.alive, !peer.diskFailed, let problem = checker.checkClaim(
                        claim, by: "primary \(node.name) about its peer \(peer.name)", content: peer.disk.cache,
                        session: primary.session, currentLineage: true) {
                        return fail(problem)
                    }
                }
            } else if !node.isPrimary {
                let claim = secondaryDiskState(node)
                let session = contentSession(node)
                let currentLineage = checker.isCurrentLineage(session: session)
                // An async UpToDate rests on the SyncComplete it received (sync: exact).
                let through = scenario.mode == .async && node.secondary?.session == session ? node.secondary?.confirmedThrough : nil
                // Known gap (SecondaryNode.diskState): while a new session is unproven, the state
                // comes from its fresh machine and the old record, so a restarted copy being
                // replaced by a full copy says Consistent until the first Data. Tolerated and
                // counted until fixed (docs/replication.md "The simulator", known gaps).
                if let secondary = node.secondary, secondary.session != secondary.record.session,
                    SimulationKnownGaps.unprovenSessionDiskState {
                    if let session, checker.checkClaim(claim, by: "", content: node.disk.cache, session: session,
                                                        currentLineage: currentLineage) != nil {
                        SimulationKnownGaps.count(\.unprovenSessionDiskState)
                    }
                } else if let session, let problem = checker.checkClaim(
                    claim, by: "secondary \(node.name)", content: node.disk.cache, session: session,
                    currentLineage: currentLineage, confirmedThrough: through) {
                    return fail(problem)
                }
                // (While a full copy is due the peer lacks the regions not copied yet.)
                if scenario.mode == .sync, currentLineage, node.record.synced, claim != .failed,
                    let problem = checker.checkSecondaryDurable(node.disk, name: node.name) {
                    return fail(problem)
                }
            }
        }
        if let primaryNode = livePrimary, let link, link.primary == primaryNode.index, !link.impostor {
            let secondaryNode = nodes[link.secondary]
            let admittedUnanswered = outstanding.contains { if case .write(_, _, _?) = requests[$0.request] { true } else { false } }
            if !admittedUnanswered, secondaryNode.alive, !primaryNode.diskFailed,
                peerDiskState(primaryNode) == .upToDate, secondaryDiskState(secondaryNode) == .upToDate,
                primaryNode.disk.cache != secondaryNode.disk.cache {
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
            return fail("\(outstanding.count) requests still unanswered after the pair settled")
        }
        if nodes.contains(where: { $0.diskFailed || $0.secondary?.diskFault != nil }) { return }
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

/// The RPO the primary should report, computed independently from what it acknowledged and
/// which durable epochs the simulator delivered to it.
struct RPOReference {
    private var epochOf: [WriteSequence: (epoch: Epoch, lengthBytes: UInt64)] = [:]
    private var unconfirmed: [(sequence: WriteSequence, epoch: Epoch, lengthBytes: UInt64, ackNs: UInt64)] = []
    private var confirmedEpoch: Epoch = 0

    mutating func admitted(_ write: LocalWrite) {
        epochOf[write.sequence] = (write.epoch, UInt64(write.lengthBytes))
    }

    mutating func acknowledged(_ sequence: WriteSequence, atNs: UInt64) {
        guard let (epoch, lengthBytes) = epochOf.removeValue(forKey: sequence) else { return }
        if epoch > confirmedEpoch { unconfirmed.append((sequence, epoch, lengthBytes, atNs)) }
    }

    mutating func confirm(through epoch: Epoch) {
        confirmedEpoch = max(confirmedEpoch, epoch)
        unconfirmed.removeAll { $0.epoch <= confirmedEpoch }
    }

    func check(_ primary: ReplicationPrimary, nowNs: UInt64) -> String? {
        let lagBytes = unconfirmed.reduce(0) { $0 + $1.lengthBytes }
        if primary.lagBytes != lagBytes {
            return "primary reports lag_bytes \(primary.lagBytes), acknowledged-but-unconfirmed writes total \(lagBytes)"
        }
        let ageNs = unconfirmed.map { nowNs - $0.ackNs }.max() ?? 0
        if primary.rpoAgeNs(nowNs: nowNs) != ageNs {
            return "primary reports rpo age \(primary.rpoAgeNs(nowNs: nowNs)) ns, the oldest unconfirmed write is \(ageNs) ns old"
        }
        return nil
    }
}

/// Gaps of the node machines the simulator found, tolerated (and counted) so that the suite
/// checks everything else; each is in docs/replication.md ("The simulator") and is removed
/// here when fixed.
enum SimulationKnownGaps {
    /// SecondaryNode.diskState during an unproven new session: Consistent from the fresh
    /// machine and the old record's `synced`, even when the Hello announced a full copy and
    /// the copy is a restarted, not crash-consistent one.
    static let unprovenSessionDiskState = true

    struct Counts {
        var unprovenSessionDiskState = 0
    }

    nonisolated(unsafe) static var counts = Counts()
    static let lock = NSLockLike()

    static func count(_ gap: WritableKeyPath<Counts, Int>) {
        lock.withLock { counts[keyPath: gap] += 1 }
    }
}
