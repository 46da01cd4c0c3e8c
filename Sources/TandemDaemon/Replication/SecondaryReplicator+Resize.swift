// SecondaryReplicator's part of online resize: the primary's Resize goes to the resource
// (Resource+Resize), whose verdict is the answer. An answer for a link that has closed
// meanwhile is dropped; the resource then restarts this replicator as for any close.
import TandemCore

extension SecondaryReplicator {
    func receivedResize(_ request: WireResize, link: PeerLink) {
        guard request.kind == .request else {
            return link.closeForViolation("protocol violation: a primary sent a Resize answer")
        }
        guard let onResizeRequested else {
            let refusal = ResizeRefusal.wrongState("not resizable here")
            link.send(.resize(WireResize(sizeBytes: request.sizeBytes, kind: .refused, refusalCode: refusal.wireCode,
                                         senderBytes: 0)))
            return
        }
        onResizeRequested(request) { [weak self, weak link] result in
            guard let self else { return }
            guard let link, link === self.link, link.isEstablished else {
                onLinkClosed?()  // closed while the metadata was written: restart now
                return
            }
            switch result {
            case .success:
                link.send(.resize(WireResize(sizeBytes: request.sizeBytes, kind: .done, senderBytes: request.sizeBytes)))
            case .failure(let refusal):
                logger.warning("resize asked by the primary refused", metadata: ["reason": "\(refusal)"])
                link.send(.resize(WireResize(sizeBytes: request.sizeBytes, kind: .refused, refusalCode: refusal.wireCode,
                                             senderBytes: refusal.senderBytes)))
            }
        }
    }
}
