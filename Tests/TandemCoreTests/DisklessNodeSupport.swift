// What the diskless suites share (DisklessPrimaryNodeTests, DisklessRegionsTests): a sync
// primary connected to an UpToDate peer, and one event handled at a fixed later time.
import TandemCore
import Testing

/// A sync node connected to an UpToDate peer (protocol 6), `volumeBytes` large; `keepsRegions`:
/// its driver keeps the lacking regions in the record (PrimaryNode+DisklessRegions).
func disklessConnectedNode(volumeBytes: UInt64 = 64 << 20, keepsRegions: Bool = false, localLacksWrites: Bool = false,
                           record: LackingRecord = .flagOnly) -> PrimaryNode {
    var config = PrimaryNodeConfig(primary: ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 8 << 20),
                                   volumeSizeBytes: volumeBytes)
    config.keepsLackingRegions = keepsRegions
    var node = PrimaryNode(config: config, session: 77, basis: .assumeInSync, localLacksWrites: localLacksWrites,
                           localLackingRecord: record)
    var actions: [PrimaryNodeAction] = []
    for event: PrimaryNodeEvent in [.peerVersion(WireFormat.readVersion), .enable, .linkUp,
                                    .peer(.hello(durableThroughEpoch: 0, copy: .upToDate))] {
        node.handle(event, nowNs: 1_000_000_000, into: &actions)
    }
    return node
}

/// `event` handled at 2 s; the actions it gave.
func disklessHandle(_ node: inout PrimaryNode, _ event: PrimaryNodeEvent) -> [PrimaryNodeAction] {
    var actions: [PrimaryNodeAction] = []
    node.handle(event, nowNs: 2_000_000_000, into: &actions)
    return actions
}

/// A node whose disk failed under write 1, which the peer applied: the write waits for the
/// record of the lack, which it asked for (DRBD's `on-io-error detach` completes it too).
func disklessFailedNode() -> PrimaryNode {
    var node = disklessConnectedNode()
    _ = disklessHandle(&node, .request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
    _ = disklessHandle(&node, .localWriteDone(sequence: 1, errno: 5))
    let acked = disklessHandle(&node, .peer(.dataAck(sequence: 1)))
    #expect(!acked.contains { if case .answer(1, _) = $0 { return true } else { return false } }, "not answered before the record names its region: \(acked)")
    #expect(acked.contains(.recordLocalLacksWrites(true)), "the write the peer applied asks for the record: \(acked)")
    return node
}

/// `disklessFailedNode` after the record was written and write 2 (8192+4096) went through the
/// peer, which applied both: 8192 bytes acknowledged, not durable on the peer.
func disklessWrittenThroughPeer() -> PrimaryNode {
    var node = disklessFailedNode()
    _ = disklessHandle(&node, .request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
    _ = disklessHandle(&node, .localLacksWritesRecorded(set: true, errno: 0, reason: nil))
    #expect(disklessHandle(&node, .peer(.dataAck(sequence: 2))).contains(.answer(2, errno: 0)))
    return node
}
