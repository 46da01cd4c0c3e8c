// PrimaryReplicator's peer link: dialling when the node says so (the address is looked up
// at every dial, off the loop thread), asking the node about the Hello, feeding the link's
// life and the secondary's messages to the node, and encoding the node's messages onto the
// link (a Data frame's payload straight from the retained store, LZ4-compressed into scratch
// when configured).
import Glibc
import TandemControl
import TandemCore
import TandemIO

extension PrimaryReplicator: PeerLinkDelegate {
    func dial() {
        guard let peer = spec.peer else { return feed(.dialFailed("no peer configured")) }
        resolver.resolve(peer.address) { [weak self] result in self?.dial(peer, result) }
    }

    private func dial(_ peer: PeerSpec, _ addresses: Result<[SocketAddress], AddressLookupError>) {
        // Disabled or stopped while the name was looked up: the node forgot this dial.
        guard node.isDialing, link == nil else { return }
        do {
            let connection = try context.clientConnection(peerName: peer.name)
            let socket = try PeerSocket(loop: context.loop, connectTo: addresses.get())
            let hello = ownHello
            peerBitmapAsked = hello.node?.flags.contains(.splitBrainResync) == true  // PrimaryReplicator+SplitBrain
            link = PeerLink(socket: socket, connection: connection, hello: hello, delegate: self,
                            counters: context.counters, liveness: context.liveness, logger: logger)
        } catch let error as ControlError {
            noteFailure(error.message)
            feed(.dialFailed(error.message))
        } catch {
            noteFailure("\(error)")
            feed(.dialFailed("\(error)"))
        }
    }

    private var ownHello: WireHello {
        let (generations, promotion) = helloGenerations?() ?? (WireNodeGenerations(current: 0, bitmap: 0), 0)
        let version = helloWithTail ? WireFormat.helloVersion : WireFormat.catchUpVersion
        return WireHello(protocolVersion: version, role: .primary, nodeName: context.config.nodeName,
                         resourceName: resource, volumeSizeBytes: volume.sizeBytes,
                         generations: node.helloBasis.wireGenerations(session: node.helloSession),
                         promotionNumber: helloWithTail ? promotion : 0, node: helloWithTail ? generations : nil)
    }

    func noteFailure(_ reason: String, closedBetweenCycles: Bool = false) {
        // Periodic mode closes the link after each cycle by design: not an error, no alert.
        if node.isBetweenCycles || closedBetweenCycles {
            logger.info("peer link closed until the next periodic cycle", metadata: ["reason": "\(reason)"])
            return
        }
        if reason != lastError {
            logger.warning("peer link", metadata: ["reason": "\(reason)"])
            context.events.publish(resource: resource, "peer-error", ["message": .string(reason)])
        }
        setLastError(reason)
    }

    /// A connection refused here (the resource is primary on this node).
    func noteRefusal(_ reason: String) { noteFailure(reason) }

    func peerLink(_ link: PeerLink, validate hello: WireHello) -> PeerLinkVerdict {
        helloWithTail = hello.protocolVersion >= WireFormat.generationsVersion
        let outcome = hello.role == .primary && judgePrimaryHello != nil
            ? judgePrimaryHello!(hello)
            : node.judgePeerHello(hello, own: OwnHelloFacts(resourceName: resource, volumeSizeBytes: volume.sizeBytes,
                                                            role: .primary, generations: .none, group: spec.group))
        onPrimaryOutcome?(outcome, hello.nodeName)
        switch outcome {
        case .accept:
            peerHelloVersion = hello.protocolVersion
            checkPeerCanUnite(hello)
            return .accept(delegate: self, hello: nil)
        case let .refuse(code, reason): return .refuse(code, reason)
        case let .splitBrain(report): return .refuse(.splitBrain, report.reason)
        case let .demotedByPromotion(_, reason): return .refuse(.roleConflict, "this node stops accepting writes: \(reason)")
        case .yieldToPromoted:
            return .refuse(.roleConflict, "this node returned after the peer's promotion: it becomes the peer's secondary")
        case .resyncReturnedPrimary:
            return .refuse(.roleConflict, "the peer returned after this node's promotion: it becomes this node's secondary")
        }
    }

    /// A frame whose header claims a promotion after the peer's Hello: a primary promoted
    /// while this link lived is there, so this one stops accepting writes (the resource
    /// carries it out, as for a Hello: `demoted-by-promotion`); the link is dropped.
    func peerLink(_ link: PeerLink, promotionRose framePromotion: UInt64, helloPromotion: UInt64) -> FramePromotionVerdict {
        let own = helloGenerations?().promotion ?? 0
        let verdict = FramePromotionCheck.judge(framePromotion: framePromotion, helloPromotion: helloPromotion,
                                                ownRole: .primary, ownPromotion: own)
        if case .demoteByPromotion(let reason) = verdict {
            onPrimaryOutcome?(.demotedByPromotion(peerPromotion: framePromotion, reason: reason), link.peerNodeName)
        }
        return verdict
    }

    func peerLinkEstablished(_ link: PeerLink) {
        guard link === self.link else { return }
        setLastError(nil)
        barrierEpoch = 0
        barrierCount = 0
        link.channel.sendObserver = self  // the copy trace (ciphertextSent)
        feed(.peerVersion(peerHelloVersion))
        feed(.linkUp)
    }

    func peerLink(_ link: PeerLink, received message: WireMessage) {
        guard link === self.link else { return }
        switch message {
        case .bitmapChunk, .bitmapDone:
            return receivedPeerBitmap(message, link: link)
        case .replicaHello(let hello):
            peerSentReplicaHello()
            guard let copy = DiskState(wire: hello.diskState) else {
                return link.closeForViolation("protocol violation: ReplicaHello with disk state code \(hello.diskState.rawValue)")
            }
            feed(.peer(.hello(durableThroughEpoch: hello.durableThroughEpoch, copy: copy)))
        case .durableAck(let epoch):
            feed(.peer(.durableThroughEpoch(epoch)))
        case .dataAck(_, let sequence):
            if trace.enabled, let stamps = trace.existingStamps(sequence), stamps.pointee.link.isSet {
                trace.record(.write, .peer, from: stamps.pointee.link, to: context.loop.traceStamp())
                stamps.pointee.link = .none  // a re-acknowledgement counts once
            }
            if trace.enabled, let slot = retained.copySlot(sequence: sequence) {
                trace.copyAcknowledged(slot: slot, at: context.loop.traceStamp())
            }
            feed(.peer(.dataAck(sequence: sequence)))
        case .ping(let nonce):
            link.send(.pong(nonce: nonce))
        case .pong:
            break
        case .failoverRequest:
            context.events.publish(resource: resource, "failover-requested", ["peer": .string(link.peerNodeName)])
            onFailoverRequested?()
        case let .digests(offset, length, digest):
            feed(.peerDigest(offsetBytes: offset, lengthBytes: length, digest: digest))
        case .resize(let answer):
            receivedResize(answer, link: link)
        case .readReply(let reply):
            receivedReadReply(reply, link: link)
        case .caughtUp(let session):
            feed(.peerCaughtUp(session: session))
        case .catchUpInPlace(let session):
            // The peer's staged catch-up goes on in place: Inconsistent from now on.
            node.peerCatchUpWentInPlace(session: session)
            publishPeerDiskState()
        default:
            link.closeForViolation("protocol violation: a secondary sent \(message.type)")
        }
    }

    func peerLinkClosed(_ link: PeerLink, reason: String) {
        guard link === self.link else { return }
        self.link = nil
        if trace.enabled { trace.copyLinkLost(at: context.loop.traceStamp()) }
        dropWaitingFrames()
        readRemoteReadsLocally()
        if let failure = link.failure { counters.count(failure) }
        let byDesign = linkClosedBetweenCycles == ObjectIdentifier(link)
        linkClosedBetweenCycles = nil
        noteFailure(reason, closedBetweenCycles: byDesign)
        failPendingResize("the link to the peer closed before it answered: \(reason)")
        if helloWithTail && link.sentOwnHello && !link.peerAnsweredHello {
            // Perhaps a peer of an older build that cannot read the tail: the next dial
            // sends a version-3 Hello; the peer's own Hello then says which it speaks.
            helloWithTail = false
            logger.notice("the peer closed without answering the Hello: the next one is version 3",
                          metadata: ["reason": "\(reason)"])
        }
        if let refusal = link.peerRefusal, let outcome = PeerHelloCheck.refusedByPeer(refusal, reason: reason) {
            onPrimaryOutcome?(outcome, link.peerNodeName)
        }
        peerBitmapLinkClosed(refusal: link.peerRefusal, reason: reason)
        feed(.linkDown(reason: reason, refusal: link.peerRefusal))
    }

    /// Encodes one message of the node onto the link.
    func send(_ message: PrimaryMessage) {
        guard let link, link.isEstablished else { return }
        switch message {
        case .data(let data): sendData(data, on: link)
        case .epochBarrier(let epoch):
            let count = barrierEpoch == epoch ? barrierCount : 0
            if peerHelloVersion >= WireFormat.wallClockVersion {
                // Stamped here, as the epoch closes: every write admitted before now is in it or earlier.
                link.send(.epochTime(epoch: epoch, wallClockNs: WallClock.nowUnixNs()))
            }
            link.send(.epochBarrier(epoch: epoch, writeCount: count))
        case .flushRequest(let epoch): link.send(.flushRequest(epoch: epoch))
        case .resendComplete(let sequence): link.send(.resendComplete(throughSequence: sequence))
        case let .groupBarrier(groupID, epoch): link.send(.groupBarrier(groupID: groupID, epoch: epoch))
        }
    }

    private func sendData(_ data: DataMessage, on link: PeerLink) {
        guard let block = retained.payload(sequence: data.sequence) else {
            preconditionFailure("no retained payload for write \(data.sequence)")
        }
        if barrierEpoch != data.epoch {
            barrierEpoch = data.epoch
            barrierCount = 0
        }
        barrierCount += 1
        let copySlot = trace.enabled ? retained.copySlot(sequence: data.sequence) : nil
        if let copySlot { trace.copyHanded(slot: copySlot, at: context.loop.traceStamp()) }
        let (header, compressed) = WirePayload.prepare(
            block: block, epoch: data.epoch, sequence: data.sequence, offsetBytes: data.offsetBytes,
            fua: data.flags.contains(.fua), acknowledgedAfterApply: data.flags.contains(.acknowledgedAfterApply),
            compress: spec.compression == .lz4, scratch: scratch)
        let payload = compressed.map { UnsafeRawBufferPointer(rebasing: scratch[0..<$0]) } ?? block
        if link.sendData(header, payload: payload) {
            if let copySlot {
                trace.copyEncrypted(slot: copySlot, mark: link.channel.ciphertextQueuedBytes, at: context.loop.traceStamp())
            }
            if trace.enabled, let stamps = trace.existingStamps(data.sequence), !stamps.pointee.link.isSet {
                let now = context.loop.traceStamp()
                trace.record(.write, .send, from: stamps.pointee.start, to: now)
                stamps.pointee.link = now
            }
            if retained.isInitialCopy(sequence: data.sequence) {
                counters.resyncedBytes += UInt64(block.count)
            } else {
                counters.replicatedBytes += UInt64(block.count)
            }
        }
    }
}

extension PrimaryReplicator: CiphertextSendObserver {
    /// The socket took ciphertext: copy chunks whose last byte it reached are on the wire.
    func ciphertextSent(through totalBytes: UInt64) {
        guard trace.enabled else { return }
        trace.copyCiphertextSent(through: totalBytes, at: context.loop.traceStamp())
    }
}
