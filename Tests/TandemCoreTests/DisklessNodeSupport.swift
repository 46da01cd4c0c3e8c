// What the diskless suites share (DisklessPrimaryNodeTests, DisklessRegionsTests): a sync
// primary connected to an UpToDate peer, and one event handled at a fixed later time.
import TandemCore

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
