// PrimaryReplicator's slot of the daemon's `resync_concurrency_max` (ResyncArbiter). The node
// starts without a permit; after every event, a copy that is due with the peer ready asks for
// a slot (granted at once, or PausedSync with event `resync-paused` until it is its turn:
// `resync-resumed`), and one that is no longer due (done, peer gone, Ahead, stopping) gives
// it back, withdrawing the node's permit first.
import TandemCore

extension PrimaryReplicator {
    enum ResyncSlot { case none, waiting, holding }

    /// Whether the copy needs a slot now.
    private var resyncSlotWanted: Bool {
        peekNode { $0.copyWanted && $0.isPeerReady && !$0.isAhead && !$0.stopping && !$0.stopped }
    }

    /// After every event: asks for or gives back the slot as the node's state says.
    func updateResyncSlot() {
        let arbiter = context.resyncArbiter
        switch (resyncSlotWanted, resyncSlot) {
        case (true, .none):
            let granted = arbiter.request(ObjectIdentifier(self)) { [weak self] in self?.resyncSlotGranted() }
            if granted {
                resyncSlot = .holding
                feed(.resyncPermitted(true))
            } else {
                resyncSlot = .waiting
                logger.notice("resync paused: resync_concurrency_max copies run", metadata: ["resource": "\(resource)"])
                context.events.publish(resource: resource, "resync-paused", [
                    "out_of_sync_bytes": .int(Int64(clamping: node.outOfSyncBytes)),
                    "resync_concurrency_max": .int(Int64(arbiter.slotsMax)),
                ])
            }
        case (false, .waiting):
            resyncSlot = .none
            arbiter.withdraw(ObjectIdentifier(self))
        case (false, .holding):
            resyncSlot = .none
            feed(.resyncPermitted(false))
            arbiter.withdraw(ObjectIdentifier(self))
        default:
            break
        }
    }

    /// The arbiter's grant: the copy goes on.
    private func resyncSlotGranted() {
        guard resyncSlot == .waiting else { return }
        resyncSlot = .holding
        logger.notice("resync resumed: a resync_concurrency_max slot is free", metadata: ["resource": "\(resource)"])
        context.events.publish(resource: resource, "resync-resumed", [
            "out_of_sync_bytes": .int(Int64(clamping: node.outOfSyncBytes)),
        ])
        feed(.resyncPermitted(true))
    }
}
