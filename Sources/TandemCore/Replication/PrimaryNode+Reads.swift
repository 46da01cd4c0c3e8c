// PrimaryNode's read routing (`read_balancing`, and the reads of a primary whose disk failed):
// the one place that decides whether an application read is served by this node's disk or by
// the peer. The peer serves a read only while it holds every acknowledged write: a sync
// stream (not adaptive, not periodic), the link up, the peer UpToDate and speaking protocol 6.
// A read of a region with an admitted, unanswered write is served here: that write may not
// have reached the peer yet, and this disk has it as soon as the application could have seen
// it answered. Once a write is answered in sync mode the peer applied it (DataAck after the
// write completed there), and the peer reads a ReadRequest after that write's Data on the same
// stream, so a read sent later never returns older data. No I/O, no clock.

extension PrimaryNode {
    /// Diskless: the longest read the peer serves in parts (NBD's usual maximum request).
    public static let disklessReadBytesMax: UInt64 = 32 << 20

    /// Why reads cannot go to the peer now (status `read_balancing.inactive_reason`); nil when
    /// they can.
    public var peerReadsRefusal: String? {
        guard config.hasPeer else { return "no peer is configured" }
        guard config.primary.mode == .sync, config.adaptive == nil, config.periodNs == nil else {
            return "the mode is not sync: the peer may lack acknowledged writes"
        }
        guard isPeerReady else { return "the peer is not connected" }
        guard peerVersion >= WireFormat.readVersion else {
            return "the peer speaks protocol \(peerVersion), which cannot serve reads: upgrade it (docs/operations.md, rolling upgrade)"
        }
        let state = peerDiskState
        guard state == .upToDate else { return "the peer is \(state.rawValue), not UpToDate" }
        return nil
    }

    /// This node's disk failed (or lacks writes) and the peer serves reads in its place
    /// (status `serving_from`).
    public var servesFromPeer: Bool { (diskFailed || localLacksWrites) && peerReadsRefusal == nil }

    /// Routes one application read of `lengthBytes` at `offsetBytes` and counts it in flight
    /// until `readFinished`. With a failed disk every read the peer may serve goes to it.
    public mutating func routeRead(offsetBytes: UInt64, lengthBytes: UInt64) -> ReadRoute {
        let route = chooseRoute(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
        switch route {
        case .local: reads.localInFlight += 1
        case .peer: reads.remoteInFlight += 1
        case .refused: break
        }
        return route
    }

    private mutating func chooseRoute(offsetBytes: UInt64, lengthBytes: UInt64) -> ReadRoute {
        if localLacksWrites, offsetBytes <= config.volumeSizeBytes, lengthBytes <= config.volumeSizeBytes - offsetBytes,
            localLacks(start: offsetBytes, end: offsetBytes + lengthBytes) {
            // Diskless: this disk lacks (part of) the region; only the peer can serve it. An
            // unanswered write over it is not on this disk either: the peer's copy is as new.
            // Longer than one ReadRequest: the driver sends it in parts (whole 4 KiB blocks).
            guard reads.remoteInFlight < reads.remoteReadsMax, lengthBytes > 0, lengthBytes <= Self.disklessReadBytesMax,
                offsetBytes % 4096 == 0, lengthBytes % 4096 == 0, peerReadsRefusal == nil
            else { return .refused }
            return .peer
        }
        guard reads.policy != .preferLocal || diskFailed else { return .local }
        // A failed disk serves nothing: a read longer than one ReadRequest goes in parts too
        // (4 KiB blocks, as a diskless read), not to this disk's error.
        let fitsOneRequest = WireReadRequest.isValid(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
        let fitsInParts = diskFailed && lengthBytes > 0 && lengthBytes <= Self.disklessReadBytesMax
            && offsetBytes % 4096 == 0 && lengthBytes % 4096 == 0
        guard reads.remoteInFlight < reads.remoteReadsMax, fitsOneRequest || fitsInParts,
            offsetBytes <= config.volumeSizeBytes, lengthBytes <= config.volumeSizeBytes - offsetBytes,
            !readOverlapsUnanswered(start: offsetBytes, end: offsetBytes + lengthBytes),
            peerReadsRefusal == nil
        else { return .local }
        if diskFailed { return .peer }
        switch reads.policy {
        case .preferLocal: return .local
        case .preferRemote: return .peer
        case .roundRobin:
            reads.nextToPeer.toggle()
            return reads.nextToPeer ? .local : .peer
        case .leastPending:
            return reads.remoteInFlight < reads.localInFlight ? .peer : .local
        }
    }

    /// A read routed by `routeRead` ended. `servedBytes`: the peer answered with that many
    /// bytes (0 for a local read). A peer read that came back unserved (the peer refused, the
    /// link went down) is counted as a fallback: the driver then reads it here, routed again
    /// as `.local` without asking (`routeFallback`).
    public mutating func readFinished(_ route: ReadRoute, servedBytes: UInt64 = 0) {
        switch route {
        case .refused:
            break
        case .local:
            precondition(reads.localInFlight > 0, "a local read finished that was not routed")
            reads.localInFlight -= 1
        case .peer:
            precondition(reads.remoteInFlight > 0, "a peer read finished that was not routed")
            reads.remoteInFlight -= 1
            if servedBytes > 0 {
                reads.servedRemotely += 1
                reads.servedRemotelyBytes += servedBytes
            }
        }
    }

    /// A peer read came back unserved: it is served here (counted as a local read in flight).
    public mutating func routeFallback() {
        reads.fellBackLocally += 1
        reads.localInFlight += 1
    }

    /// `set read_balancing`: the next read is routed by `policy`.
    public mutating func setReadBalancing(_ policy: ReadBalancing) {
        reads.policy = policy
    }

    /// The read overlaps an admitted write (or copy chunk) not yet answered.
    func readOverlapsUnanswered(start: UInt64, end: UInt64) -> Bool {
        for ticket in active where start < tickets[ticket].end && tickets[ticket].start < end {
            return true
        }
        return false
    }
}
