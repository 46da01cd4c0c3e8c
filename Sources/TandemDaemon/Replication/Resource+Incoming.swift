// Resource's incoming peer connections: a Hello that reached this node is checked by the
// role rules (ResourceRoles.incoming) and the running secondary, and a primary's Hello reaching
// a primary compares generations (split brain). Split from ResourceReplication.swift.
import TandemControl
import TandemCore
import TandemIO

extension Resource {
    func validateIncoming(_ hello: WireHello, link: PeerLink) -> PeerLinkVerdict {
        if spec.role == .primary && hello.role == .primary && hello.node != nil {
            return validateIncomingPrimary(hello, link: link)
        }
        if let refusal = ResourceRoles.incoming(roleFacts, peerRole: hello.role, peerNode: hello.nodeName,
                                                secondaryRunning: secondary != nil) {
            if let primary { primary.noteRefusal(refusal.seen) } else { refusalError = refusal.seen }
            return .refuse(refusal.code, refusal.reason)
        }
        let secondary = secondary!  // ResourceRoles.incoming refuses when none runs
        let verdict = secondary.validate(hello, link: link)
        if case .refuse(let code, let reason) = verdict {
            secondary.noteRefusal(ResourceRoles.secondaryRefusalSeen(roleFacts, code: code, reason: reason,
                                                                     peerRole: hello.role, peerNode: hello.nodeName))
        }
        return verdict
    }
}

extension Resource {
    /// A primary's Hello reached this primary: compare generations (PeerHelloCheck). On a
    /// split brain this node answers with its own Hello, so that the dialler compares too and
    /// both report it; a dialler superseded by a later promotion is refused `stale-promotion`.
    private func validateIncomingPrimary(_ hello: WireHello, link: PeerLink) -> PeerLinkVerdict {
        if transitioning { return .refuse(.busy, "resource '\(spec.name)' is changing state") }
        let outcome = judgePrimaryHello(hello)
        act(on: outcome, peer: hello.nodeName)
        switch outcome {
        case .accept:
            return .refuse(.roleConflict, "this node is primary and so is the peer")
        case .refuse(let code, let reason):
            refusalError = "refused a connection from '\(hello.nodeName)' (primary): \(code): \(reason)"
            return .refuse(code, reason)
        case .demotedByPromotion(_, let reason):
            return .refuse(.roleConflict, "this node stops accepting writes: \(reason)")
        case .splitBrain, .yieldToPromoted, .resyncReturnedPrimary:
            // An old primary's return (Resource+ReturnedPrimary) is answered the same way:
            // the dialler judges this node's Hello and reaches the mirrored outcome.
            let probe = PrimaryHelloProbe(link: link) { [weak self] in self?.primaryProbe = nil }
            primaryProbe = probe
            let (node, promotion) = helloGenerations
            return .accept(delegate: probe, hello: WireHello(
                role: .primary, nodeName: context.config.nodeName, resourceName: spec.name,
                volumeSizeBytes: volume.sizeBytes, generations: WireGenerations(current: 0, bitmap: 0),
                promotionNumber: promotion, node: node))
        }
    }
}
