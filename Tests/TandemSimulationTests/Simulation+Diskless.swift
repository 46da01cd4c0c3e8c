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
//
// The checks this needs: while the record says this disk lacks writes it is not held to the
// acknowledged writes (they are on the peer), a power loss of it lowers nothing, and the "in
// sync, volumes equal" check waits; once the flag is cleared, all apply again, and a settled
// run whose disk was replaced must have cleared it.

extension Simulation {
    static let pullTagBit: UInt64 = 1 << 63

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
            }
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
            if result == 0 { node.localLacksWrites = false }
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
    /// starts again with the disk working (`restart` clears the failure).
    func replaceDisk(_ node: SimNode) {
        guard node.alive, node.diskFailed, let primary = node.primary, !primary.standalone, !primary.handingOver,
            !primary.restartWhenStopped
        else { return }
        // The daemon's `disable` refuses while writes acknowledged through the peer are not
        // durable there (ResourceRoles.checkDisable): they exist nowhere else than in this
        // process's memory (this disk failed), and a stop would drop them while the next start
        // takes the peer as in sync (seed 2 of the diskless class: the peer's power loss, then
        // the disable before the re-send; docs/replication.md, *The diskless primary*). The
        // operator asks again later, as one told `wrong-state` would.
        // It waits longer than that rule: until the peer is back and nothing is in flight.
        let facts = ResourceRoleFacts(name: "r0", role: .primary, enabled: true, transitioning: false,
                                      acknowledgedOnlyInMemoryBytes: primary.node.acknowledgedOnlyInMemoryBytes)
        guard ResourceRoles.checkDisable(facts) == nil, disklessStopIsSafe(primary) else {
            replacementsWaited += 1
            return events.schedule(.diskReplaced(node: node.index, incarnation: node.incarnation), atNs: nowNs + 500_000)
        }
        disksReplaced += 1
        trace("the operator replaces \(node.name)'s failed disk: disable, enable")
        primary.restartWhenStopped = true
        if !primary.node.stopping { drivePrimary(node, .stop) }
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

    /// The peer holds every acknowledged write durably and nothing is in flight: a stop of a
    /// diskless primary loses nothing. A clean restart (SIGTERM) waits for it: the daemon's
    /// shutdown does not (only `disable` refuses), the operator's rule until it does.
    func disklessStopIsSafe(_ primary: PrimarySide) -> Bool {
        primary.node.isPeerReady && primary.machine.lagBytes == 0 && primary.node.isDrained
    }

    /// Whether this node's disk may lack acknowledged writes the peer holds: failed, or its
    /// record says so (until the resync from the peer clears it).
    func lacksWrites(_ node: SimNode) -> Bool { node.diskFailed || node.localLacksWrites }
}
