// SecondaryReplicator's part of read balancing: a ReadRequest the node lets through
// (SecondaryNode.judgePeerRead) is read from the volume into a buffer of its own, through the
// ring, and answered with a ReadReply on the link it came on (a reply for a link that has gone
// is dropped: the primary read that region itself when the link went). A refused request is
// answered at once with its errno. Loop thread only.
import Glibc
import TandemCore
import TandemIO

/// The buffers of the reads served for the primary: `SecondaryNode.peerReadsMax` slots of
/// `WireFormat.readBytesMax`, one region allocated at the first read and freed once no read
/// has been in flight for two idle calls.
final class PeerReadBuffers {
    struct Entry {
        var request: WireReadRequest
        /// The link the request came on; weak: it may be gone (and freed) before the read ends.
        weak var link: PeerLink?
        var doneBytes = 0
    }

    static let slotBytes = WireFormat.readBytesMax
    private let slots = IdleSlots(slotBytes: slotBytes, slotsMax: SecondaryNode.peerReadsMax, what: "peer reads")
    private(set) var entries: [Entry?] = Array(repeating: nil, count: SecondaryNode.peerReadsMax)
    var inFlight: Int { slots.taken }

    func reserve(_ entry: Entry) -> Int {
        let slot = slots.take()
        entries[slot] = entry
        return slot
    }

    func pointer(_ slot: Int) -> UnsafeMutableRawPointer { slots.pointer(slot) }

    func advance(_ slot: Int, by bytes: Int) { entries[slot]!.doneBytes += bytes }

    func release(_ slot: Int) {
        precondition(entries[slot] != nil, "a free peer read buffer released")
        entries[slot] = nil
        slots.release(slot)
    }

    func releaseMemoryWhenIdle() { slots.releaseMemoryWhenIdle() }
}

extension SecondaryReplicator {
    /// Peer reads: this base | the buffer's slot.
    static let peerReadTagBase: UInt32 = 0xFFFC_0000

    func receivedReadRequest(_ request: WireReadRequest, link: PeerLink) {
        switch peekNode({ $0.judgePeerRead(request, readsInFlight: peerReads.inFlight) }) {  // per read: not copied (NodeReads)
        case .violation(let reason):
            link.closeForViolation(reason)
        case .refuse(let errno):
            counters.readsRefusedForPeer += 1
            link.sendReadReply(tag: request.tag, errno: errno, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        case .serve:
            let slot = peerReads.reserve(PeerReadBuffers.Entry(request: request, link: link))
            submitPeerRead(slot)
        }
    }

    private func submitPeerRead(_ slot: Int) {
        guard let entry = peerReads.entries[slot] else { preconditionFailure("a peer read without its request") }
        ioInFlight += 1
        context.loop.prepareVolumeIO(
            write: false, volume: volume, buffer: peerReads.pointer(slot) + entry.doneBytes,
            length: Int(entry.request.lengthBytes) - entry.doneBytes,
            offset: entry.request.offsetBytes + UInt64(entry.doneBytes), dsync: false, handler: handlerID,
            tag: Self.peerReadTagBase | UInt32(slot))
    }

    func peerReadCompleted(slot: Int, result: Int32) {
        guard let entry = peerReads.entries[slot] else { preconditionFailure("a peer read nobody asked for") }
        let length = Int(entry.request.lengthBytes)
        if result == -EINTR || result == -EAGAIN { return submitPeerRead(slot) }
        if result > 0 && entry.doneBytes + Int(result) < length {
            peerReads.advance(slot, by: Int(result))
            return submitPeerRead(slot)  // short: the rest, or the disk's own error
        }
        let errno: Int32 = result > 0 ? 0 : (result == 0 ? EIO : -result)
        // The primary never sees a half answer: the bytes, or the errno and none.
        if let origin = entry.link, origin === link, origin.isEstablished {
            let payload = UnsafeRawBufferPointer(start: peerReads.pointer(slot), count: errno == 0 ? length : 0)
            origin.sendReadReply(tag: entry.request.tag, errno: errno, payload: payload)
        }
        peerReads.release(slot)
        if errno == 0 { counters.readsServedForPeer += 1 }
        if errno != 0 { health.record("read", errno: errno) }
    }
}
