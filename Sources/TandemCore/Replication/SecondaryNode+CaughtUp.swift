// SecondaryNode's answer to a SyncComplete (docs/replication.md, *Periodic mode*): CaughtUp
// (wire type 37, protocol 7) once what the SyncComplete changed is durable on this node — a
// staged catch-up committed, applied to the volume and its journal forgotten; otherwise the
// record that says `synced` stored. A periodic primary completes its cycle only on it: the
// SyncComplete alone proves nothing about this copy's volume (a link closed right after it may
// lose it, and a staged catch-up is not on the volume before its commit).

extension SecondaryNode {
    /// After every event: sends the CaughtUp owed to this link's primary once it is true.
    mutating func answerCaughtUpIfSettled(into actions: inout [SecondaryNodeAction]) {
        guard let owed = caughtUpOwedGeneration, link == .established, diskFault == nil, !isStopping,
            staging.phase == .off, storedGeneration >= owed
        else { return }
        caughtUpOwedGeneration = nil
        actions.append(.sendCaughtUp(session: session))
    }
}
