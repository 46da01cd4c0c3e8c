import Glibc
import TandemCore

// The primary's edges as its driver carries them: the application's requests reaching the node
// (or, with replication stopped, the disk alone), the link's dial, loss and messages, and a
// failed disk.

extension Simulation {
    /// Resource.trackUnreplicated: a write without a replicator clears the seal (durably,
    /// first) and is marked in the tracked bitmap, if there is one.
    func trackStandalone(_ node: SimNode, _ blocks: Range<Int>) {
        countWrittenWithoutPeer(node, blocks: blocks)
        guard node.trackedInMemory != nil else { return }
        node.sealedBitmap = nil
        let size = SimulationScenario.blockSizeBytes
        _ = node.trackedInMemory!.bitmap.setRange(offsetBytes: UInt64(blocks.lowerBound) * size,
                                                   lengthBytes: UInt64(blocks.count) * size)
    }

    /// An application request reaches the primary node.
    func submitToPrimary(_ node: SimNode, _ request: RequestID) {
        guard let primary = node.primary else { return }
        if primary.standalone {
            // (Resource.refuseLackingDiskWhileStopped: a disk that lacks writes serves nothing alone.)
            if node.diskFailed || node.localLacksWrites { return answer(request, errno: EIO) }
            switch requests[request] {
            case let .write(blocks, fua, nil):
                trackStandalone(node, blocks)
                let value = nextValue
                nextValue += 1
                requests[request] = .write(blocks: blocks, fua: fua, value: value)
                noteSplitBrainWrite(node, value: value, blocks: blocks)
                submitWrite(node, FakeDisk.Extent(firstBlock: blocks.lowerBound, values: Array(repeating: value, count: blocks.count)),
                            fua: fua, io: .standaloneWrite(request))
            case let .zeroes(blocks, fua, _):
                trackStandalone(node, blocks)
                let value = nextValue
                nextValue += 1
                requests[request] = .zeroes(blocks: blocks, fua: fua, chunks: [(blocks, value)])
                noteSplitBrainWrite(node, value: value, blocks: blocks)
                submitWrite(node, FakeDisk.Extent(firstBlock: blocks.lowerBound, values: Array(repeating: value, count: blocks.count)),
                            fua: fua, io: .standaloneWrite(request))
            case .flush:
                submitFlush(node, io: .standaloneFlush(request))
            case .trim:
                answer(request, errno: 0)
            default:
                break
            }
            return
        }
        let size = SimulationScenario.blockSizeBytes
        trace("request \(request) to \(node.name): \(String(describing: requests[request]))")
        if primary.node.connectionState != .connected {
            switch requests[request] {
            case let .write(blocks, _, _), let .zeroes(blocks, _, _), let .trim(blocks): countWrittenWithoutPeer(node, blocks: blocks)
            default: break
            }
        }
        switch requests[request] {
        case let .write(blocks, fua, nil):
            drivePrimary(node, .request(id: request, .write(
                offsetBytes: UInt64(blocks.lowerBound) * size, lengthBytes: UInt32(UInt64(blocks.count) * size), fua: fua)))
        case let .zeroes(blocks, fua, _):
            drivePrimary(node, .request(id: request, .writeZeroes(
                offsetBytes: UInt64(blocks.lowerBound) * size, lengthBytes: UInt64(blocks.count) * size, fua: fua)))
        case .flush:
            drivePrimary(node, .request(id: request, .flush))
        case .trim:
            drivePrimary(node, .request(id: request, .trim))
        default:
            break
        }
    }

    /// The node dials: the secondary answers its Hello (accept or refuse) after a network
    /// delay; a node that is down does not answer.
    func dial(from node: SimNode) {
        let peer = nodes[1 - node.index]
        node.dialsStarted += 1
        guard link == nil, peer.alive, !peer.isPrimary, peer.secondary != nil else {
            events.schedule(.dialFailed(node: node.index, incarnation: node.incarnation, dial: node.dialsStarted),
                            atNs: nowNs + random.between(50_000, 500_000))
            return
        }
        linkCount += 1
        link = Link(id: linkCount, primary: node.index, secondary: peer.index, lastToSecondaryNs: nowNs, lastToPrimaryNs: nowNs)
        trace("link \(linkCount) opens: \(node.name) → \(peer.name)")
        guard let primary = node.primary else { return }
        primary.peerAccepted = false
        sendToSecondary(.hello(session: primary.node.helloSession, basis: primary.node.helloBasis, nodeName: node.name, certificateNamesPeer: true))
    }

    func primaryLinkDown(_ node: SimNode, _ primary: PrimarySide, reason: String, refusal: WireRefusal? = nil) {
        primary.peerAccepted = false
        giveBackRemoteReads(node, primary)
        if primary.node.copyWanted && primary.node.copyCursor > 0 { copiesInterrupted += 1 }
        drivePrimary(node, .linkDown(reason: reason, refusal: refusal))
        detachIfPeerFailed(node)
    }

    /// After the peer's disk failed the resource stops replication (`.stopToServeAlone`, as
    /// the daemon's peerDiskFailed): the node answers what it holds, and the resource writes
    /// alone from then on.
    func detachIfPeerFailed(_ node: SimNode) {
        guard pendingDetach.remove(node.index) != nil, node.primary != nil else { return }
        drivePrimary(node, .stopToServeAlone)
    }

    func primaryReceived(_ message: ToPrimary, node: SimNode) {
        guard let primary = node.primary, !primary.standalone else { return }
        switch message {
        case .accepted:
            primary.peerAccepted = true
            if primary.rebaseAtAccept, let link, link.primary == node.index {
                primary.rebaseAtAccept = false  // diskless (Simulation+Diskless)
                if let problem = checker.rebase(primary.session, base: nodes[link.secondary].disk.cache) { return fail(problem) }
            }
            if primary.awaitsVictimSet != nil, let link, link.primary == node.index {
                receiveVictimSet(node, primary, from: nodes[link.secondary])  // Simulation+UnionCheckpoint
            }
            drivePrimary(node, .peerVersion(WireFormat.helloVersion))  // the peer's Hello named it
            drivePrimary(node, .linkUp)
        case let .digests(offset, length, digest):
            drivePrimary(node, .peerDigest(offsetBytes: offset, lengthBytes: length, digest: digest))
        case let .caughtUp(session):
            drivePrimary(node, .peerCaughtUp(session: session))
        case let .readReply(tag, errno, values):
            primaryReadReply(node, primary, tag: tag, errno: errno, values: values)
        case let .message(message):
            drivePrimary(node, .peer(message))
        case .failoverRequest:
            failoverRequested(node)
        case let .refused(reason, refusal):
            trace("\(node.name) refused by the peer: \(refusal): \(reason)")
            guard let link, link.primary == node.index else { return }
            self.link = nil
            primaryLinkDown(node, primary, reason: "refused by the peer: \(refusal): \(reason)", refusal: refusal)
        }
    }

    func primaryDiskFailed(_ node: SimNode, operation: String, errno: Int32) {
        guard !node.diskFailed else { return }
        trace("\(node.name) disk failed: \(operation) \(errno)")
        node.diskFailed = true
    }
}
