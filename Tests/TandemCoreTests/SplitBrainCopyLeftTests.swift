// What a split brain's union resync checkpoints for a crash of the survivor
// (PrimaryNode.copyLeftWithHeld, docs/replication.md *Split brain*): the copy's blocks not
// yet admitted and those of every chunk and write the peer has not confirmed durable. A
// chunk's bits leave the node's bitmap when it is admitted, so the bitmap alone would let a
// crash forget a chunk the peer never made durable.
import TandemCore
import Testing

@Suite struct SplitBrainCopyLeftTests {
    static let volumeBytes: UInt64 = 4 << 20

    private struct Harness {
        var node: PrimaryNode
        var actions: [PrimaryNodeAction] = []

        init(union: DirtyBitmap) {
            node = PrimaryNode(
                config: PrimaryNodeConfig(primary: ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 8 << 20),
                                          volumeSizeBytes: SplitBrainCopyLeftTests.volumeBytes),
                session: 77, basis: .fullCopy)
            node.restrictCopy(to: union)
        }

        mutating func send(_ event: PrimaryNodeEvent) {
            actions.removeAll()
            node.handle(event, nowNs: 1_000_000_000, into: &actions)
        }

        var reads: [(UInt64, UInt32)] {
            actions.compactMap { if case let .readCopyChunk(offset, length) = $0 { return (offset, length) } else { return nil } }
        }

        var sequences: [WriteSequence] {
            actions.compactMap { if case let .writeLocal(write) = $0 { return write.sequence } else { return nil } }
        }
    }

    @Test func whatIsLeftKeepsAChunkUntilThePeerHoldsIt() {
        var union = DirtyBitmap(volumeSizeBytes: Self.volumeBytes, blockBytes: 4096)
        _ = union.setBlocks(BlockRun(first: 0, count: 16))  // 64 KiB at 0
        _ = union.setBlocks(BlockRun(first: 512, count: 8))  // 32 KiB at 2 MiB
        var h = Harness(union: union)
        #expect(h.node.copyLeftWithHeld.setBlockCount == 24, "before the copy: the union")
        h.send(.enable)
        h.send(.linkUp)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        #expect(h.reads.first.map { $0.0 } == 0, "\(h.actions)")
        // The first chunk is read and admitted: its bits leave the bitmap, not what is left.
        h.send(.copyChunkRead(offsetBytes: 0, lengthBytes: 64 << 10, errno: 0))
        let admitted = h.sequences
        #expect(!admitted.isEmpty)
        #expect(h.node.outOfSyncBytes <= 8 * 4096, "the bitmap no longer marks the admitted chunk")
        var left = h.node.copyLeftWithHeld
        #expect(left.setCount(in: BlockRun(first: 0, count: 16)) == 16, "unconfirmed: still left")
        #expect(left.setBlockCount == 24)
        // The peer applies it and makes it durable: now it is no longer left.
        for sequence in admitted { h.send(.peer(.dataAck(sequence: sequence))) }
        h.send(.peer(.durableThroughEpoch(h.node.primary.openEpoch)))
        left = h.node.copyLeftWithHeld
        #expect(left.setCount(in: BlockRun(first: 0, count: 16)) == 0)
        #expect(left.setCount(in: BlockRun(first: 512, count: 8)) == 8, "the second run is not copied yet")
        #expect(left.setBlockCount == 8)
    }
}
