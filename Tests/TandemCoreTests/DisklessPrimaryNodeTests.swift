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

/// A node whose disk failed under write 1, connected: the record of the lack is asked for.
private func failedNode() -> PrimaryNode {
    var node = disklessConnectedNode()
    _ = disklessHandle(&node, .request(id: 1, .write(offsetBytes: 0, lengthBytes: 4096, fua: false)))
    _ = disklessHandle(&node, .localWriteDone(sequence: 1, errno: 5))
    #expect(disklessHandle(&node, .peer(.dataAck(sequence: 1))).contains(.answer(1, errno: 5)), "the write that failed here fails")
    return node
}

@Suite struct DisklessPrimaryNodeTests {
    @Test func writesAfterTheFailureWaitForTheRecordThenGoToThePeerOnly() {
        var node = failedNode()
        let asked = disklessHandle(&node, .request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        #expect(asked == [.recordLocalLacksWrites(true)], "nothing goes through the peer before the record: \(asked)")
        #expect(node.mutationPath == .awaitingRecord)
        let recorded = disklessHandle(&node, .localLacksWritesRecorded(set: true, errno: 0, reason: nil))
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
        var node = failedNode()
        _ = disklessHandle(&node, .request(id: 2, .write(offsetBytes: 8192, lengthBytes: 4096, fua: false)))
        let refused = disklessHandle(&node, .localLacksWritesRecorded(set: true, errno: 5, reason: "the metadata is internal"))
        #expect(refused.contains(.answer(2, errno: 5)), "\(refused)")
        guard case let .refused(reason) = node.mutationPath else { Issue.record("not refused: \(node.mutationPath)"); return }
        #expect(reason.contains("the metadata is internal"))
        #expect(disklessHandle(&node, .request(id: 3, .write(offsetBytes: 0, lengthBytes: 4096, fua: false))) == [.answer(3, errno: 5)])
    }

    @Test func aPeerLostFailsWhatNeededItAndRefusesReadsOfTheLackingDisk() {
        var node = failedNode()
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

    @Test func aFailedPullIsPulledAgain() {
        var node = disklessConnectedNode(volumeBytes: 256 << 10, localLacksWrites: true)
        let region = node.localDisk.pulls[0]
        _ = disklessHandle(&node, .regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes, errno: 16, local: false))
        #expect(node.localDisk.pulls.contains(region), "asked again: \(node.localDisk.pulls)")
        let failed = disklessHandle(&node, .regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes, errno: 5, local: true))
        #expect(node.diskFailed && failed.contains(.notice(.diskFailed(operation: "write", errno: 5))))
        #expect(node.mutationPath == .throughPeer, "the flag stays; writes go through the peer")
    }
}
