// PrimaryNode's read routing (read_balancing, the reads of a failed disk) and the secondary's
// verdict on a ReadRequest: where each read goes, and when it must stay on this node's disk.
import TandemCore
import Testing

/// A sync node connected to an UpToDate peer that speaks protocol 6, routing with `policy`.
private func connectedNode(_ policy: ReadBalancing, mode: ReplicationAckMode = .sync, peerVersion: UInt16 = WireFormat.readVersion,
                           remoteReadsMax: Int = 4) -> PrimaryNode {
    var config = PrimaryNodeConfig(primary: ReplicationPrimaryConfig(mode: mode, bufferBytesMax: 8 << 20),
                                   volumeSizeBytes: 64 << 20)
    config.readBalancing = policy
    config.remoteReadsMax = remoteReadsMax
    var node = PrimaryNode(config: config, session: 77, basis: .assumeInSync)
    var actions: [PrimaryNodeAction] = []
    for event: PrimaryNodeEvent in [.peerVersion(peerVersion), .enable, .linkUp, .peer(.hello(durableThroughEpoch: 0, copy: .upToDate))] {
        node.handle(event, nowNs: 1_000_000_000, into: &actions)
    }
    return node
}

/// Routes `count` 4 KiB reads at distinct offsets and ends each at once.
private func routes(_ node: inout PrimaryNode, count: Int) -> [ReadRoute] {
    (0..<count).map { index in
        let route = node.routeRead(offsetBytes: UInt64(index) * 4096, lengthBytes: 4096)
        node.readFinished(route, servedBytes: route == .peer ? 4096 : 0)
        return route
    }
}

@Suite struct ReadRoutingTests {
    @Test func eachPolicySendsReadsWhereItSays() {
        var local = connectedNode(.preferLocal)
        #expect(local.peerDiskState == .upToDate && local.peerReadsRefusal == nil)
        #expect(routes(&local, count: 4) == [.local, .local, .local, .local])
        var remote = connectedNode(.preferRemote)
        #expect(routes(&remote, count: 4) == [.peer, .peer, .peer, .peer])
        #expect(remote.reads.servedRemotely == 4 && remote.reads.servedRemotelyBytes == 4 * 4096)
        var alternate = connectedNode(.roundRobin)
        #expect(routes(&alternate, count: 4) == [.peer, .local, .peer, .local])
        // least-pending: the side with fewer reads in flight, this disk on a tie.
        var least = connectedNode(.leastPending)
        #expect(least.routeRead(offsetBytes: 0, lengthBytes: 4096) == .local)
        #expect(least.routeRead(offsetBytes: 4096, lengthBytes: 4096) == .peer)
        #expect(least.routeRead(offsetBytes: 8192, lengthBytes: 4096) == .local)
        least.readFinished(.local)
        least.readFinished(.local)
        #expect(least.routeRead(offsetBytes: 0, lengthBytes: 4096) == .local, "1 in flight on each side: a tie")
    }

    @Test func aReadOfARegionWithAnUnansweredWriteStaysLocal() {
        var node = connectedNode(.preferRemote)
        var actions: [PrimaryNodeAction] = []
        node.handle(.request(id: 1, .write(offsetBytes: 8192, lengthBytes: 8192, fua: false)), nowNs: 2, into: &actions)
        #expect(node.routeRead(offsetBytes: 12_288, lengthBytes: 4096) == .local, "the write may not be on the peer yet")
        #expect(node.routeRead(offsetBytes: 0, lengthBytes: 8192) == .peer, "a neighbouring region goes to the peer")
        node.handle(.localWriteDone(sequence: 1, errno: 0), nowNs: 3, into: &actions)
        #expect(node.routeRead(offsetBytes: 12_288, lengthBytes: 4096) == .local, "answered only once the peer applied it")
        node.handle(.peer(.dataAck(sequence: 1)), nowNs: 4, into: &actions)
        #expect(actions.contains(.answer(1, errno: 0)))
        #expect(node.routeRead(offsetBytes: 12_288, lengthBytes: 4096) == .peer, "the peer applied it before the answer")
    }

    @Test func readsStayLocalUnlessThePeerHoldsEveryAcknowledgedWrite() {
        var async = connectedNode(.preferRemote, mode: .async)
        #expect(async.routeRead(offsetBytes: 0, lengthBytes: 4096) == .local)
        #expect(async.peerReadsRefusal?.contains("not sync") == true)
        var old = connectedNode(.preferRemote, peerVersion: 5)
        #expect(old.routeRead(offsetBytes: 0, lengthBytes: 4096) == .local, "an old peer never gets a ReadRequest")
        #expect(old.peerReadsRefusal?.contains("protocol 5") == true)
        var down = connectedNode(.preferRemote)
        var actions: [PrimaryNodeAction] = []
        down.handle(.linkDown(reason: "cut", refusal: nil), nowNs: 2, into: &actions)
        #expect(down.routeRead(offsetBytes: 0, lengthBytes: 4096) == .local)
        #expect(down.peerReadsRefusal == "the peer is not connected")
        var copying = PrimaryNode(config: PrimaryNodeConfig(primary: ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 8 << 20),
                                                            volumeSizeBytes: 64 << 20), session: 9, basis: .fullCopy)
        copying.setReadBalancing(.preferRemote)
        for event: PrimaryNodeEvent in [.peerVersion(6), .enable, .linkUp, .peer(.hello(durableThroughEpoch: 0, copy: .inconsistent))] {
            copying.handle(event, nowNs: 1, into: &actions)
        }
        #expect(copying.routeRead(offsetBytes: 0, lengthBytes: 4096) == .local)
        #expect(copying.peerReadsRefusal?.contains("Inconsistent") == true, "\(String(describing: copying.peerReadsRefusal))")
    }

    @Test func unalignedLargeAndExcessReadsStayLocal() {
        var node = connectedNode(.preferRemote, remoteReadsMax: 2)
        #expect(node.routeRead(offsetBytes: 512, lengthBytes: 4096) == .local, "not whole 4 KiB blocks")
        #expect(node.routeRead(offsetBytes: 0, lengthBytes: UInt64(WireFormat.readBytesMax) + 4096) == .local)
        #expect(node.routeRead(offsetBytes: (64 << 20) - 4096, lengthBytes: 8192) == .local, "past the end")
        #expect(node.routeRead(offsetBytes: 0, lengthBytes: 4096) == .peer)
        #expect(node.routeRead(offsetBytes: 0, lengthBytes: 4096) == .peer)
        #expect(node.routeRead(offsetBytes: 0, lengthBytes: 4096) == .local, "the bound on reads in flight to the peer")
        node.readFinished(.peer)
        node.routeFallback()
        #expect(node.reads.fellBackLocally == 1 && node.reads.remoteInFlight == 1 && node.reads.localInFlight == 5)
        #expect(node.routeRead(offsetBytes: 0, lengthBytes: 4096) == .peer)
    }

    @Test func aFailedDiskReadsThroughAnUpToDatePeerWhateverThePolicy() {
        var node = connectedNode(.preferLocal)
        var actions: [PrimaryNodeAction] = []
        node.handle(.diskFailedElsewhere, nowNs: 2, into: &actions)
        #expect(node.servesFromPeer)
        #expect(routes(&node, count: 3) == [.peer, .peer, .peer])
        node.handle(.linkDown(reason: "cut", refusal: nil), nowNs: 3, into: &actions)
        #expect(!node.servesFromPeer && node.routeRead(offsetBytes: 0, lengthBytes: 4096) == .local,
                "without the peer the failed disk answers for itself")
    }

    @Test func theSecondaryServesOnlyAsAnUpToDateConnectedCopyAndWithinItsBound() {
        let config = SecondaryNodeConfig(
            machine: ReplicationSecondaryConfig(diskDrain: .drain, queuedBytesMax: 8 << 20, queuedWritesMax: 64),
            resourceName: "r0", nodeName: "beta", peerName: "alpha", volumeSizeBytes: 64 << 20, alignment: 4096,
            initialSync: .full, stagingBytesMax: 0)
        let node = SecondaryNode(config: config, record: ReplicationRecord(), handedOver: false, nowNs: 1)
        let request = WireReadRequest(tag: 1, offsetBytes: 0, lengthBytes: 4096)
        #expect(node.judgePeerRead(request, readsInFlight: 0) == .refuse(errno: 11), "not connected, not UpToDate")
        let outside = WireReadRequest(tag: 2, offsetBytes: 64 << 20, lengthBytes: 4096)
        if case .violation = node.judgePeerRead(outside, readsInFlight: 0) {} else { Issue.record("a read past the end is a violation") }
    }
}
