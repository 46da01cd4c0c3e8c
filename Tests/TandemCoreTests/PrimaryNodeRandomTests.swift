// PrimaryNode under random interleavings: every request answered once, ordering and release
// rules kept (the harness is PrimaryNodeTests.swift's).
import TandemCore
import Testing

/// A deterministic generator for the randomized test.
private struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

@Suite struct PrimaryNodeRandomTests {
    /// Overlapping requests of every kind, local completions in any order, peer acks and
    /// link losses at random: every request is answered exactly once, no two writes of one
    /// epoch overlap, releases only move forward, and once everything settles every request
    /// has been answered 0.
    @Test(arguments: [(ReplicationAckMode.async, UInt64(1)), (.async, 2), (.sync, 3), (.sync, 4)])
    func randomOverlappingWorkloadsKeepTheRules(mode: ReplicationAckMode, seed: UInt64) {
        var random = SplitMix(state: seed)
        var h = PrimaryNodeHarness(mode: mode, bufferBytes: 256 << 10, chunkBytes: 64 << 10)
        h.connect()
        var outstanding = Set<RequestID>()
        var nextID: RequestID = 1
        var localInFlight: [WriteSequence] = []
        var flushInFlight = false
        var sent: [WriteSequence: DataMessage] = [:]
        var releasedThrough: WriteSequence = 0
        var answeredCount = 0
        /// The newest epoch the stream has closed (barrier, flush request, or a later write).
        var closedEpoch: Epoch = 0
        /// A payload store carrying out the actions in order, as the driver does: it must
        /// never hold more than the node's bounds.
        var held: [WriteSequence: UInt32] = [:]
        var heldBytes: UInt64 = 0

        func absorb(_ actions: [PrimaryNodeAction]) {
            for action in actions {
                switch action {
                case let .answer(id, errno):
                    #expect(outstanding.remove(id) != nil, "request \(id) answered twice or never asked")
                    #expect(errno == 0, "no failure was injected")
                    answeredCount += 1
                case let .writeLocal(write):
                    if write.source != .copyChunk { localInFlight.append(write.sequence) }
                    held[write.sequence] = write.lengthBytes
                    heldBytes += UInt64(write.lengthBytes)
                    #expect(heldBytes <= 256 << 10, "the store would hold \(heldBytes) bytes, beyond the node's bound")
                    #expect(held.count <= h.node.config.primary.writesInFlightMax)
                case .flushLocal:
                    #expect(!flushInFlight, "two local flushes at once")
                    flushInFlight = true
                case let .send(.epochBarrier(epoch)), let .send(.flushRequest(epoch)):
                    closedEpoch = max(closedEpoch, epoch)
                case let .send(.data(data)):
                    closedEpoch = max(closedEpoch, data.epoch - 1)
                    if sent[data.sequence] == nil {
                        let end = data.offsetBytes + UInt64(data.lengthBytes)
                        for other in sent.values where other.epoch == data.epoch {
                            #expect(!(data.offsetBytes < other.offsetBytes + UInt64(other.lengthBytes) && other.offsetBytes < end),
                                    "writes \(other.sequence) and \(data.sequence) overlap in epoch \(data.epoch)")
                        }
                        sent[data.sequence] = data
                    }
                case let .release(through):
                    #expect(through > releasedThrough)
                    releasedThrough = through
                    for sequence in sent.keys where sequence <= through { sent[sequence] = nil }
                    for (sequence, length) in held where sequence <= through {
                        held[sequence] = nil
                        heldBytes -= UInt64(length)
                    }
                case .streamRestarted:
                    // A catch-up session after Ahead: a fresh stream, sequences from 1.
                    #expect(held.isEmpty && localInFlight.isEmpty && !flushInFlight, "a stream restarted with writes held")
                    releasedThrough = 0
                    sent.removeAll()
                    closedEpoch = 0
                default:
                    break
                }
            }
        }

        /// The link comes back (a catch-up session's stream starts with a new session).
        func reconnect() {
            h.nowNs += 10_000_000_000
            absorb(h.send(.tick))
            if h.node.isDialing { absorb(h.send(.linkUp)) }
            let durable = h.node.restartPending ? 0 : h.node.primary.peerDurableEpoch
            absorb(h.send(.peer(.hello(durableThroughEpoch: durable, copy: .consistent))))
        }

        for _ in 0..<6_000 {
            h.nowNs += 1_000_000
            switch random.below(10) {
            case 0, 1, 2:
                let id = nextID
                nextID += 1
                outstanding.insert(id)
                let offset = UInt64(random.below(32)) * 4096
                let request: ApplicationRequest
                switch random.below(12) {
                case 0: request = .flush
                case 1: request = .trim
                case 2: request = .writeZeroes(offsetBytes: offset, lengthBytes: UInt64(1 + random.below(40)) * 4096, fua: random.below(2) == 0)
                default: request = .write(offsetBytes: offset, lengthBytes: UInt32(1 + random.below(4)) * 4096, fua: random.below(8) == 0)
                }
                absorb(h.send(.request(id: id, request)))
            case 3, 4, 5:
                guard !localInFlight.isEmpty else { continue }
                let sequence = localInFlight.remove(at: random.below(localInFlight.count))
                absorb(h.send(.localWriteDone(sequence: sequence, errno: 0)))
            case 6:
                guard flushInFlight else { continue }
                flushInFlight = false
                absorb(h.send(.localFlushDone(errno: 0)))
            case 7:
                let keys = sent.keys.sorted()
                guard h.node.isPeerReady, mode == .sync, !keys.isEmpty else { continue }
                absorb(h.send(.peer(.dataAck(sequence: keys[random.below(keys.count)]))))
            case 8:
                guard h.node.isPeerReady, closedEpoch > h.node.primary.peerDurableEpoch else { continue }
                absorb(h.send(.peer(.durableThroughEpoch(closedEpoch))))
            default:
                if h.node.isPeerReady && random.below(20) == 0 {
                    absorb(h.send(.linkDown(reason: "cut", refusal: nil)))
                    sent.removeAll()
                } else if !h.node.isPeerReady {
                    reconnect()
                }
            }
        }
        // Settle: everything completes, the peer confirms everything.
        var rounds = 0
        while !outstanding.isEmpty && rounds < 10_000 {
            rounds += 1
            if !h.node.isPeerReady {
                reconnect()
            }
            if let sequence = localInFlight.popLast() { absorb(h.send(.localWriteDone(sequence: sequence, errno: 0))) }
            if flushInFlight {
                flushInFlight = false
                absorb(h.send(.localFlushDone(errno: 0)))
            }
            if mode == .sync { for sequence in sent.keys.sorted() { absorb(h.send(.peer(.dataAck(sequence: sequence)))) } }
            if closedEpoch > h.node.primary.peerDurableEpoch { absorb(h.send(.peer(.durableThroughEpoch(closedEpoch)))) }
        }
        #expect(outstanding.isEmpty, "\(outstanding.count) requests never answered")
        #expect(answeredCount > 1_000)
    }
}
