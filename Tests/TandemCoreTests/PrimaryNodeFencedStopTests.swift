// PrimaryNode's stops under `fencing: suspend-io` (docs/replication.md, *Fencing*): what a
// stop answers for a write or a sync FLUSH still waiting for the peer, by what the node does
// after the stop — serves nothing (shutdown, demotion, a returned primary's yield, a split
// brain's stop: EIO) or serves alone (`disable`, `.stopToServeAlone`: 0 after the notice
// `acknowledgedWithoutPeer`, so B moves first).
import TandemCore
import Testing

@Suite struct PrimaryNodeFencedStopTests {
    /// A connected sync node (`suspend-io` unless `tracksWithoutPeer`) whose write 1 (4 KiB at
    /// 0) is done on its disk and waits for the peer.
    static func syncNodeWithWriteOnDisk(tracksWithoutPeer: Bool = false) -> AheadHarness {
        var h = AheadHarness(mode: .sync, tracksWithoutPeer: tracksWithoutPeer)
        h.connect()
        h.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        h.send(.localWriteDone(sequence: 1, errno: 0))
        return h
    }

    /// The stop's last event said `acknowledgedWithoutPeer` before answering `id` 0, then stopped.
    static func expectNoticeBeforeAnswer(_ h: AheadHarness, _ id: RequestID) {
        let notice = h.actions.firstIndex(of: .notice(.acknowledgedWithoutPeer))
        let answer = h.actions.firstIndex(of: .answer(id, errno: 0))
        #expect(notice != nil && answer != nil && notice! < answer!, "\(h.actions)")
        #expect(h.actions.last == .stopped)
    }

    /// Under `suspend-io` a sync write held for the peer waits (no Ahead), and the stop fails
    /// it (issue 14) rather than answer it from this disk: its local write is done, but the
    /// peer never said it applied it, and the peer may be promoted without it; a returned
    /// primary's yield (which stops the replicator) then resyncs its region from the promoted
    /// node. Answered 0, the real daemons lost it
    /// (SplitBrainInFlightTests.aWriteHeldUnderSuspendIOFailsWhenTheOldPrimaryYields).
    @Test func aSyncPrimaryWithFencingSuspendIOKeepsWaitingAndFailsTheHeldWriteAtTheStop() {
        var h = Self.syncNodeWithWriteOnDisk()
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.nowNs += 60_000_000_000
        h.send(.tick)
        #expect(!h.node.isAhead && h.answered(1) == nil && h.node.outOfSyncBytes == 0)
        h.send(.stop)
        #expect(h.actions.last == .flushLocal)
        h.send(.localFlushDone(errno: 0))
        #expect(h.answered(1) == PrimaryErrno.eio, "answered from one copy: \(h.actions)")
        #expect(!h.actions.contains(.notice(.acknowledgedWithoutPeer)))
        #expect(h.actions.last == .stopped)
    }

    /// The operator's `disable` releases a `suspend-io` primary to serve alone: every later
    /// write is acknowledged on this copy, and so is the one held at the stop — said first
    /// (B moves), as for any write acknowledged alone, so the next meeting with a peer
    /// promoted meanwhile is a split brain, not a resync over it.
    @Test func aStopToServeAloneAnswersTheHeldSuspendIOWriteAsAcknowledgedAlone() {
        var h = Self.syncNodeWithWriteOnDisk()
        h.send(.linkDown(reason: "cut", refusal: nil))
        #expect(h.answered(1) == nil)
        h.send(.stopToServeAlone)
        h.send(.localFlushDone(errno: 0))
        Self.expectNoticeBeforeAnswer(h, 1)
    }

    /// A sync FLUSH answered 0 says every write before it is durable on both copies. Held for
    /// the peer's durable confirmation when the link went, it is failed by a stop after which
    /// the node serves nothing, like the write it covers: the stop's local flush makes only
    /// this copy durable. The old stop answered it 0 once that local flush succeeded.
    @Test func aSyncFlushHeldForThePeerFailsAtAStopAfterWhichTheNodeServesNothing() {
        var h = Self.syncNodeWithWriteOnDisk()
        h.send(.request(id: 2, .flush))
        #expect(h.actions.contains(.flushLocal))
        h.send(.localFlushDone(errno: 0))
        #expect(h.answered(2) == nil, "sync: the FLUSH waits for the peer's durable confirmation")
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.send(.stop)
        #expect(h.actions.last == .flushLocal)
        h.send(.localFlushDone(errno: 0))
        #expect(h.answered(1) == PrimaryErrno.eio && h.answered(2) == PrimaryErrno.eio, "\(h.actions)")
        #expect(!h.actions.contains(.notice(.acknowledgedWithoutPeer)))
        #expect(h.actions.last == .stopped)
    }

    /// The write was acknowledged with the link up (the peer applied it) but the peer never
    /// said it is durable there, so the FLUSH after it waits. A stop to serve alone answers
    /// it from the local flush, as a promise of this copy only: the notice comes first (B
    /// moves; the write's own answer, given with the link up, said nothing). The old stop
    /// answered it with no notice.
    @Test func aSyncFlushHeldForThePeerIsAnsweredAfterTheNoticeAtAStopToServeAlone() {
        var h = Self.syncNodeWithWriteOnDisk()
        h.send(.peer(.dataAck(sequence: 1)))
        #expect(h.answered(1) == 0 && !h.actions.contains(.notice(.acknowledgedWithoutPeer)))
        h.send(.request(id: 2, .flush))
        h.send(.localFlushDone(errno: 0))
        #expect(h.answered(2) == nil)
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.send(.stopToServeAlone)
        h.send(.localFlushDone(errno: 0))
        Self.expectNoticeBeforeAnswer(h, 2)
    }

    /// A shutdown with the link still up: the stop hangs up before the peer confirmed the
    /// FLUSH durable. Under `suspend-io` it fails (the node serves nothing after); under
    /// `dont-care` it is answered as acknowledged alone, the notice first. A FLUSH the peer
    /// confirmed before the stop is answered 0 either way.
    @Test func aShutdownAnswersASyncFlushByWhetherThePeerConfirmedItAndByFencing() {
        for tracks in [false, true] {
            var h = Self.syncNodeWithWriteOnDisk(tracksWithoutPeer: tracks)
            h.send(.peer(.dataAck(sequence: 1)))
            h.send(.request(id: 2, .flush))
            h.send(.localFlushDone(errno: 0))
            h.send(.peer(.durableThroughEpoch(1)))
            #expect(h.answered(2) == 0, "confirmed by the peer: answered before any stop")
            h.send(.request(id: 3, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
            h.send(.localWriteDone(sequence: 2, errno: 0))
            h.send(.peer(.dataAck(sequence: 2)))
            #expect(h.answered(3) == 0)
            h.send(.request(id: 4, .flush))
            h.send(.localFlushDone(errno: 0))
            #expect(h.answered(4) == nil)
            h.send(.stop)
            #expect(h.actions.contains(.closeLink("resource stopping")))
            h.send(.linkDown(reason: "resource stopping", refusal: nil))
            #expect(h.actions.last == .flushLocal, "fencing dont-care: \(tracks)")
            h.send(.localFlushDone(errno: 0))
            let noticed = h.actions.contains(.notice(.acknowledgedWithoutPeer))
            #expect(h.answered(4) == (tracks ? 0 : PrimaryErrno.eio) && noticed == tracks, "\(tracks): \(h.actions)")
            #expect(h.actions.last == .stopped)
        }
    }
}
