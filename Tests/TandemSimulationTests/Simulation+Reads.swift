import Glibc
import TandemCore

// Application reads, as the daemon's read router carries them (PrimaryReplicator+Reads): each
// read is routed by the node (PrimaryNode.routeRead: `read_balancing`, and a diskless
// primary's disk that lacks the region); a read for the peer travels as a ReadRequest, which
// the secondary judges (SecondaryNode.judgePeerRead) and serves from its volume; a read the
// peer gives back (an errno, the link gone, replication stopped) is routed again
// (`routeFallback`): read here, or refused (EIO) when this disk lacks the region. A detached
// primary reads its disk. Reads come from a generator of their own (their ranges may overlap
// writes in flight) and are checked when they return data:
//
// - every block holds the newest write acknowledged before the read was issued, or a newer
//   one (a write in flight meanwhile may or may not be seen: NBD leaves it open), and never a
//   value no write ever had;
// - a read issued before a forced promotion (another lineage) is not checked: its copy is no
//   longer the truth.

/// One application read in flight.
struct AppRead {
    var node: Int
    var incarnation: Int
    var blocks: Range<Int>
    /// Per block, the newest acknowledged write when the read was issued.
    var floor: [UInt64]
    /// The checker's lineage when the read was issued.
    var lineage: Int
    /// The primary side that routed it (nil: a detached primary's own read).
    var primary: PrimarySide?
    /// Counted by the node as a local read in flight (`readFinished(.local)` when it ends).
    var countedLocal = false
}

extension Simulation {
    func issueRead() {
        guard let reads = scenario.reads, nowNs <= scenario.workloadEndNs else { return }
        events.schedule(.appRead, atNs: nowNs + readRandom.between(reads.gapMinNs, reads.gapMaxNs))
        guard !splitBrainHoldsApplication, let node = livePrimary, let primary = node.primary else { return }
        let first = Int(readRandom.below(UInt64(scenario.blockCount)))
        let count = min(Int(readRandom.between(1, 4)), scenario.blockCount - first)
        let blocks = first..<(first + count)
        nextRead += 1
        readsIssued += 1
        let id = nextRead
        appReads[id] = AppRead(node: node.index, incarnation: node.incarnation, blocks: blocks,
                               floor: Array(checker.ackedRequired[blocks]), lineage: checker.lineage,
                               primary: primary.standalone ? nil : primary)
        guard !primary.standalone else { return node.localLacksWrites ? refuseRead(id) : readLocally(id, node) }
        let (offset, length) = readRegion(blocks)
        switch primary.node.routeRead(offsetBytes: offset, lengthBytes: length) {
        case .refused:
            refuseRead(id)
        case .local:
            appReads[id]!.countedLocal = true
            readLocally(id, node)
        case .peer:
            if scenario.testingFault == .disklessReadsLackingDisk, primary.node.localLacksWrites {
                // The seeded fault: the driver reads its own disk whatever the node decided.
                primary.node.readFinished(.peer)
                return readLocally(id, node)
            }
            sendRead(id, node, primary)
        }
    }

    func readRegion(_ blocks: Range<Int>) -> (offset: UInt64, length: UInt64) {
        (UInt64(blocks.lowerBound) * SimulationScenario.blockSizeBytes, UInt64(blocks.count) * SimulationScenario.blockSizeBytes)
    }

    private func sendRead(_ id: Int, _ node: SimNode, _ primary: PrimarySide) {
        guard let link, link.primary == node.index, primary.peerAccepted, let read = appReads[id] else {
            primary.node.readFinished(.peer)
            return fallBack(id, node, primary)
        }
        let (offset, length) = readRegion(read.blocks)
        primary.remoteReads[UInt64(id)] = id
        sendToSecondary(.readRequest(WireReadRequest(tag: UInt64(id), offsetBytes: offset, lengthBytes: UInt32(length))))
    }

    /// A read the peer gave back: read here, or refused where this disk lacks the region.
    private func fallBack(_ id: Int, _ node: SimNode, _ primary: PrimarySide) {
        guard let read = appReads[id] else { return }
        readsFellBack += 1
        let (offset, length) = readRegion(read.blocks)
        guard primary.node.routeFallback(offsetBytes: offset, lengthBytes: length) == .local else { return refuseRead(id) }
        appReads[id]!.countedLocal = true
        readLocally(id, node)
    }

    private func refuseRead(_ id: Int) {
        readsRefused += 1
        appReads[id] = nil
    }

    private func readLocally(_ id: Int, _ node: SimNode) {
        events.schedule(.readDone(node: node.index, incarnation: node.incarnation, read: id),
                        atNs: nowNs + stalled(readRandom.between(10_000, 150_000)))
    }

    /// A read of this node's disk ends: the disk's cache as it is now.
    func localReadDone(_ id: Int) {
        guard let read = appReads.removeValue(forKey: id) else { return }
        let node = nodes[read.node]
        guard node.alive, node.incarnation == read.incarnation else { return }
        let (values, errno) = node.disk.read(read.blocks)
        if read.countedLocal, let primary = read.primary, node.primary === primary { primary.node.readFinished(.local) }
        guard errno == 0 else {
            // The daemon's health records the failure (the resource's disk failed); the node
            // learns it at its next route.
            if let primary = read.primary, node.primary === primary, !node.diskFailed {
                primaryDiskFailed(node, operation: "read", errno: errno)
                scheduleDiskReplacement(node)
                drivePrimary(node, .diskFailedElsewhere)
            }
            return
        }
        checkRead(read, values, servedBy: "\(node.name)'s disk")
    }

    // MARK: The peer

    /// The secondary's end of a ReadRequest (SecondaryReplicator+Reads).
    func secondaryReadRequest(_ request: WireReadRequest, node: SimNode) {
        guard let secondary = node.secondary, let link else { return }
        switch secondary.judgePeerRead(request, readsInFlight: node.peerReadsInFlight) {
        case let .violation(reason):
            fail("secondary \(node.name) refuses the real primary's ReadRequest: \(reason)")
        case let .refuse(errno):
            sendToPrimary(.readReply(tag: request.tag, errno: errno, values: []))
        case .serve:
            node.peerReadsInFlight += 1
            events.schedule(.peerReadDone(node: node.index, incarnation: node.incarnation, link: link.id, request: request),
                            atNs: nowNs + stalled(readRandom.between(10_000, 150_000)))
        }
    }

    /// The secondary's read ends: answered on the link it came on, if that is still up.
    func peerReadDone(_ node: SimNode, linkID: Int, request: WireReadRequest) {
        node.peerReadsInFlight -= 1
        let blocks = blocks(offsetBytes: request.offsetBytes, lengthBytes: request.lengthBytes)
        let (values, errno) = node.disk.read(blocks)
        guard let link, link.id == linkID, link.secondary == node.index else { return }
        sendToPrimary(.readReply(tag: request.tag, errno: errno, values: errno == 0 ? values : []))
    }

    /// The primary's end of a ReadReply: an application read's or a pull's.
    func primaryReadReply(_ node: SimNode, _ primary: PrimarySide, tag: UInt64, errno: Int32, values: [UInt64]) {
        if tag & Self.pullTagBit != 0 { return pullReplied(node, primary, tag: tag, errno: errno, values: values) }
        guard let id = primary.remoteReads.removeValue(forKey: tag), let read = appReads[id] else {
            return fail("primary \(node.name) got a ReadReply for tag \(tag), which no read is waiting for")
        }
        if errno == 0 && values.count == read.blocks.count {
            let (_, length) = readRegion(read.blocks)
            primary.node.readFinished(.peer, servedBytes: length)
            readsServedByPeer += 1
            appReads[id] = nil
            return checkRead(read, values, servedBy: "the peer of \(node.name)")
        }
        if errno == EBUSY && primary.node.localLacksWrites {
            return sendRead(id, node, primary)  // diskless: a busy peer is asked again
        }
        primary.node.readFinished(.peer)
        fallBack(id, node, primary)
    }

    /// The link went down or replication stops: every read out to the peer is given back, and
    /// every pull is pulled again later (PrimaryReplicator.readRemoteReadsLocally).
    func giveBackRemoteReads(_ node: SimNode, _ primary: PrimarySide) {
        failPullsAwaitingPeer(node, primary)
        for (tag, id) in primary.remoteReads.sorted(by: { $0.key < $1.key }) {
            primary.remoteReads[tag] = nil
            primary.node.readFinished(.peer)
            fallBack(id, node, primary)
        }
    }

    // MARK: The check

    private func checkRead(_ read: AppRead, _ values: [UInt64], servedBy: String) {
        guard read.lineage == checker.lineage else { return }
        readsChecked += 1
        for (index, block) in read.blocks.enumerated() where values[index] < read.floor[index] {
            return fail("a read of blocks \(read.blocks) served by \(servedBy) returned \(values[index]) at block \(block), "
                + "but write \(read.floor[index]) was acknowledged there before the read was issued")
        }
        for (index, block) in read.blocks.enumerated() where values[index] >= nextValue {
            return fail("a read of block \(block) returned \(values[index]), which no write ever had")
        }
    }
}
