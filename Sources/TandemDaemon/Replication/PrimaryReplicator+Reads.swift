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
/// reply can only ever match the read it was sent for. A read longer than
/// `WireFormat.readBytesMax` (only a diskless primary sends one: its disk cannot serve it)
/// travels as several ReadRequests, one per part (at most 256), the part's index in the tag.
struct RemoteReads {
    struct Entry {
        var tag: UInt64
        var read: NBDPendingRead
        var partsLeft: Int
        /// A part came back unserved (its errno): the read is given back once all are in.
        var failedErrno: Int32 = 0
    }

    /// Bits 16-47 the generation, 48-55 the part; bit 63 stays clear (a pull's tag has it).
    static let partShift: UInt64 = 48
    var slots: [Entry?]
    var free: [Int]
    var generation: UInt64 = 0

    init(count: Int) {
        slots = Array(repeating: nil, count: count)
        free = Array((0..<count).reversed())
    }

    /// How many ReadRequests a read of `lengthBytes` takes.
    static func parts(_ lengthBytes: Int) -> Int { (lengthBytes + WireFormat.readBytesMax - 1) / WireFormat.readBytesMax }

    /// The tag of part 0 (part k: `tag | k << partShift`).
    mutating func take(_ read: NBDPendingRead) -> UInt64? {
        guard let slot = free.popLast() else { return nil }
        generation = (generation + 1) & 0xFFFF_FFFF
        let tag = generation << 16 | UInt64(slot)
        slots[slot] = Entry(tag: tag, read: read, partsLeft: Self.parts(read.diskLength))
        return tag
    }

    /// The request of part `part` of the read under `tag`.
    static func request(tag: UInt64, part: Int, of read: NBDPendingRead) -> WireReadRequest {
        let offset = part * WireFormat.readBytesMax
        return WireReadRequest(tag: tag | UInt64(part) << partShift, offsetBytes: read.diskOffset + UInt64(offset),
                               lengthBytes: UInt32(min(WireFormat.readBytesMax, read.diskLength - offset)))
    }

    /// The entry a reply's tag names (nil: none), and its part.
    func find(tag: UInt64) -> (slot: Int, part: Int)? {
        let base = tag & ((1 << Self.partShift) - 1)
        let slot = Int(base & 0xFFFF)
        let part = Int(tag >> Self.partShift)
        guard slot < slots.count, let entry = slots[slot], entry.tag == base,
            part < Self.parts(entry.read.diskLength) else { return nil }
        return (slot, part)
    }

    mutating func remove(slot: Int) -> NBDPendingRead {
        let read = slots[slot]!.read
        slots[slot] = nil
        free.append(slot)
        return read
    }

    mutating func removeAll() -> [NBDPendingRead] {
        var reads: [NBDPendingRead] = []
        for slot in slots.indices where slots[slot] != nil { reads.append(remove(slot: slot)) }
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
            for part in 0..<RemoteReads.parts(read.diskLength) {
                transmit(.control(.readRequest(RemoteReads.request(tag: tag, part: part, of: read))))
            }
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
        guard let (slot, part) = remoteReads.find(tag: reply.tag), let entry = remoteReads.slots[slot] else {
            return link.closeForViolation("protocol violation: a ReadReply for tag \(reply.tag), which no read is waiting for")
        }
        let request = RemoteReads.request(tag: entry.tag, part: part, of: entry.read)
        var violation: String?
        if reply.errno == 0 && reply.payload.count == Int(request.lengthBytes) {
            reply.payload.withUnsafeBytes { bytes in
                (entry.read.buffer + part * WireFormat.readBytesMax).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            }
        } else if reply.errno == EBUSY && node.localLacksWrites {
            // Diskless: a busy peer is asked again; this disk cannot serve the read.
            return transmit(.control(.readRequest(request)))
        } else {
            if reply.errno == 0 {
                violation = "protocol violation: a ReadReply of \(reply.payload.count) bytes for a read of \(request.lengthBytes)"
            }
            remoteReads.slots[slot]!.failedErrno = reply.errno == 0 ? EIO : reply.errno
        }
        remoteReads.slots[slot]!.partsLeft -= 1
        if remoteReads.slots[slot]!.partsLeft == 0 {
            let failed = remoteReads.slots[slot]!.failedErrno != 0
            let read = remoteReads.remove(slot: slot)
            if failed {
                node.readFinished(.peer)
                giveBack(read)
            } else {
                node.readFinished(.peer, servedBytes: UInt64(read.diskLength))
                counters.readsServedByPeer += 1
                counters.readBytesServedByPeer += UInt64(read.diskLength)
                read.finish()
            }
        }
        if let violation { link.closeForViolation(violation) }
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
