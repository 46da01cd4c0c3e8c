// Online verify on PrimaryNode (issue 13 §7): which region is asked when, what it locks, what
// a mismatch does, and what ends the walk.
import TandemCore
import Testing

@Suite struct PrimaryNodeVerifyTests {
    static let regionBytes: UInt64 = 1 << 20

    static func make(_ primary: ReplicationPrimaryConfig, volumeBytes: UInt64, chunkBytes: UInt32 = 1 << 20)
        -> DigestCompareDriver {
        let node = PrimaryNode(
            config: PrimaryNodeConfig(primary: primary, volumeSizeBytes: volumeBytes, chunkBytes: chunkBytes),
            session: 77, basis: .assumeInSync)
        return DigestCompareDriver(node: node, regionBytes: regionBytes)
    }

    /// Every write submitted in the last event completes here and is durable on the peer;
    /// repeated while that submits more (chunks of a WRITE_ZEROES waiting for room).
    static func completeWrites(_ h: inout DigestCompareDriver) {
        var pending = h.localWrites
        while let write = pending.first {
            pending.removeFirst()
            h.send(.localWriteDone(sequence: write.sequence, errno: 0))
            pending += h.localWrites
            h.send(.peer(.dataAck(sequence: write.sequence)))
            pending += h.localWrites
            h.send(.peer(.durableThroughEpoch(h.node.primary.openEpoch)))
            pending += h.localWrites
        }
    }

    /// The local writes submitted in the last event.
    static func submitted(_ h: DigestCompareDriver) -> [LocalWrite] {
        h.actions.compactMap { if case let .writeLocal(write) = $0 { return write } else { return nil } }
    }

    static func answered(_ h: DigestCompareDriver, _ id: RequestID) -> Bool {
        h.actions.contains(.answer(id, errno: 0))
    }

    @Test func aRegionIsAskedOnceSettledLockedOnlyWhileAskedAndWhatDiffersIsCopied() {
        var h = Self.make(ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 8 << 20), volumeBytes: 2 << 20)
        h.connect()
        // A write held for the peer keeps the first region from being asked.
        h.send(.request(id: 1, .write(offsetBytes: 4096, lengthBytes: 4096, fua: false)))
        h.send(.localWriteDone(sequence: 1, errno: 0))
        h.send(.startVerify)
        #expect(h.actions.contains(.notice(.verifyStarted(bytes: 2 << 20))))
        #expect(h.asked.isEmpty && h.digestReads.isEmpty)
        #expect(h.node.streamState == .verifyS)
        // Waiting to be asked, the region locks nothing: a second write into it is admitted at
        // once, and the region waits for that one too.
        h.send(.request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.map(\.offset) == [8192], "admitted at once")
        h.send(.localWriteDone(sequence: 2, errno: 0))
        h.send(.peer(.dataAck(sequence: 1)))
        h.send(.peer(.dataAck(sequence: 2)))
        #expect(h.asked.isEmpty, "applied on the peer, not yet durable there")
        h.send(.peer(.durableThroughEpoch(h.node.primary.openEpoch)))
        #expect(h.digestReads == [0] && h.asked == [0], "read here and asked of the peer in the same turn")
        // Asked, it is locked: a write into it waits for both digests.
        h.send(.request(id: 3, .write(offsetBytes: 12288, lengthBytes: 4096, fua: false)))
        #expect(h.localWrites.isEmpty, "locked while asked")
        h.answer(0, same: true)
        #expect(h.localWrites.map(\.offset) == [12288], "unlocked once compared")
        #expect(h.asked == [1 << 20], "the next region has no held write: asked in the same turn")
        Self.completeWrites(&h)
        // The second region differs: marked, reported, and copied once the walk ends.
        h.answer(1 << 20, same: false)
        #expect(h.actions.contains(.notice(.verifyMismatch(offsetBytes: 1 << 20, lengthBytes: 1 << 20))))
        #expect(h.actions.contains(.notice(.verifyEnded(checkedBytes: 2 << 20, mismatchedBytes: 1 << 20, abortedBecause: nil))))
        #expect(h.actions.contains(.notice(.verifyRepairStarted(bytes: 1 << 20))))
        #expect(h.copyReads.map(\.0) == [1 << 20] && h.node.peerDiskState == .inconsistent)
        #expect(h.node.verifyProgress == VerifyProgress(totalBytes: 2 << 20, checkedBytes: 2 << 20, mismatchedBytes: 1 << 20,
                                                         running: false, abortedBecause: nil))
    }

    /// A consistency group's member whose secondary holds its writes (the group barrier:
    /// another member is away) never has them confirmed until that member is back. The
    /// verify's region waits for them, and the application's writes to it go on meanwhile:
    /// before, the region was locked while it waited, and a write to it waited with it.
    @Test func aGroupMembersWritesToARegionWaitingForHeldWritesAreAdmittedAtOnce() throws {
        var primary = ReplicationPrimaryConfig(mode: .async, bufferBytesMax: 8 << 20)
        primary.groupID = ConsistencyGroup.id(ofName: "db")
        var h = Self.make(primary, volumeBytes: 2 << 20)
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 4096, lengthBytes: 4096, fua: false)))
        h.send(.localWriteDone(sequence: 1, errno: 0))
        #expect(Self.answered(h, 1))
        h.send(.startVerify)
        #expect(h.asked.isEmpty, "write 1 is held on the peer: the region waits")
        // The same block again, and others in the region: each admitted and answered at once.
        for (id, offset) in [(2, 4096), (3, 65536), (4, (1 << 20) - 4096)] as [(RequestID, UInt64)] {
            h.send(.request(id: id, .write(offsetBytes: offset, lengthBytes: 4096, fua: false)))
            let written = h.localWrites
            try #require(written.map(\.offset) == [offset], "write \(id) admitted at once")
            h.send(.localWriteDone(sequence: written[0].sequence, errno: 0))
            #expect(Self.answered(h, id), "write \(id) answered")
            #expect(h.asked.isEmpty && h.digestReads.isEmpty, "the region is never asked while a write to it is held")
        }
        #expect(h.node.verifyProgress?.checkedBytes == 0 && h.node.verifyProgress?.running == true)
        // The barrier lets them go (the other member is back): the region is asked.
        h.send(.peer(.durableThroughEpoch(h.node.primary.openEpoch)))
        #expect(h.asked == [0] && h.digestReads == [0])
        h.answer(0, same: true)
        h.answer(1 << 20, same: true)
        #expect(h.actions.contains(.notice(.verifyEnded(checkedBytes: 2 << 20, mismatchedBytes: 0, abortedBecause: nil))))
    }

    /// A WRITE_ZEROES admitted whose later chunks wait for room in the buffer: the stream does
    /// not hold them yet, but they will land in the region. It is asked only once they are
    /// issued and durable on the peer (before, it was read while they were still to come,
    /// and the chunk written meanwhile made a false mismatch).
    @Test func aRegionWithZeroChunksStillToIssueIsNotAsked() {
        // Sync: a full buffer makes the application wait (async would go Ahead and end the walk).
        var h = Self.make(ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 768 << 10), volumeBytes: 3 << 20,
                          chunkBytes: 512 << 10)
        h.connect()
        h.send(.startVerify)
        #expect(h.asked == [0])
        // [512 KiB, 2 MiB) in three chunks: it waits for the first region's digests.
        h.send(.request(id: 1, .writeZeroes(offsetBytes: 512 << 10, lengthBytes: 3 << 19, fua: false)))
        #expect(h.localWrites.isEmpty, "the first region is asked: locked")
        h.answer(0, same: true)
        #expect(h.localWrites.map(\.offset) == [512 << 10], "the first chunk; the second waits for room")
        #expect(h.asked.isEmpty, "the second region waits for the chunks still to come")
        var chunks = Self.submitted(h)
        h.nowNs += 1_000_000_000  // the resync throttle's next step: the region's read is not held by it
        var askedEarly = false
        var index = 0
        while index < chunks.count {
            let chunk = chunks[index]
            index += 1
            for event in [PrimaryNodeEvent.localWriteDone(sequence: chunk.sequence, errno: 0),
                          .peer(.dataAck(sequence: chunk.sequence))] {
                h.send(event)
                chunks += Self.submitted(h)
                askedEarly = askedEarly || !h.asked.isEmpty
            }
            h.send(.peer(.durableThroughEpoch(chunk.epoch)))
            chunks += Self.submitted(h)
            if index < 3 { askedEarly = askedEarly || !h.asked.isEmpty }
        }
        #expect(!askedEarly, "asked with a chunk still to issue, or not durable on the peer")
        #expect(chunks.map(\.offsetBytes) == [512 << 10, 1 << 20, 3 << 19])
        #expect(h.asked == [1 << 20], "asked once the last chunk is durable on the peer")
        h.nowNs += 1_000_000_000
        h.answer(1 << 20, same: true)
        #expect(h.asked == [2 << 20])
        h.answer(2 << 20, same: true)
        #expect(h.actions.contains(.notice(.verifyEnded(checkedBytes: 3 << 20, mismatchedBytes: 0, abortedBecause: nil))))
    }

    @Test func verifyIsRefusedByAnOldPeerAndEndsWhenTheLinkGoes() {
        var h = Self.make(ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 8 << 20), volumeBytes: 2 << 20)
        h.send(.peerVersion(3))
        h.send(.enable)
        h.send(.linkUp)
        h.send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        #expect(h.node.verifyRefusal?.contains("protocol 3") == true)
        h.send(.peerVersion(WireFormat.helloVersion))
        h.send(.startVerify)
        #expect(h.digestReads == [0])
        h.send(.linkDown(reason: "cut", refusal: nil))
        #expect(h.actions.contains(.notice(.verifyEnded(checkedBytes: 0, mismatchedBytes: 0,
                                                        abortedBecause: "the link to the peer was lost"))))
        // The local read still ends (a stop waits for it); its digest is dropped.
        h.send(.verifyRegionRead(offsetBytes: 0, digest: RegionDigest(high: 1, low: 1), errno: 0))
        #expect(h.node.verifyProgress?.running == false)
    }
}
