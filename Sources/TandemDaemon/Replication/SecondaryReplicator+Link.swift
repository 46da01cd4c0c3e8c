// SecondaryReplicator's peer link: the Hello it validates (as SecondaryNode decides), the
// link's establishment and close, and the messages it hands to the node (a pure move out of
// SecondaryReplicator.swift).
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO

extension SecondaryReplicator {
    // MARK: the link

    /// An accepted connection whose Hello names this resource.
    func validate(_ hello: WireHello, link: PeerLink) -> PeerLinkVerdict {
        let connection = link.channel.connection
        let facts = PrimaryHelloFacts(
            hello: hello, certificateNamesPeer: spec.peer.map { connection.peerCertificateNames($0.name) } ?? false,
            certificateSubject: connection.peerSubject)
        pendingBitmapFrames = nil
        if let asked = splitBrainBitmapFrames?(hello) {
            if let refusal = asked.refusal { return .refuse(.unrelatedData, refusal) }
            pendingBitmapFrames = asked.frames
        }
        candidate = (link, hello)
        verdict = nil
        feed(.hello(facts))
        perform()
        candidate = nil
        guard let answer = verdict else { preconditionFailure("the node answered no Hello") }
        verdict = nil
        return answer
    }

    func peerLink(_ link: PeerLink, validate hello: WireHello) -> PeerLinkVerdict {
        .refuse(.other, "unexpected second Hello")
    }

    func peerLinkEstablished(_ link: PeerLink) {
        guard link === self.link else { return link.close("superseded") }
        if let frames = pendingBitmapFrames {
            // Before the ReplicaHello: the survivor's copy cannot start without them.
            pendingBitmapFrames = nil
            for frame in frames { _ = link.send(frame) }
        }
        feed(.linkEstablished)
        perform()
        publishDiskState()
    }

    func peerLink(_ link: PeerLink, received message: WireMessage) {
        guard link === self.link else { return }
        switch message {
        case .data(let data): receiveData(data, link: link)
        case .epochBarrier(let epoch, _): feed(.message(.epochBarrier(epoch: epoch)))
        case let .epochTime(epoch, wallClockNs): noteEpochTime(epoch: epoch, wallClockNs: wallClockNs)
        case .flushRequest(let epoch): feed(.message(.flushRequest(throughEpoch: epoch)))
        case .resendComplete(let sequence): feed(.message(.resendComplete(throughSequence: sequence)))
        case let .groupBarrier(groupID, epoch): feed(.message(.groupBarrier(groupID: groupID, epoch: epoch)))
        case .syncComplete(let sequence): feed(.syncComplete(through: sequence))
        case .demoted: feed(.demoted)
        case let .digestRequest(offset, length): feed(.digestRequested(offsetBytes: offset, lengthBytes: length))
        case .verifyEnd: feed(.verifyEnded)
        case .resize(let request): receivedResize(request, link: link)
        case .readRequest(let request): receivedReadRequest(request, link: link)
        case .ping(let nonce): link.send(.pong(nonce: nonce))
        case .pong: break
        default: feed(.unexpected(type: "\(message.type)"))
        }
        perform()
        publishDiskState()
    }

    func peerLinkClosed(_ link: PeerLink, reason: String) {
        guard link === self.link else { return }
        self.link = nil
        if let failure = link.failure { counters.count(failure) }
        noteFailure(reason)
        feed(.linkClosed)
        perform()
        publishDiskState()
        checkStopped()
        onLinkClosed?()
    }
}
