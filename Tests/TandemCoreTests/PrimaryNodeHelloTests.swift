// PrimaryNode's judgement of the Hello of the peer it dialled: one refusal per check, with the
// code and text the peer's log and `last_error` show, and the first failing check decides.
import TandemCore
import Testing

private let sizeBytes: UInt64 = 64 << 20

private func node() -> PrimaryNode {
    PrimaryNode(
        config: PrimaryNodeConfig(
            primary: ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 8 << 20), volumeSizeBytes: sizeBytes),
        session: 77, basis: .assumeInSync)
}

private func hello(resource: String = "r0", sizeBytes: UInt64 = sizeBytes, role: ResourceRole = .secondary) -> WireHello {
    WireHello(role: role, nodeName: "beta", resourceName: resource, volumeSizeBytes: sizeBytes,
              generations: WireGenerations(current: 5, bitmap: 5), promotionNumber: 0)
}

@Suite struct PrimaryNodeHelloTests {
    @Test func aSecondaryOfTheSameResourceAndSizeIsAccepted() {
        #expect(node().judgePeerHello(hello(), own: .r0) == .accept)
    }

    @Test func aPeerNamingAnotherResourceIsRefusedAsUnknownResource() {
        #expect(node().judgePeerHello(hello(resource: "r1"), own: .r0)
            == .refuse(.unknownResource, "expected resource 'r0', peer names 'r1'"))
    }

    @Test func aPeerWithAnotherVolumeSizeIsRefusedAsSizeMismatch() {
        #expect(node().judgePeerHello(hello(sizeBytes: 4 << 20), own: .r0)
            == .refuse(.sizeMismatch, "local volume has 67108864 bytes, peer 4194304"))
    }

    @Test func aPeerThatIsPrimaryTooIsRefusedAsRoleConflict() {
        #expect(node().judgePeerHello(hello(role: .primary), own: .r0)
            == .refuse(.roleConflict, "this node is primary and so is the peer"))
    }

    @Test func theFirstFailingCheckDecidesInTheOrderResourceSizeRole() {
        let node = node()
        let everythingWrong = hello(resource: "r1", sizeBytes: 4096, role: .primary)
        #expect(node.judgePeerHello(everythingWrong, own: .r0)
            == .refuse(.unknownResource, "expected resource 'r0', peer names 'r1'"))
        #expect(node.judgePeerHello(hello(sizeBytes: 4096, role: .primary), own: .r0)
            == .refuse(.sizeMismatch, "local volume has 67108864 bytes, peer 4096"))
    }
}

extension OwnHelloFacts {
    /// Resource r0 with no generations (the node supplies its volume size).
    static let r0 = OwnHelloFacts(resourceName: "r0", volumeSizeBytes: 0, role: .primary, generations: .none)
}
