// PrimaryNode's wait for the peer's CaughtUp (PrimaryNode+CaughtUp): after a copy's
// SyncComplete the peer is not UpToDate, not redundant, and still lags until it says the
// SyncComplete's effect is durable — on this link or the next; a peer of protocol 6 is UpToDate
// at SyncComplete as before; a peer that restarted with nothing to re-send is Inconsistent
// until it says so too.
import TandemCore
import Testing

/// A node (4 KiB bitmap blocks, 1 MiB chunks, 64 MiB volume) and the actions of its last event.
private struct CaughtUpHarness {
    var node: PrimaryNode
    var actions: [PrimaryNodeAction] = []
    var nowNs: UInt64 = 1_000_000_000
    var acked: WriteSequence = 0

    /// A session that catches up `dirtyBlocks` from session 5 (a restart from a sealed bitmap),
    /// or another basis.
    init(mode: ReplicationAckMode = .sync, basis: SessionBasis = .catchUp([.all(of: 5)]),
         dirtyBlocks: [UInt64] = [2, 3, 1000], periodNs: UInt64? = nil) {
        let volumeBytes: UInt64 = 64 << 20
        var bitmap = DirtyBitmap(volumeSizeBytes: volumeBytes, blockBytes: 4096)
        for block in dirtyBlocks { _ = bitmap.setBlocks(BlockRun(first: block, count: 1)) }
        node = PrimaryNode(
            config: PrimaryNodeConfig(
                primary: ReplicationPrimaryConfig(mode: mode, bufferBytesMax: 16 << 20),
                volumeSizeBytes: volumeBytes, periodNs: periodNs),
            session: 77, basis: basis, trackedBitmap: bitmap)
    }

    @discardableResult
    mutating func send(_ event: PrimaryNodeEvent) -> [PrimaryNodeAction] {
        actions.removeAll()
        node.handle(event, nowNs: nowNs, into: &actions)
        return actions
    }

    var reads: [(UInt64, UInt32)] {
        actions.compactMap { if case let .readCopyChunk(offset, length) = $0 { return (offset, length) } else { return nil } }
    }

    var sentSyncComplete: Bool {
        actions.contains { if case .sendSyncComplete = $0 { return true } else { return false } }
    }

    /// The link comes up, the peer's Hello names `version`, its ReplicaHello says `copy`.
    /// Returns the copy reads it started.
    mutating func link(version: UInt16, copy: DiskState = .consistent, durable: Epoch = 0) -> [(UInt64, UInt32)] {
        if !node.enabled { send(.enable) }
        send(.peerVersion(version))
        send(.linkUp)
        var reads = self.reads
        send(.peer(.hello(durableThroughEpoch: durable, copy: copy)))
        reads += self.reads
        return reads
    }

    /// The peer acknowledges and makes durable everything sent so far.
    mutating func peerConfirmsAll() {
        let last = node.primary.lastSequence
        while acked < last {
            acked += 1
            send(.peer(.dataAck(sequence: acked)))
        }
        send(.peer(.durableThroughEpoch(node.primary.openEpoch)))
    }

    /// Reads every chunk and has the peer confirm it until the copy's SyncComplete goes;
    /// returns whether it went.
    mutating func runCopy(_ firstReads: [(UInt64, UInt32)]) -> Bool {
        var reads = firstReads
        var syncCompleteSent = false
        for _ in 0..<100 where node.copyWanted {
            for (offset, length) in reads {
                send(.copyChunkRead(offsetBytes: offset, lengthBytes: length, errno: 0))
                syncCompleteSent = syncCompleteSent || sentSyncComplete
            }
            reads = []
            peerConfirmsAll()
            syncCompleteSent = syncCompleteSent || sentSyncComplete
            reads += self.reads
            nowNs += 10_000_000
            send(.tick)
            reads += self.reads
        }
        return syncCompleteSent && !node.copyWanted
    }
}

@Suite struct PrimaryNodeCaughtUpTests {
    /// Issue 13 §3: the peer stages the catch-up; its volume keeps the base's image until the
    /// journal commits, after the SyncComplete. Before this, the node said UpToDate, redundant,
    /// lag 0 and RPO 0 at SyncComplete (this test failed at the first `peerDiskState` check).
    @Test func aStagedCatchUpIsConsistentAsOfItsBaseUntilThePeersCaughtUp() throws {
        var h = CaughtUpHarness()
        let reads = h.link(version: WireFormat.caughtUpVersion)
        #expect(h.node.peerDiskState == .consistent && h.node.peerStagesCatchUp)
        h.nowNs += 3_000_000_000
        let copied = h.runCopy(reads)
        #expect(copied, "the copy ends with its SyncComplete")
        #expect(h.node.awaitingCaughtUp)
        #expect(h.node.peerDiskState == .consistent, "staged, not committed: the base's image")
        #expect(!h.node.peerSynced, "not redundant until the peer says it holds the catch-up")
        #expect(h.node.peerConsistentAsOf?.session == 5, "the point the peer's volume holds is the catch-up's base")
        #expect(h.node.lagBytes >= 3 * 4096, "what the catch-up moved is not on the peer's volume yet")
        // (`rpo_ms` of a catch-up from a restart's bitmap counts only this run's writes: the
        // Ahead test below checks it.)
        h.send(.peerCaughtUp(session: 5))  // another session's word: stale
        #expect(h.node.peerDiskState == .consistent && h.node.awaitingCaughtUp)
        h.send(.peerCaughtUp(session: h.node.session))
        #expect(!h.node.awaitingCaughtUp && h.node.peerDiskState == .upToDate && h.node.peerSynced)
        #expect(h.node.lagBytes == 0 && h.node.rpoAgeNs(nowNs: h.nowNs) == 0)
        #expect(h.node.peerConsistentAsOf?.session == 77)
    }

    /// After Ahead: the RPO age keeps counting from the oldest write the peer lacked until the
    /// CaughtUp (before: it dropped to 0 at SyncComplete outside periodic mode).
    @Test func theRPOAgeOfACatchUpAfterAheadCountsUntilThePeersCaughtUp() {
        var h = CaughtUpHarness(basis: .continues(from: 5), dirtyBlocks: [])
        h.node = PrimaryNode(
            config: PrimaryNodeConfig(
                primary: ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 16 << 20),
                volumeSizeBytes: 64 << 20, syncTracksWithoutPeer: true),
            session: 77, basis: .continues(from: 5))
        _ = h.link(version: WireFormat.caughtUpVersion)
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.send(.request(id: 1, .write(offsetBytes: 1 << 20, lengthBytes: 4096, fua: false)))
        let written = h.actions.compactMap { if case let .writeLocal(write) = $0 { return write.sequence } else { return nil } }
        for sequence in written { h.send(.localWriteDone(sequence: sequence, errno: 0)) }
        #expect(h.node.isAhead)
        let aheadNs = h.nowNs
        h.nowNs += 10_000_000_000
        h.send(.tick)
        #expect(h.actions.contains(.dial))
        h.acked = 0
        let copied = h.runCopy(h.link(version: WireFormat.caughtUpVersion))
        #expect(copied && h.node.peerDiskState == .consistent)
        #expect(h.node.rpoAgeNs(nowNs: h.nowNs) >= h.nowNs - aheadNs, "the peer's volume still lacks the write")
        h.send(.peerCaughtUp(session: h.node.session))
        #expect(h.node.rpoAgeNs(nowNs: h.nowNs) == 0 && h.node.peerDiskState == .upToDate)
    }

    /// A peer of protocol 6 sends no CaughtUp: UpToDate at SyncComplete, as before.
    @Test func aPeerWithoutCaughtUpIsUpToDateAtSyncCompleteAsBefore() {
        var h = CaughtUpHarness()
        let reads = h.link(version: WireFormat.caughtUpVersion - 1)
        let copied = h.runCopy(reads)
        #expect(copied)
        #expect(!h.node.awaitingCaughtUp && h.node.peerDiskState == .upToDate && h.node.peerSynced)
        #expect(h.node.lagBytes == 0 && h.node.rpoAgeNs(nowNs: h.nowNs) == 0)
    }

    /// A catch-up in place (the peer's ReplicaHello said `inconsistent`): its record says
    /// `synced` only once the SyncComplete is stored there.
    @Test func anInPlaceCopyIsInconsistentUntilThePeersCaughtUp() {
        var h = CaughtUpHarness(basis: .fullCopy)
        let reads = h.link(version: WireFormat.caughtUpVersion, copy: .inconsistent)
        let copied = h.runCopy(reads)
        #expect(copied)
        #expect(h.node.peerDiskState == .inconsistent && !h.node.peerSynced)
        h.send(.peerCaughtUp(session: h.node.session))
        #expect(h.node.peerDiskState == .upToDate && h.node.peerSynced)
    }

    /// Issue 13 §3 item 2, outside periodic mode: the link is lost after the SyncComplete and
    /// before the CaughtUp. The peer's word is still owed: away it is Outdated (a consistent
    /// image that lacks the catch-up), and on the next link it is not UpToDate before its
    /// CaughtUp either. Before this, the new link's SyncComplete alone made it UpToDate.
    @Test func aLinkLostBeforeTheCaughtUpLeavesThePeerBehindUntilItSaysSo() {
        var h = CaughtUpHarness()
        let copied = h.runCopy(h.link(version: WireFormat.caughtUpVersion))
        #expect(copied)
        h.send(.linkDown(reason: "cut", refusal: nil))
        #expect(h.node.awaitingCaughtUp && h.node.peerDiskState == .outdated && !h.node.peerSynced)
        h.nowNs += 1_000_000_000
        h.send(.tick)
        #expect(h.actions.contains(.dial))
        _ = h.link(version: WireFormat.caughtUpVersion, copy: .consistent, durable: h.node.primary.peerDurableEpoch)
        #expect(h.sentSyncComplete, "the next link asks again")
        #expect(h.node.peerDiskState == .consistent && h.node.awaitingCaughtUp && h.node.lagBytes > 0)
        h.send(.peerCaughtUp(session: h.node.session))
        #expect(h.node.peerDiskState == .upToDate && h.node.lagBytes == 0)
    }

    /// The same, after the peer crashed before its commit: it comes back `inconsistent` (the
    /// restart rule) and is Inconsistent, not UpToDate, until it says it caught up.
    @Test func aPeerThatCrashedBeforeItsCommitIsNotUpToDateOnTheNextLink() {
        var h = CaughtUpHarness()
        let copied = h.runCopy(h.link(version: WireFormat.caughtUpVersion))
        #expect(copied)
        h.send(.linkDown(reason: "peer killed", refusal: nil))
        h.nowNs += 1_000_000_000
        h.send(.tick)
        _ = h.link(version: WireFormat.caughtUpVersion, copy: .inconsistent, durable: h.node.primary.peerDurableEpoch)
        #expect(h.node.peerDiskState == .inconsistent && !h.node.peerSynced)
        h.send(.peerCaughtUp(session: h.node.session))
        #expect(h.node.peerDiskState == .upToDate && h.node.peerSynced)
    }

    /// Item 3: a secondary restarted with nothing to re-send says `inconsistent` until it has
    /// processed the ResendComplete; the primary said UpToDate at once (this test failed on the
    /// first check). Now: Inconsistent until its CaughtUp, or a DurableAck past the epoch it
    /// named.
    @Test func aPeerRestartedWithNothingToResendIsInconsistentUntilItSaysOtherwise() {
        var h = CaughtUpHarness(basis: .continues(from: 5), dirtyBlocks: [])
        _ = h.link(version: WireFormat.caughtUpVersion, copy: .inconsistent)
        #expect(h.node.peerDiskState == .inconsistent && h.node.peerConsistentAsOf == nil)
        #expect(h.sentSyncComplete, "sync: the SyncComplete follows the ResendComplete at once")
        h.send(.peerCaughtUp(session: h.node.session))
        #expect(h.node.peerDiskState == .upToDate)

        // Without a CaughtUp (it may be owed to a later SyncComplete), a later epoch durable.
        var later = CaughtUpHarness(basis: .continues(from: 5), dirtyBlocks: [])
        _ = later.link(version: WireFormat.caughtUpVersion, copy: .inconsistent)
        later.send(.request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        let written = later.actions.compactMap { if case let .writeLocal(write) = $0 { return write.sequence } else { return nil } }
        for sequence in written { later.send(.localWriteDone(sequence: sequence, errno: 0)) }
        #expect(later.node.peerDiskState == .inconsistent)
        later.peerConfirmsAll()
        #expect(later.node.peerDiskState == .upToDate,
                "its DurableAck followed the ResendComplete (durable \(later.node.primary.peerDurableEpoch), open \(later.node.primary.openEpoch))")

        // A peer of protocol 6: as before (UpToDate at once; docs/replication.md, Known gaps).
        var old = CaughtUpHarness(basis: .continues(from: 5), dirtyBlocks: [])
        _ = old.link(version: WireFormat.caughtUpVersion - 1, copy: .inconsistent)
        #expect(old.node.peerDiskState == .upToDate)
    }

    /// Periodic mode, item 2: a cycle whose link is lost after the SyncComplete completes only
    /// on the CaughtUp of the next link (before: at that link's SyncComplete, without a word
    /// from the peer).
    @Test func aPeriodicCycleWhoseLinkIsLostBeforeTheCaughtUpWaitsForItOnTheNextLink() throws {
        var h = CaughtUpHarness(mode: .async, periodNs: 60_000_000_000)
        let copied = h.runCopy(h.link(version: WireFormat.caughtUpVersion))
        #expect(copied)
        #expect(h.node.periodic.running && h.node.awaitingCaughtUp)
        h.send(.linkDown(reason: "cut", refusal: nil))
        h.nowNs += 1_000_000_000
        h.send(.tick)
        #expect(h.actions.contains(.dial), "the cycle is still running: it redials")
        _ = h.link(version: WireFormat.caughtUpVersion, copy: .consistent, durable: h.node.primary.peerDurableEpoch)
        h.peerConfirmsAll()
        #expect(h.sentSyncComplete || h.node.awaitingCaughtUp)
        #expect(h.node.periodic.running && h.node.periodic.completed == 0, "no word from the peer yet")
        #expect(h.node.lagBytes >= 3 * 4096)
        h.send(.peerCaughtUp(session: h.node.session))
        #expect(h.node.periodic.completed == 1 && h.node.isAhead)
    }
}
