// PrimaryNode's copy in epochs of an eighth of its window: a sync copy's chunks are released
// only once the peer confirms their epoch durable, and a sync epoch closes only when one of
// its writes is acknowledged. Without the copy's own closing, every chunk read before the
// first ack joined one epoch — the whole window — which the peer could confirm only after its
// last chunk, so the copy stopped and went a window at a time (docs/benchmarks.md, ninth
// session). Here a peer that has applied and made durable the first eighth lets the copy
// read on while the rest of the window is still on its way.
import TandemCore
import Testing

private struct SyncCopy {
    var node = PrimaryNode(
        config: PrimaryNodeConfig(primary: ReplicationPrimaryConfig(mode: .sync), volumeSizeBytes: 256 << 20,
                                  resyncRateBytesPerSecond: 1 << 40),  // unthrottled, as the benchmark runs it
        session: 5, basis: .fullCopy)
    var nowNs: UInt64 = 1_000_000_000
    var reads: [(offset: UInt64, length: UInt32)] = []
    var data: [(sequence: WriteSequence, epoch: Epoch)] = []
    var barriers: [Epoch] = []
    var violations: [String] = []

    mutating func handle(_ event: PrimaryNodeEvent) {
        var actions: [PrimaryNodeAction] = []
        nowNs += 1_000_000
        node.handle(event, nowNs: nowNs, into: &actions)
        for action in actions {
            switch action {
            case let .readCopyChunk(offset, length): reads.append((offset, length))
            case let .send(.data(message)): data.append((message.sequence, message.epoch))
            case let .send(.epochBarrier(epoch)): barriers.append(epoch)
            case let .protocolViolation(reason): violations.append(reason)
            default: break
            }
        }
    }

    /// Completes every read asked for from index `first` on.
    mutating func completeReads(from first: Int) {
        for read in reads[first...] {
            handle(.copyChunkRead(offsetBytes: read.offset, lengthBytes: read.length, errno: 0))
        }
    }
}

@Suite struct PrimaryNodeCopyEpochTests {
    @Test func aSyncCopyIsConfirmedAnEighthOfItsWindowAtATimeWhileTheRestMoves() throws {
        var copy = SyncCopy()
        for event in [PrimaryNodeEvent.enable, .linkUp, .peer(.hello(durableThroughEpoch: 0, copy: .inconsistent))] {
            copy.handle(event)
        }
        let window = copy.node.config.copyBuffersMax
        #expect(copy.reads.count == window, "the copy fills its window")
        copy.completeReads(from: 0)
        // No ack yet: the window's chunks are sent in epochs of an eighth, each closed.
        #expect(copy.data.count == window)
        let epochs = Dictionary(grouping: copy.data, by: \.epoch)
        #expect(epochs.count == 8 && epochs.values.allSatisfy { $0.count == window / 8 })
        #expect(copy.barriers == Array(epochs.keys).sorted(), "each epoch is closed as it fills")
        #expect(copy.reads.count == window, "the window is full until the peer confirms")
        // The peer applies the first eighth and makes it durable: its chunks come back and
        // the copy reads as many again, the rest of the window still unconfirmed.
        let first = try #require(epochs.keys.min())
        for chunk in epochs[first]! { copy.handle(.peer(.dataAck(sequence: chunk.sequence))) }
        copy.handle(.peer(.durableThroughEpoch(first)))
        #expect(copy.reads.count == window + window / 8)
        copy.completeReads(from: window)
        #expect(copy.data.count == window + window / 8)
        #expect(copy.violations.isEmpty)
    }
}
