// What the digest-compare suites share (ChecksumResyncTests, ReturnedPrimaryCompareTests): a
// PrimaryNode driven one event at a time, the digest requests and copy reads it asks for, and
// the answers a peer and this disk give.
import TandemCore

struct DigestCompareDriver {
    var node: PrimaryNode
    var actions: [PrimaryNodeAction] = []
    var nowNs: UInt64 = 1_000_000_000
    /// The compared regions' size (the peer's digest names it).
    let regionBytes: UInt64

    init(node: PrimaryNode, regionBytes: UInt64) {
        self.node = node
        self.regionBytes = regionBytes
    }

    @discardableResult
    mutating func send(_ event: PrimaryNodeEvent) -> [PrimaryNodeAction] {
        actions.removeAll()
        node.handle(event, nowNs: nowNs, into: &actions)
        return actions
    }

    mutating func connect(peerVersion: UInt16 = WireFormat.helloVersion) {
        send(.enable)
        send(.peerVersion(peerVersion))
        send(.linkUp)
        send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
    }

    var asked: [UInt64] {
        actions.compactMap { if case let .sendDigestRequest(offset, _) = $0 { return offset } else { return nil } }
    }

    var digestReads: [UInt64] {
        actions.compactMap { if case let .readVerifyRegion(offset, _) = $0 { return offset } else { return nil } }
    }

    var copyReads: [(UInt64, UInt32)] {
        actions.compactMap { if case let .readCopyChunk(offset, length) = $0 { return (offset, length) } else { return nil } }
    }

    /// The application writes and copy chunks submitted to this disk: offset and sequence.
    var localWrites: [(offset: UInt64, sequence: WriteSequence)] {
        actions.compactMap { if case let .writeLocal(write) = $0 { return (write.offsetBytes, write.sequence) } else { return nil } }
    }

    /// Both digests of the region at `offset`: equal, or not.
    mutating func answer(_ offset: UInt64, same: Bool) {
        let local = RegionDigest(high: offset, low: 1)
        send(.verifyRegionRead(offsetBytes: offset, digest: local, errno: 0))
        send(.peerDigest(offsetBytes: offset, lengthBytes: regionBytes,
                         digest: same ? local : RegionDigest(high: offset, low: 2)))
    }

    /// Every copy chunk read: its data admitted, applied and durable on the peer.
    mutating func completeCopyReads() {
        var pending = copyReads
        while let (offset, length) = pending.first {
            pending.removeFirst()
            send(.copyChunkRead(offsetBytes: offset, lengthBytes: length, errno: 0))
            pending += copyReads
            for case let .writeLocal(write) in actions {
                send(.peer(.dataAck(sequence: write.sequence)))
                pending += copyReads
            }
            send(.peer(.durableThroughEpoch(node.primary.openEpoch)))
            pending += copyReads
        }
    }

    var syncCompleteSent: Bool {
        actions.contains { if case .sendSyncComplete = $0 { return true } else { return false } }
    }
}
