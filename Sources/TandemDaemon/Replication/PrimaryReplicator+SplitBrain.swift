// PrimaryReplicator's side of a split-brain resync by the union of both bitmaps (the
// survivor's session; Resource+SplitBrainResync describes the whole). The session's copy
// starts restricted to the survivor's changes; the loser's BitmapChunks and BitmapDone, sent
// before its ReplicaHello, add its changes (PeerBitmapReceiver checks them: garbage drops the
// link and changes nothing); a loser that cannot send them (an older build, no bitmap, another
// parting generation) makes the copy cover every block before it starts.
import TandemControl
import TandemCore

/// A copy's progress as far as a checkpoint of what is left cares.
struct CopyProgress: Equatable {
    var copiedBytes: UInt64
    var unconfirmedBytes: UInt64
    /// A write marked in the copy (the peer not ready yet) moves neither figure above.
    var outOfSyncBytes: UInt64
}

extension PrimaryReplicator {
    /// The current copy's bytes so far (a split-brain resync's `moved_bytes`).
    var copiedBytes: UInt64 { node.copiedBytes }

    /// What the peer may still lack of the copy (PrimaryNode.copyLeftWithHeld), and what
    /// tells cheaply whether it may have changed (the copy's bytes, the unconfirmed bytes).
    var copyLeftWithHeld: DirtyBitmap { node.copyLeftWithHeld }
    var copyProgress: CopyProgress {
        CopyProgress(copiedBytes: node.copiedBytes, unconfirmedBytes: node.primary.unconfirmedBytes,
                     outOfSyncBytes: node.outOfSyncBytes)
    }

    /// The session keeps an activity log: a crash's writes are named by its extents.
    var hasActivityLog: Bool { node.config.activityLog != nil }

    /// At the session's start (before `enable`): copy `own` only until the peer's bitmap comes.
    /// `comparePeerSet`: the peer is a returned primary (its set is compared by digest).
    func beginSplitBrainResync(own: DirtyBitmap, partingGeneration: UInt64, comparePeerSet: Bool = false) {
        node.restrictCopy(to: own)
        comparesPeerSet = comparePeerSet
        survivorChanges = own
        survivorPartingGeneration = partingGeneration
        awaitsPeerBitmap = true
    }

    /// A survivor restarted (or re-enabled) after a clean stop of its union resync: the copy
    /// covers what was left of the union, and the peer is not asked for its bitmap again (its
    /// changes are in that set already). `compareSet`: the peer is a returned primary, and
    /// these are the regions of its set the union compared: those still owed are compared again.
    func resumeSplitBrainResync(remaining: DirtyBitmap, compareSet: DirtyBitmap? = nil) {
        node.restrictCopy(to: remaining)
        if let compareSet { node.resumeReturnedPrimaryCompare(compareSet) }
        awaitsPeerBitmap = false
    }

    /// The accepted peer's Hello: can it send a bitmap that covers the divergence?
    func checkPeerCanUnite(_ hello: WireHello) {
        peerBitmap = nil
        peerBitmapBytes = 0
        guard awaitsPeerBitmap else { return }
        let plan = SplitBrainResync.plan(
            survivor: PartedChanges(partingGeneration: survivorPartingGeneration, bitmap: survivorChanges),
            peerHelloVersion: hello.protocolVersion, victimPartingGeneration: hello.node?.bitmap ?? 0)
        if case .fullCopy(let reason) = plan { widenToFullCopy(reason) }
    }

    /// A BitmapChunk or BitmapDone. Only on a link whose Hello asked for the peer's bitmap,
    /// before the peer's BitmapDone and ReplicaHello: any other is a protocol violation (a
    /// chunk outside a split-brain resolve). Asked, but the copy was widened to every block
    /// meanwhile (the peer's Hello showed it cannot unite): ignored, the copy covers it.
    func receivedPeerBitmap(_ message: WireMessage, link: PeerLink) {
        guard peerBitmapAsked else {
            peerBitmap = nil
            return link.closeForViolation("protocol violation: a \(message.type) outside a split-brain resolve "
                + "(this node asked for no bitmap on this link, or the peer's BitmapDone or ReplicaHello had ended it)")
        }
        if case .bitmapDone = message { peerBitmapAsked = false }
        guard awaitsPeerBitmap else { return }
        // Bounded by this node's own bitmap: the peer's block size fixes what the receiver allocates.
        let localBlocks = (volume.sizeBytes + node.config.bitmapBlockBytes - 1) / node.config.bitmapBlockBytes
        var receiver = peerBitmap ?? PeerBitmapReceiver(volumeSizeBytes: volume.sizeBytes,
                                                        blocksMax: PeerBitmapReceiver.bound(localBlocks: localBlocks))
        do throws(PeerBitmapError) {
            switch message {
            case .bitmapChunk(let chunk):
                try receiver.receive(chunk)
                peerBitmapBytes += UInt64(WireEncoder.encodedBytes(message))
                peerBitmap = receiver
            case .bitmapDone(let total):
                let victim = try receiver.done(setBlocks: total)
                peerBitmapBytes += UInt64(WireEncoder.encodedBytes(message))
                peerBitmap = nil
                awaitsPeerBitmap = false
                let set = node.unitePeerBitmap(victim, survivorChanges: survivorChanges ?? victim,
                                               compareVictim: comparesPeerSet)
                onSplitBrainResync?(.union, set, peerBitmapBytes)
            default:
                return
            }
        } catch {
            peerBitmap = nil
            link.closeForViolation("protocol violation: \(error)")
        }
    }

    /// The loser's ReplicaHello: its bitmap should have come first. It did not (an older build
    /// that ignores the flag): copy every block, before the copy can start.
    func peerSentReplicaHello() {
        peerBitmapAsked = false
        guard awaitsPeerBitmap else { return }
        widenToFullCopy("the peer sent no bitmap before its ReplicaHello: the whole volume is copied")
    }

    /// The link closed: a loser that refused to send its bitmap (`unrelated-data`) means a
    /// full copy; any other end keeps waiting for the next link's bitmap.
    func peerBitmapLinkClosed(refusal: WireRefusal?, reason: String) {
        peerBitmap = nil
        peerBitmapBytes = 0
        peerBitmapAsked = false
        guard awaitsPeerBitmap, refusal == .unrelatedData else { return }
        widenToFullCopy(reason)
    }

    private func widenToFullCopy(_ reason: String) {
        awaitsPeerBitmap = false
        peerBitmap = nil
        if node.copyNotStarted { node.widenCopyToEveryBlock() }
        logger.notice("split-brain resync copies the whole volume", metadata: ["reason": "\(reason)"])
        onSplitBrainResync?(.fullCopy(reason: reason), nil, 0)
    }
}
