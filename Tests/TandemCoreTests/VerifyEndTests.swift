// VerifyEnd (type 41, protocol 10; docs/protocol.md): the primary tells its secondary that the
// online verify or crash restart's digest compare it ran on this link ended, so the secondary
// leaves `VerifyT` at once instead of two seconds after the last DigestRequest. The frame has
// no body; the primary sends it only to a peer whose Hello names `verifyEndVersion`; the
// secondary keeps the two-second inference for an older primary, and a link's end ends it.
import TandemCore
import Testing

@Suite struct VerifyEndTests {
    static let volumeBytes: UInt64 = 2 << 20

    @Test func theVerifyEndFrameRoundTripsAndABodyIsRefused() throws {
        let frames = try WireFixtures.decodeAll(try WireEncoder.encode(.verifyEnd, promotionNumber: 3))
        #expect(frames.map(\.message) == [.verifyEnd] && frames.first?.header.bodyBytes == 0)
        #expect(WireMessageType(rawValue: 41) == .verifyEnd && WireFormat.verifyEndVersion == 10)
        let padded = WireFixtures.rawFrame(type: 41, body: WireFixtures.le(UInt64(0)))
        #expect(WireFixtures.firstError(padded) != nil, "a VerifyEnd with a body decoded")
    }

    /// A synced secondary of session 9 (continuing 5) on an established link whose primary's
    /// Hello names `primaryVersion`.
    static func establishedSecondary(primaryVersion: UInt16, nowNs: UInt64) -> SecondaryNode {
        let config = SecondaryNodeConfig(
            machine: ReplicationSecondaryConfig(queuedBytesMax: 1 << 20, groupCommitIntervalNs: 1_000),
            resourceName: "r1", nodeName: "beta", peerName: "alpha", volumeSizeBytes: volumeBytes, alignment: 4096,
            initialSync: .full)
        var node = SecondaryNode(config: config, record: ReplicationRecord(generation: 4, session: 5, durableThroughEpoch: 3, synced: true),
                                 handedOver: true, cleanStop: false, nowNs: nowNs)
        let hello = WireHello(protocolVersion: primaryVersion, role: .primary, nodeName: "alpha", resourceName: "r1",
                              volumeSizeBytes: volumeBytes, generations: WireGenerations(current: 9, bitmap: 5), promotionNumber: 0)
        var actions: [SecondaryNodeAction] = []
        for event: SecondaryNodeEvent in [.hello(PrimaryHelloFacts(hello: hello, certificateNamesPeer: true, certificateSubject: "CN=alpha")),
                                          .linkEstablished, .syncComplete(through: 0)] {
            node.handle(event, nowNs: nowNs, into: &actions)
        }
        return node
    }

    @Test func theSecondaryLeavesVerifyTAtVerifyEndAndNotBefore() {
        var nowNs: UInt64 = 1_000_000_000
        var node = Self.establishedSecondary(primaryVersion: WireFormat.verifyEndVersion, nowNs: nowNs)
        var actions: [SecondaryNodeAction] = []
        #expect(node.streamState == .established)
        node.handle(.digestRequested(offsetBytes: 0, lengthBytes: 4096), nowNs: nowNs, into: &actions)
        #expect(node.streamState == .verifyT)
        // A region the primary waits for (written without pause) may take longer than two
        // seconds: this primary says when it is done.
        nowNs += 3_000_000_000
        node.handle(.tick, nowNs: nowNs, into: &actions)
        #expect(node.streamState == .verifyT, "still verifying three seconds after the last request")
        node.handle(.verifyEnded, nowNs: nowNs, into: &actions)
        #expect(node.streamState == .established, "VerifyEnd ends it at once")
        // A verify cut short by the link's end: the next link shows no verify it did not ask.
        node.handle(.digestRequested(offsetBytes: 4096, lengthBytes: 4096), nowNs: nowNs, into: &actions)
        #expect(node.streamState == .verifyT)
        node.handle(.linkClosed, nowNs: nowNs, into: &actions)
        node.handle(.hello(PrimaryHelloFacts(
            hello: WireHello(protocolVersion: WireFormat.verifyEndVersion, role: .primary, nodeName: "alpha", resourceName: "r1",
                             volumeSizeBytes: Self.volumeBytes, generations: WireGenerations(current: 9, bitmap: 5), promotionNumber: 0),
            certificateNamesPeer: true, certificateSubject: "CN=alpha")), nowNs: nowNs, into: &actions)
        node.handle(.linkEstablished, nowNs: nowNs, into: &actions)
        #expect(node.streamState != .verifyT, "\(node.streamState)")
    }

    @Test func anOlderPrimarysVerifyEndsTwoSecondsAfterItsLastRequest() {
        var nowNs: UInt64 = 1_000_000_000
        var node = Self.establishedSecondary(primaryVersion: WireFormat.verifyEndVersion - 1, nowNs: nowNs)
        var actions: [SecondaryNodeAction] = []
        node.handle(.digestRequested(offsetBytes: 0, lengthBytes: 4096), nowNs: nowNs, into: &actions)
        nowNs += 1_999_000_000
        node.handle(.tick, nowNs: nowNs, into: &actions)
        #expect(node.streamState == .verifyT)
        nowNs += 1_000_000
        node.handle(.tick, nowNs: nowNs, into: &actions)
        #expect(node.streamState == .established)
    }

    /// The primary's verify: VerifyEnd goes out with its end (after its last DigestRequest),
    /// only to a peer that reads it.
    @Test func aVerifyEndsWithVerifyEndToAPeerThatReadsIt() {
        for (version, told) in [(WireFormat.verifyEndVersion, true), (WireFormat.verifyEndVersion - 1, false)] {
            var h = PrimaryNodeVerifyTests.make(ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 8 << 20),
                                                volumeBytes: Self.volumeBytes)
            h.connect(peerVersion: version)
            h.send(.startVerify)
            #expect(h.asked == [0])
            h.answer(0, same: true)
            #expect(h.asked == [1 << 20] && !h.actions.contains(.sendVerifyEnd))
            h.answer(1 << 20, same: true)
            #expect(h.actions.contains(.notice(.verifyEnded(checkedBytes: 2 << 20, mismatchedBytes: 0, abortedBecause: nil))))
            #expect(h.actions.contains(.sendVerifyEnd) == told, "peer protocol \(version): \(h.actions)")
        }
    }

    /// A crash restart's digest compare (the case that showed the lag: the primary said
    /// Established while its peer said VerifyT): VerifyEnd goes out when it ends.
    @Test func aCrashRestartsCompareEndsWithVerifyEnd() {
        let region = ChecksumRegion(offsetBytes: 0, lengthBytes: 128 << 10)
        var tracked = DirtyBitmap(volumeSizeBytes: Self.volumeBytes, blockBytes: 4096)
        _ = tracked.setRange(offsetBytes: 0, lengthBytes: region.lengthBytes)
        let node = PrimaryNode(
            config: PrimaryNodeConfig(primary: ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 8 << 20),
                                      volumeSizeBytes: Self.volumeBytes, chunkBytes: 1 << 20),
            session: 77, basis: .catchUp([CatchUpBase(session: 9, durableThroughEpoch: 3)]), trackedBitmap: tracked,
            checksumRegions: [region])
        var h = DigestCompareDriver(node: node, regionBytes: region.lengthBytes)
        h.connect(peerVersion: WireFormat.verifyEndVersion)
        #expect(h.asked == [0], "\(h.actions)")
        h.answer(0, same: true)
        #expect(h.actions.contains(.sendVerifyEnd), "\(h.actions)")
        #expect(h.node.checksumResyncProgress?.running == false)
    }
}
