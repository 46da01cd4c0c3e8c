// A resource's `disable`: ResourceRoles decides; a diskless primary's peer makes the writes
// acknowledged through it durable before the stop (PrimaryNode+PeerDrain), and a drain that
// fails refuses the disable and changes nothing. Loop thread only.
import TandemControl
import TandemCore

extension Resource {
    func disable(_ done: @escaping (ControlError?) -> Void) {
        let facts = roleFacts
        switch ResourceRoles.disable(facts, peerConnected: primary?.peekNode { $0.isPeerReady } == true) {
        case .failure(let refusal):
            done(ControlError(refusal))
        case .success(.stopNow):
            disableNow(done)
        case .success(.drainPeerThenStop):
            // Diskless: the peer makes what this node acknowledged through it durable first
            // (PrimaryNode+PeerDrain); a drain that fails refuses the disable, changing nothing.
            transitioning = true
            primary!.drainPeerBeforeStop { [self] failure in
                transitioning = false
                if let failure { return done(ControlError(ResourceRoles.disklessDrainRefusal(roleFacts, failure))) }
                disableNow(done)
            }
        }
    }

    private func disableNow(_ done: @escaping (ControlError?) -> Void) {
        enabled = false
        writeEnabled(false)
        transitioning = true
        stopReplication(servingAlone: true) { [self] in
            transitioning = false
            context.events.publish(resource: spec.name, "disabled", [:])
            done(nil)
        }
    }
}
