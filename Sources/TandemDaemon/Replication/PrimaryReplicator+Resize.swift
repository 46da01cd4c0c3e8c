// PrimaryReplicator's part of online resize (Resource+Resize decides): the Resize request to
// the peer and its answer. One at a time; a link that closes, or a stop, before the answer
// fails the request (the peer may or may not have grown: docs/replication.md, *Resize*).
import TandemCore

extension PrimaryReplicator {
    /// The peer's Hello named a version that answers Resize.
    var peerSupportsResize: Bool { peerHelloVersion >= WireFormat.resizeVersion }

    /// The link is up: a Resize can be asked now.
    var isPeerEstablished: Bool { isConnectedToPeer }

    /// Sends `request`; `answer` runs once, with the peer's verdict or the link's end.
    func requestPeerResize(_ request: WireResize, _ answer: @escaping (Result<Void, ResizeRefusal>) -> Void) {
        precondition(pendingResize == nil && request.kind == .request, "a second resize request")
        guard let link, link.send(.resize(request)) else {
            return answer(.failure(.wrongState("the link to the peer is not up")))
        }
        pendingResize = (request, answer)
    }

    func receivedResize(_ reply: WireResize, link: PeerLink) {
        guard reply.kind != .request, let pending = pendingResize, reply.sizeBytes == pending.request.sizeBytes else {
            return link.closeForViolation("protocol violation: a Resize nobody asked for (\(reply.kind), \(reply.sizeBytes) bytes)")
        }
        pendingResize = nil
        if reply.kind == .done { return pending.answer(.success(())) }
        pending.answer(.failure(ResizeRefusal(wireCode: reply.refusalCode, sizeBytes: reply.sizeBytes,
                                              senderBytes: reply.senderBytes)))
    }

    func failPendingResize(_ reason: String) {
        guard let pending = pendingResize else { return }
        pendingResize = nil
        // The peer may have grown before the link closed: its answer is what was lost.
        let size = pending.request.sizeBytes
        pending.answer(.failure(.failed("\(reason); the peer may have grown to \(size) bytes already (the nodes "
            + "then refuse each other with size-mismatch): run the same resize on this primary again once the "
            + "peer is reachable")))
    }
}
