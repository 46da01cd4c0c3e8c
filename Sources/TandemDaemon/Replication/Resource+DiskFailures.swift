// A Resource's disk failures, its own and its peer's (docs/replication.md, *Disk failures*):
// what stops, what is published, and the restart a peer that lost its record needs.
import Logging
import TandemControl
import TandemCore

extension Resource {
    /// This node's disk failed: it takes no more writes. A secondary also stops replicating
    /// (and refuses its primary with `disk-failed`); a primary keeps its link so that what is
    /// in flight is settled; its later writes go through an UpToDate peer once the record says
    /// this disk lacks them, or are answered EIO (PrimaryNode+Diskless).
    func diskFailed() {
        backend.refusesMutations = true
        secondary?.diskFailed()
    }

    /// The secondary's disk failed: detach it and serve alone (DRBD's on-io-error detach on
    /// the peer). Writes waiting for the peer are answered from this node's disk.
    ///
    /// Then, unless the operator asked the application to wait for its peer (`suspend-io`),
    /// replication starts again from the sealed bitmap and keeps dialling with the node's
    /// backoff: the peer refuses (`disk-failed`) until its disk is repaired and it is
    /// re-enabled, and its first link after that clears the failure and catches it up (DRBD's
    /// `attach` on the peer), with no `disable` on this primary, whose clients stay attached.
    func peerDiskFailed(_ reason: String) {
        guard primary != nil, !transitioning else { return }
        let detached = peerDiskFailure != nil
        peerDiskFailure = reason
        guard !detached else { return }  // a refusal of a later dial: the peer is still failed
        // What the peer lacks is what its stop leaves in the bitmap: every write it had not
        // confirmed durable (sealed with the stop), and the writes made alone from now on
        // (tracked; the first clears the seal first). A crash meanwhile leaves no seal and an
        // unclean record: a full copy. A peer that comes back with another record (its disk
        // replaced, `create-md --force`) refuses the catch-up: a full copy too.
        let states = reportedDiskStates
        context.events.publish(resource: spec.name, "peer-disk-failed", [
            "peer_disk_state": .string((states.peerDiskState ?? .failed).rawValue),
            "redundant": .bool(states.redundant ?? false), "message": .string(reason),
        ])
        transitioning = true
        stopReplication(servingAlone: true) { [self] in
            transitioning = false
            guard enabled, spec.fencing != .suspendIO else { return }
            do throws(ControlError) { try startReplication(handedOver: false) } catch {
                refusalError = error.message
                logger.error("redialling the peer whose disk failed: starting replication failed",
                             metadata: ["error": "\(error.message)"])
            }
        }
    }

    /// The peer's record claims less than it confirmed (a corrupt slot, `create-md`): what it
    /// lacks was released here, so this session cannot continue. The flag makes the next
    /// session a full copy (PrimaryStart), and replication restarts at once with it.
    func peerNeedsFullCopy(_ reason: String) {
        guard primary != nil, !transitioning else { return }
        _ = updateNode { $0.peerLacksWrites = true }
        logger.warning("the peer lost its record: replication restarts with a full copy", metadata: ["reason": "\(reason)"])
        context.events.publish(resource: spec.name, "peer-needs-full-copy", ["message": .string(reason)])
        transitioning = true
        stopReplication(servingAlone: true) { [self] in
            transitioning = false
            guard enabled else { return }
            do throws(ControlError) { try startReplication(handedOver: false) } catch {
                refusalError = error.message
                logger.error("restarting replication for the full copy failed", metadata: ["error": "\(error.message)"])
            }
        }
    }
}
