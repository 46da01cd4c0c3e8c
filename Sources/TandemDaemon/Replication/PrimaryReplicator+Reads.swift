// PrimaryReplicator's read router (the export's NBDReadRouter): each application read is
// routed by the node (PrimaryNode+Reads); a read for the peer travels as a ReadRequest, and its
// ReadReply's bytes are copied into the NBD request's buffer. A read the peer refuses, or that
// is still out when the link goes down or replication stops, is read from the local volume.
// Loop thread only.
import Glibc
import TandemControl
import TandemCore
import TandemIO
import TandemNBD

/// The reads in flight to the peer, by slot; a tag is the slot plus a generation, so that a
/// reply can only ever match the read it was sent for.
struct RemoteReads {
    var slots: [(tag: UInt64, read: NBDPendingRead)?]
    var free: [Int]
    var generation: UInt64 = 0

    init(count: Int) {
        slots = Array(repeating: nil, count: count)
        free = Array((0..<count).reversed())
    }

    mutating func take(_ read: NBDPendingRead) -> UInt64? {
        guard let slot = free.popLast() else { return nil }
        generation += 1
        let tag = generation << 16 | UInt64(slot)
        slots[slot] = (tag, read)
        return tag
    }

    mutating func remove(tag: UInt64) -> NBDPendingRead? {
        let slot = Int(tag & 0xFFFF)
        guard slot < slots.count, let entry = slots[slot], entry.tag == tag else { return nil }
        slots[slot] = nil
        free.append(slot)
        return entry.read
    }

    mutating func removeAll() -> [NBDPendingRead] {
        var reads: [NBDPendingRead] = []
        for slot in slots.indices {
            if let entry = slots[slot] {
                reads.append(entry.read)
                slots[slot] = nil
                free.append(slot)
            }
        }
        return reads
    }
}

extension PrimaryReplicator: NBDReadRouter {
    func route(_ read: NBDPendingRead) -> Bool {
        // A failed disk is the node's to know before it routes (it reads through the peer).
        if health.isFailed && !node.diskFailed { feed(.diskFailedElsewhere) }
        let route = node.routeRead(offsetBytes: read.diskOffset, lengthBytes: UInt64(read.diskLength))
        if route == .refused {
            // Diskless: this disk lacks the region and the peer cannot serve it.
            read.fail(errno: EIO)
            return true
        }
        guard route == .peer else { return false }
        if let link, link.isEstablished, let tag = remoteReads.take(read) {
            // Through the `bandwidth` cap: the reply's bytes cross the same link.
            let request = WireReadRequest(tag: tag, offsetBytes: read.diskOffset, lengthBytes: UInt32(read.diskLength))
            transmit(.control(.readRequest(request)))
            return true
        }
        // Not sent: it is read here (or, diskless, fails).
        node.readFinished(.peer)
        return fallBack(read)
    }

    /// A read the peer will not serve: read here (false from `route`), or failed with EIO when
    /// this disk lacks the region (diskless). true: the read is answered or taken.
    private func fallBack(_ read: NBDPendingRead) -> Bool {
        guard node.routeFallback(offsetBytes: read.diskOffset, lengthBytes: UInt64(read.diskLength)) == .refused else {
            return false
        }
        read.fail(errno: EIO)
        return true
    }

    /// A taken read the peer gave back: read here, or failed (diskless).
    private func giveBack(_ read: NBDPendingRead) {
        counters.peerReadFallbacks += 1
        if !fallBack(read) { read.readLocally() }
    }

    func localReadEnded() {
        // A read counted by an earlier replicator of this resource ends under this one.
        guard node.reads.localInFlight > 0 else { return }
        node.readFinished(.local)
    }

    /// `set read_balancing`.
    func setReadBalancing(_ policy: ReadBalancing) { node.setReadBalancing(policy) }

    /// The peer's ReadReply: the bytes into the request's buffer, or the read goes local.
    func receivedReadReply(_ reply: WireReadReply, link: PeerLink) {
        if reply.tag & Self.pullTagBit != 0 { return pullReplied(reply, link: link) }  // diskless resync
        guard let read = remoteReads.remove(tag: reply.tag) else {
            return link.closeForViolation("protocol violation: a ReadReply for tag \(reply.tag), which no read is waiting for")
        }
        guard reply.errno == 0 else {
            // Diskless: a busy peer (EBUSY) is asked again; this disk cannot serve the read.
            if reply.errno == EBUSY, node.localLacksWrites, let tag = remoteReads.take(read) {
                transmit(.control(.readRequest(WireReadRequest(tag: tag, offsetBytes: read.diskOffset,
                                                               lengthBytes: UInt32(read.diskLength)))))
                return
            }
            node.readFinished(.peer)
            return giveBack(read)
        }
        guard reply.payload.count == read.diskLength else {
            node.readFinished(.peer)
            giveBack(read)
            return link.closeForViolation(
                "protocol violation: a ReadReply of \(reply.payload.count) bytes for a read of \(read.diskLength)")
        }
        reply.payload.withUnsafeBytes { bytes in
            read.buffer.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        node.readFinished(.peer, servedBytes: UInt64(read.diskLength))
        counters.readsServedByPeer += 1
        counters.readBytesServedByPeer += UInt64(read.diskLength)
        read.finish()
    }

    /// Every read still out to the peer is read here (the link went down, replication stops).
    func readRemoteReadsLocally() {
        failPullsAwaitingPeer()  // diskless: pulled again on a later link
        for read in remoteReads.removeAll() {
            node.readFinished(.peer)
            giveBack(read)
        }
    }
}

extension PrimaryReplicator {
    /// Status `read_routing` (the setting, whether it acts and why not, what the peer served)
    /// and `serving_from` (`peer` while a failed disk reads through the peer).
    func readStatusFields(into fields: inout [String: JSONValue]) {
        let refusal = node.peerReadsRefusal
        var block: [String: JSONValue] = [
            "policy": .string(node.reads.policy.rawValue),  // the setting as the node applies it
            "active": .bool(node.reads.policy != .preferLocal && refusal == nil),
            "reads_served_by_peer": .int(Int64(clamping: counters.readsServedByPeer)),
            "read_bytes_served_by_peer": .int(Int64(clamping: counters.readBytesServedByPeer)),
            "fallbacks": .int(Int64(clamping: counters.peerReadFallbacks)),
            "peer_reads_in_flight": .int(Int64(node.reads.remoteInFlight)),
        ]
        if node.reads.policy != .preferLocal, let refusal { block["inactive_reason"] = .string(refusal) }
        fields["read_routing"] = .object(block)
        fields["serving_from"] = .string(node.servesFromPeer ? "peer" : "local")
        disklessStatusFields(into: &fields)
    }
}
