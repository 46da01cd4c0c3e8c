// Resource's commands about the peer: `verify` (online verify, PrimaryNode+Verify) and
// `outdate-peer`, the control plane's word that the peer is
// outdated (fenced, or gone for good), which lets a primary with `fencing: suspend-io` stop
// waiting for it (PrimaryNode `.peerOutdated`; docs/replication.md, *Fencing*). Loop thread.
import TandemControl
import TandemCore

extension Resource {
    /// `outdate-peer`: refused `wrong-state` unless this node is a replicating primary whose
    /// peer is not connected; otherwise the held writes are answered from this copy (the node
    /// goes Ahead and tracks them) and the peer is reported `Outdated`.
    func outdatePeer() throws(ControlError) {
        guard spec.role == .primary, let primary else {
            throw ControlError(.wrongState, "resource '\(spec.name)' is not a replicating primary: there is no peer to outdate")
        }
        if let refusal = primary.node.outdatePeerRefusal {
            throw ControlError(.wrongState, "outdate-peer refused: \(refusal)")
        }
        primary.feed(.peerOutdated)
        logger.notice("the control plane outdated the peer: writes no longer wait for it")
        context.events.publish(resource: spec.name, "peer-outdated", ["source": .string("control-plane")])
    }

    /// `verify`: an online verify against the peer (PrimaryNode+Verify), on the primary.
    func verify() throws(ControlError) {
        guard spec.role == .primary, let primary else {
            throw ControlError(.wrongState, "verify runs on the primary of a replicating resource; '\(spec.name)' is not one")
        }
        try primary.startVerify()
    }
}
