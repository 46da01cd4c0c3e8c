// PrimaryNode's diskless mode (PrimaryNode+Diskless): a primary whose disk failed sends its
// writes to the UpToDate peer only, once the record says the disk lacks them; a peer lost
// fails what needed it; a node started with the record's flag pulls the whole volume from the
// peer before its disk serves again, and a write never lands under an older pulled copy.
import TandemCore
import Testing

private func writesLocally(_ actions: [PrimaryNodeAction]) -> Bool {
    actions.contains { if case .writeLocal = $0 { return true } else { return false } }
}

private func pulls(_ actions: [PrimaryNodeAction]) -> [PulledRegion] {
    actions.compactMap { if case let .pullRegion(offset, length) = $0 { return PulledRegion(offsetBytes: offset, lengthBytes: length) } else { return nil } }
}

private func answered(_ actions: [PrimaryNodeAction], _ request: RequestID) -> Int32? {
    for action in actions { if case let .answer(id, errno) = action, id == request { return errno } }
    return nil
}

@Suite struct DisklessPrimaryNodeTests {
    @Test func writesAfterTheFailureWaitForTheRecordThenGoToThePeerOnly() {
        var node = disklessFailedNode()
        let asked = disklessHandle(&node, .request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        #expect(asked.isEmpty, "nothing goes through the peer before the record (asked for already): \(asked)")
        #expect(node.mutationPath == .awaitingRecord)
        let recorded = disklessHandle(&node, .localLacksWritesRecorded(set: true, errno: 0, reason: nil))
        #expect(answered(recorded, 1) == 0, "the failed write the peer applied succeeds once recorded: \(recorded)")
        #expect(!writesLocally(recorded), "never written to the failed disk: \(recorded)")
        #expect(recorded.contains { if case .holdLocalWrite = $0 { return true } else { return false } })
        #expect(!recorded.contains(.answer(2, errno: 0)), "answered only once the peer applied it")
        #expect(disklessHandle(&node, .peer(.dataAck(sequence: 2))).contains(.answer(2, errno: 0)))
        #expect(node.mutationPath == .throughPeer && node.servesFromPeer)
        #expect(node.localDisk.lacking?.anySet(offsetBytes: 8192, lengthBytes: 4096) == true, "its region is lacking")
        #expect(node.localDisk.lacking?.anySet(offsetBytes: 0, lengthBytes: 4096) == true, "so is the failed write's")
        // A flush is answered once the peer made it durable, not with the failed disk's EIO.
        let flush = disklessHandle(&node, .request(id: 3, .flush))
        #expect(!flush.contains(.flushLocal) && !flush.contains(.answer(3, errno: 5)), "\(flush)")
        let durable = disklessHandle(&node, .peer(.durableThroughEpoch(node.primary.openEpoch)))
        #expect(durable.contains(.answer(3, errno: 0)), "\(durable)")
        #expect(node.routeRead(offsetBytes: 8192, lengthBytes: 4096) == .peer)
    }

    @Test func aRecordThatCannotBeWrittenKeepsRefusingWithEIO() {
        var node = disklessFailedNode()
        _ = disklessHandle(&node, .request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        let refused = disklessHandle(&node, .localLacksWritesRecorded(set: true, errno: 5, reason: "the metadata is internal"))
        #expect(refused.contains(.answer(2, errno: 5)), "\(refused)")
        #expect(answered(refused, 1) == 5, "no record of the lack: the failed write fails after all: \(refused)")
        guard case let .refused(reason) = node.mutationPath else { Issue.record("not refused: \(node.mutationPath)"); return }
        #expect(reason.contains("the metadata is internal"))
        #expect(disklessHandle(&node, .request(id: 3, .write(offsetBytes: 0, lengthBytes: 4096, fua: false))) == [.answer(3, errno: 5)])
    }

    @Test func aPeerLostFailsWhatNeededItAndRefusesReadsOfTheLackingDisk() {
        var node = disklessFailedNode()
        _ = disklessHandle(&node, .request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        _ = disklessHandle(&node, .localLacksWritesRecorded(set: true, errno: 0, reason: nil))
        let down = disklessHandle(&node, .linkDown(reason: "cut", refusal: nil))
        #expect(down.contains(.answer(2, errno: 5)), "an unconfirmed write through the peer fails at once: \(down)")
        #expect(node.routeRead(offsetBytes: 8192, lengthBytes: 4096) == .refused, "this disk lacks it")
        #expect(node.routeRead(offsetBytes: 1 << 20, lengthBytes: 4096) == .refused, "and is failed")
        #expect(disklessHandle(&node, .request(id: 3, .write(offsetBytes: 0, lengthBytes: 4096, fua: false))) == [.answer(3, errno: 5)])
        // The peer back: the held write is re-sent and confirmed, and not answered twice.
        _ = disklessHandle(&node, .linkUp)
        let back = disklessHandle(&node, .peer(.hello(durableThroughEpoch: 0, copy: .upToDate)))
        let acked = disklessHandle(&node, .peer(.dataAck(sequence: 2)))
        #expect(!(back + acked).contains(.answer(2, errno: 0)), "answered once only: \(back + acked)")
        #expect(node.mutationPath == .throughPeer)
    }

    /// Found by the node simulator (seed 2 of the diskless class): the peer applied write 2 and
    /// lost power before its flush; this disk failed. The write is in no durable copy, only in
    /// this node's retained payload, which a stop drops, and the next start takes the peer as
    /// in sync. `disable` has the peer drain it first (PrimaryNode+PeerDrain), and is refused
    /// while the peer is not connected.
    @Test func disableDrainsThePeerFirstAndIsRefusedWhileThePeerIsAway() {
        var node = disklessWrittenThroughPeer()
        #expect(node.acknowledgedOnlyInMemoryBytes == 2 * 4096, "writes 1 and 2, applied, not durable on the peer")
        func facts(_ node: PrimaryNode) -> ResourceRoleFacts {
            ResourceRoleFacts(name: "r0", role: .primary, enabled: true, transitioning: false,
                              acknowledgedOnlyInMemoryBytes: node.acknowledgedOnlyInMemoryBytes)
        }
        #expect(ResourceRoles.disable(facts(node), peerConnected: node.isPeerReady) == .success(.drainPeerThenStop))
        // The peer lost: the writes stay unconfirmed, and the disable is refused.
        _ = disklessHandle(&node, .linkDown(reason: "the peer lost power", refusal: nil))
        guard case let .failure(refusal) = ResourceRoles.disable(facts(node), peerConnected: node.isPeerReady) else {
            Issue.record("a disable without the peer went ahead")
            return
        }
        #expect(refusal.code == .wrongState && refusal.message.contains("8192 bytes")
            && refusal.message.contains("the peer is not connected"), "\(refusal)")
        // Back, the writes re-sent and durable there: the disable stops at once.
        _ = disklessHandle(&node, .linkUp)
        _ = disklessHandle(&node, .peer(.hello(durableThroughEpoch: 0, copy: .upToDate)))
        _ = disklessHandle(&node, .peer(.durableThroughEpoch(node.primary.openEpoch)))
        #expect(node.acknowledgedOnlyInMemoryBytes == 0)
        #expect(ResourceRoles.disable(facts(node), peerConnected: node.isPeerReady) == .success(.stopNow))
        // A primary whose own disk works holds its writes there: never refused for them.
        var healthy = disklessConnectedNode()
        _ = disklessHandle(&healthy, .request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        _ = disklessHandle(&healthy, .localWriteDone(sequence: 1, errno: 0))
        _ = disklessHandle(&healthy, .peer(.dataAck(sequence: 1)))
        #expect(healthy.primary.lagBytes > 0 && healthy.acknowledgedOnlyInMemoryBytes == 0)
    }

    @Test func aWriteInFlightWhenTheDiskFailsFailsIfThePeerGoesAwayBeforeApplyingIt() {
        var node = disklessConnectedNode()
        _ = disklessHandle(&node, .request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        _ = disklessHandle(&node, .localWriteDone(sequence: 1, errno: 5))
        let down = disklessHandle(&node, .linkDown(reason: "cut", refusal: nil))
        #expect(answered(down, 1) == 5, "neither disk confirmed it: \(down)")
        #expect(node.localDisk.lacking?.anySet(offsetBytes: 0, lengthBytes: 4096) == true)
    }

    @Test func aWriteInFlightWhenTheDiskFailsFailsWithoutAPeerThatTakesWrites() {
        // Async: the peer is not a copy this node may count on for the write (no diskless mode).
        var config = PrimaryNodeConfig(primary: ReplicationPrimaryConfig(mode: .async, bufferBytesMax: 8 << 20),
                                       volumeSizeBytes: 64 << 20)
        config.keepsLackingRegions = false
        var node = PrimaryNode(config: config, session: 77, basis: .assumeInSync)
        var actions: [PrimaryNodeAction] = []
        for event: PrimaryNodeEvent in [.peerVersion(WireFormat.readVersion), .enable, .linkUp,
                                        .peer(.hello(durableThroughEpoch: 0, copy: .upToDate)),
                                        .request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)),
                                        .localWriteDone(sequence: 1, errno: 5), .peer(.dataAck(sequence: 1))] {
            node.handle(event, nowNs: 1_000_000_000, into: &actions)
        }
        #expect(answered(actions, 1) == 5, "\(actions)")
    }

    @Test func aLongReadOfAFailedDiskGoesToThePeerInPartsBeforeTheRecord() {
        var node = disklessConnectedNode()
        _ = disklessHandle(&node, .request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
        _ = disklessHandle(&node, .localWriteDone(sequence: 1, errno: 5))
        #expect(node.diskFailed && !node.localLacksWrites)
        #expect(node.routeRead(offsetBytes: 8 << 20, lengthBytes: 4 << 20) == .peer, "not to the failed disk's error")
        #expect(node.routeRead(offsetBytes: 8 << 20, lengthBytes: 4 << 10) == .peer)
    }

    @Test func aFailedWriteStillWaitingForTheRecordFailsAtAStop() {
        var node = disklessFailedNode()
        var stopped = disklessHandle(&node, .stop)
        stopped += disklessHandle(&node, .linkDown(reason: "resource stopping", refusal: nil))
        #expect(answered(stopped, 1) == 5 && stopped.contains(.stopped), "never recorded: \(stopped)")
    }

    @Test func aNodeStartedLackingWritesPullsTheVolumeThenServesLocally() {
        var node = disklessConnectedNode(volumeBytes: 1 << 20, localLacksWrites: true)
        #expect(node.localLacksWrites && node.localDisk.wholeVolume)
        #expect(node.localDisk.pulls.count == LocalDiskResync.pullsInFlightMax, "\(node.localDisk.pulls)")
        #expect(node.routeRead(offsetBytes: 0, lengthBytes: 4096) == .peer, "this disk lacks it")
        // A write overlapping a pull in flight waits for it; one elsewhere goes to both disks.
        let first = node.localDisk.pulls[0]
        let waiting = disklessHandle(&node, .request(id: 1, .write(offsetBytes: first.offsetBytes, lengthBytes: 4096, fua: false)))
        #expect(!writesLocally(waiting), "an older pulled copy must not land over it: \(waiting)")
        var actions: [PrimaryNodeAction] = []
        var pulled = 0
        while let region = node.localDisk.pulls.first {
            actions = disklessHandle(&node, .regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes, errno: 0, local: false))
            pulled += 1
            if writesLocally(actions) {
                #expect(node.localDisk.pulls.allSatisfy { $0.offsetBytes != first.offsetBytes })
                _ = disklessHandle(&node, .localWriteDone(sequence: 1, errno: 0))
                actions += disklessHandle(&node, .peer(.dataAck(sequence: 1)))
            }
            if actions.contains(.recordLocalLacksWrites(false)) { break }
        }
        #expect(pulled == 8, "1 MiB in 128 KiB pulls")
        #expect(actions.contains(.recordLocalLacksWrites(false)) || node.localDisk.lackingBytes == 0)
        let done = disklessHandle(&node, .localLacksWritesRecorded(set: false, errno: 0, reason: nil))
        #expect(done.contains(.notice(.localDisk(.resynced(pulledBytes: 1 << 20)))), "\(done)")
        #expect(node.mutationPath == .local && !node.localLacksWrites)
        #expect(node.routeRead(offsetBytes: 0, lengthBytes: 4096) == .local)
    }

    /// Found by the node simulator (seed 72 of the diskless class, with production's disable
    /// rule alone): a write admitted while this disk is resynced goes to both disks; the peer
    /// went away before applying it, so it was answered EIO, but it stays in the stream (it may
    /// already be on either disk) and is re-sent at the reconnect, and this disk's write lands
    /// when it lands. A SyncComplete sent before it is on both disks made both copies say
    /// UpToDate while they differed. It waits until the stream is done with every such write.
    @Test func aWriteAnsweredEIOAtAPeerLossIsOnBothDisksBeforeThePeerIsToldItIsInSync() {
        var node = disklessConnectedNode(volumeBytes: 1 << 20, localLacksWrites: true)
        let admitted = disklessHandle(&node, .request(id: 1, .write(offsetBytes: 768 << 10, lengthBytes: 4096, fua: false)))
        #expect(writesLocally(admitted), "a write elsewhere than the pulls goes to both disks: \(admitted)")
        let down = disklessHandle(&node, .linkDown(reason: "cut", refusal: nil))
        #expect(answered(down, 1) == 5, "the peer it needed went away: \(down)")
        _ = disklessHandle(&node, .linkUp)
        let back = disklessHandle(&node, .peer(.hello(durableThroughEpoch: 0, copy: .upToDate)))
        #expect(back.contains { if case let .send(.data(data)) = $0 { return data.sequence == 1 } else { return false } },
                "re-sent: \(back)")
        func syncCompleted(_ actions: [PrimaryNodeAction]) -> Bool {
            actions.contains { if case .sendSyncComplete = $0 { return true } else { return false } }
        }
        #expect(!syncCompleted(back), "not in sync while the write it re-sends is on neither disk for sure: \(back)")
        let local = disklessHandle(&node, .localWriteDone(sequence: 1, errno: 0))
        #expect(!syncCompleted(local), "on this disk, not yet on the peer's: \(local)")
        let applied = disklessHandle(&node, .peer(.dataAck(sequence: 1)))
        #expect(syncCompleted(applied), "on both disks: the peer holds what this one does: \(applied)")
        #expect(answered(local + applied, 1) == nil, "answered once only")
    }

    /// Found by the node simulator (seed 89 of the diskless class, with production's disable
    /// rule alone): at a link's loss the driver gives the pulls back before it reports the loss,
    /// and a pull asked for without a link fails at once. The node, still taking the link for
    /// up, asked again in the same event, which failed again: the event loop never ended.
    @Test func aPullGivenBackAtALinksLossIsNotAskedAgainBeforeTheLossIsKnown() {
        var node = disklessConnectedNode(volumeBytes: 1 << 20, localLacksWrites: true)
        var asked: [PulledRegion] = []
        for region in node.localDisk.pulls {
            let given = disklessHandle(&node, .regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes,
                                                            errno: 104, local: false))
            asked += pulls(given)
        }
        #expect(asked.isEmpty, "a driver without a link fails these at once, and so on without end: \(asked)")
        let down = disklessHandle(&node, .linkDown(reason: "cut", refusal: nil))
        #expect(pulls(down).isEmpty && node.localDisk.pulls.isEmpty, "no link, no pull: \(down)")
        _ = disklessHandle(&node, .linkUp)
        let back = disklessHandle(&node, .peer(.hello(durableThroughEpoch: 0, copy: .upToDate)))
        #expect(pulls(back).count == LocalDiskResync.pullsInFlightMax, "pulled again on the next link: \(back)")
    }

    @Test func aFailedPullIsPulledAgain() {
        var node = disklessConnectedNode(volumeBytes: 256 << 10, localLacksWrites: true)
        let region = node.localDisk.pulls[0]
        let busy = disklessHandle(&node, .regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes, errno: 16, local: false))
        #expect(pulls(busy).isEmpty, "not in the same event: \(busy)")
        #expect(pulls(disklessHandle(&node, .tick)) == [region], "asked again at the next one: \(node.localDisk.pulls)")
        let failed = disklessHandle(&node, .regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes, errno: 5, local: true))
        #expect(node.diskFailed && failed.contains(.notice(.diskFailed(operation: "write", errno: 5))))
        #expect(node.mutationPath == .throughPeer, "the flag stays; writes go through the peer")
    }
}
