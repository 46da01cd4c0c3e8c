import Glibc
import TandemCore

// A diskless primary (PrimaryNode+Diskless decides), carried out as the daemon's driver does
// (PrimaryReplicator+Diskless, Resource+Diskless):
//
// - `.recordLocalLacksWrites(true)`: the metadata flag `local-lacks-writes`, written at once
//   and durable (the metadata file lives on another device than the volume, the default: its
//   write succeeds whatever the failed disk does); it survives every crash, and a start whose
//   record holds it begins lacking the whole volume (`PrimaryStartFacts.localLacksWrites`; the
//   record keeps no regions here: `keepsLackingRegions` is off, as with a driver that cannot).
// - `.recordLocalLacksWrites(false)`: the volume is flushed first, then the flag cleared; a
//   failed flush leaves it (the node fails the disk).
// - `.pullRegion`: a ReadRequest to the peer (the pull's tag has bit 63), whose reply is
//   written here (not FUA), then `.regionPulled`; without a link, or when it goes down, the
//   region is pulled again later.
// - The operator replaces a failed disk (`diskReplacedAfterNs` after it failed): disable (the
//   node stops), a new disk, enable: the node restarts from its record with the disk working.
//   The disable is production's (`ResourceRoles.disable`): refused while writes acknowledged
//   through the peer are not durable there and the peer is not connected, else the peer drains
//   them first (`.drainPeerBeforeStop`, refused if that fails); the operator asks again later.
// - A stop (the disable's, a clean restart's SIGTERM) drains the peer itself (PrimaryNode+
//   PeerDrain), bounded by the link liveness timeout (`peerDrainTimeoutNs` without one). One
//   that cannot says so (`.peerDrainFailed`): from then on the writes it named are in the peer's
//   cache only, and the peer's power loss may take them (the checker is lowered to what the
//   peer keeps) until this disk is resynced.
//
// The checks this needs: while the record says this disk lacks writes it is not held to the
// acknowledged writes (they are on the peer), a power loss of it lowers nothing, and the "in
// sync, volumes equal" check waits; once the flag is cleared, all apply again, and a settled
// run whose disk was replaced must have cleared it.

extension Simulation {
    static let pullTagBit: UInt64 = 1 << 63
    /// A diskless stop's drain deadline when the scenario has no link liveness timeout.
    static let peerDrainTimeoutNs: UInt64 = 5_000_000

    /// The primary's actions of a diskless mode: true when `action` was one.
    func performDiskless(_ action: PrimaryNodeAction, node: SimNode, primary: PrimarySide) -> Bool {
        switch action {
        case let .recordLocalLacksWrites(set):
            if set {
                node.localLacksWrites = true
                drivePrimary(node, .localLacksWritesRecorded(set: true, errno: 0, reason: nil))
            } else {
                submitFlush(node, io: .pullFlush(session: primary.session))
            }
        case let .pullRegion(offset, length):
            primary.pullsSent += 1
            let tag = Self.pullTagBit | primary.pullsSent
            let region = PulledRegion(offsetBytes: offset, lengthBytes: length)
            guard let link, link.primary == node.index, primary.peerAccepted else {
                drivePrimary(node, .regionPulled(offsetBytes: offset, lengthBytes: length, errno: ENOTCONN, local: false))
                return true
            }
            primary.pulls[tag] = region
            sendToSecondary(.readRequest(WireReadRequest(tag: tag, offsetBytes: offset, lengthBytes: length)))
        case let .notice(.localDisk(notice)):
            switch notice {
            case .writesThroughPeer: disklessEntered += 1
            case .resyncStarted: localResyncsStarted += 1
            case let .resynced(pulled):
                localResyncsDone += 1
                pulledBytes += pulled
            case .peerDrainStarted:
                peerDrainsStarted += 1
            case .peerDrained:
                peerDrainsDone += 1
            case let .peerDrainFailed(bytes, _, stopping):
                peerDrainsFailed += 1
                if stopping && bytes > 0 { stopDroppedUnflushedWrites(node) }
            }
        case let .peerDrainedBeforeStop(failure):
            disableDrained(node, primary, failure: failure)
        default:
            return false
        }
        return true
    }

    /// A pull's ReadReply: the region is written here, or pulled again later.
    func pullReplied(_ node: SimNode, _ primary: PrimarySide, tag: UInt64, errno: Int32, values: [UInt64]) {
        guard let region = primary.pulls.removeValue(forKey: tag) else {
            return fail("primary \(node.name) got a ReadReply for pull tag \(tag), which no pull is waiting for")
        }
        let range = blocks(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes)
        guard errno == 0, values.count == range.count else {
            return drivePrimary(node, .regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes,
                                                    errno: errno == 0 ? EIO : errno, local: false))
        }
        submitWrite(node, FakeDisk.Extent(firstBlock: range.lowerBound, values: values), fua: false,
                    io: .pullWrite(region, session: primary.session))
    }

    /// The link is gone: every pull still waiting for its reply is pulled again later.
    func failPullsAwaitingPeer(_ node: SimNode, _ primary: PrimarySide) {
        for (tag, region) in primary.pulls.sorted(by: { $0.key < $1.key }) {
            primary.pulls[tag] = nil
            drivePrimary(node, .regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes,
                                             errno: ECONNRESET, local: false))
        }
    }

    /// A pull's local write, or the flush before the flag is cleared, completed.
    func disklessIOCompleted(_ node: SimNode, _ io: SimNode.IO, result: Int32) {
        switch io {
        case let .pullWrite(region, session):
            guard node.primary?.session == session else { return }
            drivePrimary(node, .regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes,
                                             errno: result, local: result != 0))
        case let .pullFlush(session):
            guard node.primary?.session == session else { return }
            if result == 0 {
                node.localLacksWrites = false
                node.acknowledgedOnlyInPeerCache = false  // this disk holds them durably now
            }
            drivePrimary(node, .localLacksWritesRecorded(set: false, errno: result, reason: result == 0 ? nil : "flush"))
        default:
            preconditionFailure("\(io) is no diskless I/O")
        }
    }

    /// The replicating primary's disk failed: the operator replaces it later, if the scenario says so.
    func scheduleDiskReplacement(_ node: SimNode) {
        guard let afterNs = scenario.diskReplacedAfterNs else { return }
        events.schedule(.diskReplaced(node: node.index, incarnation: node.incarnation), atNs: nowNs + afterNs)
    }

    /// Disable, a new disk, enable: the node stops (its record keeps `local-lacks-writes`) and
    /// starts again with the disk working (`restart` clears the failure). The disable is the
    /// daemon's (ResourceRoles.disable, Resource+Disable): refused while writes acknowledged
    /// through the peer are not durable there and the peer is not connected (they exist only in
    /// its cache and this process's memory: seed 2 of the diskless class lost one so), else the
    /// peer drains them first. Refused, the operator asks again later, as one told `wrong-state`.
    func replaceDisk(_ node: SimNode) {
        guard node.alive, node.diskFailed, let primary = node.primary, !primary.standalone, !primary.handingOver,
            !primary.restartWhenStopped, !primary.node.stopping, !primary.node.isDrainingPeer
        else { return }
        let facts = ResourceRoleFacts(name: "r0", role: .primary, enabled: true, transitioning: false,
                                      acknowledgedOnlyInMemoryBytes: primary.node.acknowledgedOnlyInMemoryBytes)
        switch ResourceRoles.disable(facts, peerConnected: primary.node.isPeerReady) {
        case .failure:
            replacementWaits(node)
        case .success(.stopNow):
            stopToReplaceDisk(node, primary)
        case .success(.drainPeerThenStop):
            trace("the operator's disable of \(node.name): its peer drains first")
            drivePrimary(node, .drainPeerBeforeStop)
        }
    }

    private func replacementWaits(_ node: SimNode) {
        replacementsWaited += 1
        events.schedule(.diskReplaced(node: node.index, incarnation: node.incarnation), atNs: nowNs + 500_000)
    }

    private func stopToReplaceDisk(_ node: SimNode, _ primary: PrimarySide) {
        disksReplaced += 1
        trace("the operator replaces \(node.name)'s failed disk: disable, enable")
        primary.restartWhenStopped = true
        drivePrimary(node, .stop)
    }

    /// `.peerDrainedBeforeStop`: the disable goes on, or was refused (asked again later).
    private func disableDrained(_ node: SimNode, _ primary: PrimarySide, failure: String?) {
        guard !primary.node.stopping else { return }
        guard failure == nil else { return replacementWaits(node) }
        stopToReplaceDisk(node, primary)
    }

    /// A diskless stop dropped writes it acknowledged through the peer that the peer has not
    /// confirmed durable (it said so): they are in the peer's cache only, and what it lost
    /// already (its power loss before this stop could re-send them) is gone now.
    private func stopDroppedUnflushedWrites(_ node: SimNode) {
        guard node.lineage == checker.lineage else { return }
        node.acknowledgedOnlyInPeerCache = true
        if let peer = nodes.first(where: { $0 !== node && $0.lineage == checker.lineage }) {
            checker.primaryLostItsCache(content: peer.disk.cache)
        }
        trace("\(node.name) stopped without draining its peer: its unflushed writes are in the peer's cache only")
    }

    /// The seeded fault `disklessAnswersBeforePeerApplied`: a write through the peer is
    /// acknowledged as soon as the node holds it for the stream, before the peer applied it
    /// (the node's own answer, later, is dropped).
    func answerThroughPeerEarlyIfFaulty(_ node: SimNode, _ primary: PrimarySide, _ write: LocalWrite) {
        guard scenario.testingFault == .disklessAnswersBeforePeerApplied, primary.node.mutationPath == .throughPeer,
            case let .request(request) = write.source
        else { return }
        primary.answeredEarly.insert(request)
        answer(request, errno: 0)
    }

    /// A power loss where a diskless primary's unflushed writes lived: a write acknowledged
    /// through the peer and never flushed there is in the peer's cache and in the primary's
    /// memory only, so when both are gone it may be gone, as a primary's own unflushed writes
    /// may be after its power loss (the checker lowers what must be readable to what survived;
    /// FLUSH/FUA promises stay). Both are gone when the diskless primary loses power itself
    /// (what the peer's cache holds is then all there is: the peer may have lost power before
    /// it re-sent them), and when the peer loses power while the primary, its disk failed, is
    /// dead — or after its stop said it could not drain the peer. A live primary still holds
    /// them and re-sends them, a clean stop drained them, and a primary whose working disk is
    /// being resynced holds its own writes: nothing is lowered then.
    func disklessCacheLost(_ node: SimNode) {
        guard node.lineage == checker.lineage,
            let other = nodes.first(where: { $0 !== node && $0.lineage == checker.lineage })
        else { return }
        if node.isPrimary {
            guard node.localLacksWrites else { return }
            checker.primaryLostItsCache(content: other.disk.cache)
        } else if other.isPrimary,
            !other.alive && !other.stoppedCleanly && other.diskFailed
                || other.acknowledgedOnlyInPeerCache && lacksWrites(other) {
            checker.primaryLostItsCache(content: node.disk.cache)
            trace("\(node.name) held the diskless primary's unflushed writes: they may be gone")
            rebaseLackingSession(other, on: node.disk.cache)
        }
    }

    /// The primary's running session took this peer's copy as its base (its own disk lacks
    /// writes) while the peer's cache still held writes of an earlier session that a stop could
    /// not drain (it said so): what the peer's power loss kept of them is the base now, as long
    /// as the session admitted nothing (seed 41 of the disklessStop shape's control run: the
    /// peer, killed mid-drain, came back with them in its cache and lost one at a power loss).
    private func rebaseLackingSession(_ primaryNode: SimNode, on content: [UInt64]) {
        guard primaryNode.alive, primaryNode.localLacksWrites, let primary = primaryNode.primary,
            checker.histories[primary.session]?.lastSequence == 0
        else { return }
        trace("\(primaryNode.name)'s session \(primary.session) takes what the peer kept as its base")
        if let problem = checker.rebase(primary.session, base: content) { fail(problem) }
    }

    /// Whether this node's disk may lack acknowledged writes the peer holds: failed, or its
    /// record says so (until the resync from the peer clears it).
    func lacksWrites(_ node: SimNode) -> Bool { node.diskFailed || node.localLacksWrites }
}
