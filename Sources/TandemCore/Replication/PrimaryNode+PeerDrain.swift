// PrimaryNode's peer drain at a stop (issues 14 and 16). A diskless primary (its disk failed:
// PrimaryNode+Diskless) acknowledges a write once the peer applied it; the write is durable
// only after the peer's next flush. Until then it lives in the peer's cache and in this
// process's retained payload (`acknowledgedOnlyInMemoryBytes`). A stop drops the payload, and
// the next start takes the peer as holding everything (`local-lacks-writes`: this disk is
// resynced from it), so a power loss of the peer in between would lose acknowledged writes.
//
// So a stop of such a node (disable, shutdown, any other) with the link up first makes the
// peer hold them durably: the open epoch is closed, a FlushRequest names the newest epoch, and
// the link stays until the peer's durable epoch reaches it, the link goes down, or
// `peerDrainTimeoutNs` passes (checked at events: ticks). Then it hangs up as any stop. New
// mutations fail meanwhile (the stop's rule); those admitted before are answered as the peer
// confirms them. A stop that cannot drain (no link, the link lost, the deadline) says so:
// `.peerDrainFailed` names the acknowledged bytes it drops.
//
// A `disable` drains before its stop (`.drainPeerBeforeStop`, admission held, answered with
// `.peerDrainedBeforeStop`) so that a drain that fails refuses it and changes nothing: the node
// goes on, and re-sends the writes to the peer when it can. A hand-over needs none of this:
// its `.drain` waits until every write is durable on the peer. No I/O, no clock.

/// The drain running: the epoch the peer must confirm durable, by when, and for whom.
struct PeerDrain: Sendable, Equatable {
    var throughEpoch: Epoch
    var deadlineNs: UInt64
    /// `acknowledgedOnlyInMemoryBytes` when it began.
    var bytes: UInt64
    /// A disable's drain before its stop (`.drainPeerBeforeStop`), not a stop's own.
    var beforeStop: Bool
}

extension PrimaryNode {
    /// Writes through the peer (this disk failed) that it has not confirmed durable: a stop
    /// now would drop the only copy this side holds.
    var peerDrainWanted: Bool { diskFailed && primary.unconfirmedBytes > 0 }

    /// When the running drain gives up: the driver wakes the node then (a stopping node gets
    /// no other ticks).
    public var peerDrainDeadlineNs: UInt64? { peerDrain?.deadlineNs }

    /// Whether a stop now keeps the link to drain the peer first.
    var stopDrainsPeer: Bool {
        peerDrainWanted && isPeerReady && config.primary.testingFault != .disklessStopSkipsPeerDrain
    }

    /// A stop begins: true if it waits for the peer's drain (the link is kept and hung up when
    /// the drain ends). Without a link to drain over, it says what it drops.
    mutating func drainPeerAtStop(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) -> Bool {
        if peerDrain != nil {
            // A disable's drain was running: the stop takes it over.
            peerDrain!.beforeStop = false
            actions.append(.peerDrainedBeforeStop(failure: "the resource is stopping"))
            return true
        }
        if stopDrainsPeer {
            startPeerDrain(beforeStop: false, nowNs: nowNs, into: &actions)
            return true
        }
        if acknowledgedOnlyInMemoryBytes > 0 && config.primary.testingFault != .disklessStopSkipsPeerDrain {
            actions.append(.notice(.localDisk(.peerDrainFailed(bytes: acknowledgedOnlyInMemoryBytes,
                                                               reason: "the peer is not connected", stopping: true))))
        }
        return false
    }

    /// `.drainPeerBeforeStop` (a disable): admission holds from now until the stop; answered
    /// at once when there is nothing to drain or no link to drain over.
    mutating func drainPeerBeforeStop(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard !stopping, peerDrain == nil else { return }
        admissionHeldForStop = true
        guard peerDrainWanted, acknowledgedOnlyInMemoryBytes > 0 || isPeerReady else {
            return actions.append(.peerDrainedBeforeStop(failure: nil))
        }
        guard isPeerReady else {
            admissionHeldForStop = false
            actions.append(.notice(.localDisk(.peerDrainFailed(bytes: acknowledgedOnlyInMemoryBytes,
                                                               reason: "the peer is not connected", stopping: false))))
            return actions.append(.peerDrainedBeforeStop(failure: "the peer is not connected"))
        }
        startPeerDrain(beforeStop: true, nowNs: nowNs, into: &actions)
    }

    private mutating func startPeerDrain(beforeStop: Bool, nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        drive(.peerFlushWanted, nowNs: nowNs, into: &actions)
        peerDrain = PeerDrain(throughEpoch: primary.openEpoch, deadlineNs: nowNs + config.peerDrainTimeoutNs,
                              bytes: acknowledgedOnlyInMemoryBytes, beforeStop: beforeStop)
        // It waits for the writes admitted and not yet acknowledged too (answered as the peer
        // confirms them): named apart, since they promise nothing yet.
        let inFlight = primary.unconfirmedBytes - primary.lagBytes
        actions.append(.notice(.localDisk(.peerDrainStarted(bytes: acknowledgedOnlyInMemoryBytes, inFlightBytes: inFlight))))
    }

    /// After every event, before the stop's check: the drain ends once the peer confirmed its
    /// epoch durable, the link is gone, or its deadline passed. What was acknowledged and is
    /// still unconfirmed then is named; writes not yet acknowledged promise nothing.
    mutating func continuePeerDrain(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard let drain = peerDrain else { return }
        let failure: String
        if primary.peerDurableEpoch >= drain.throughEpoch {
            return endPeerDrain(drain, failure: nil, into: &actions)
        } else if !isPeerReady {
            failure = "the link to the peer went down before it confirmed them durable"
        } else if nowNs >= drain.deadlineNs {
            failure = "the peer did not confirm them durable within \(config.peerDrainTimeoutNs / 1_000_000) ms"
        } else {
            return
        }
        endPeerDrain(drain, failure: acknowledgedOnlyInMemoryBytes > 0 ? failure : nil, into: &actions)
    }

    private mutating func endPeerDrain(_ drain: PeerDrain, failure: String?, into actions: inout [PrimaryNodeAction]) {
        peerDrain = nil
        if let failure {
            actions.append(.notice(.localDisk(.peerDrainFailed(bytes: acknowledgedOnlyInMemoryBytes, reason: failure,
                                                               stopping: !drain.beforeStop))))
        } else {
            actions.append(.notice(.localDisk(.peerDrained(bytes: drain.bytes))))
        }
        guard drain.beforeStop else {
            hangUp("resource stopping", into: &actions)
            return setConnectionState(.standAlone, into: &actions)
        }
        // A refused disable changes nothing: admission goes on. After a success the stop follows.
        if failure != nil { admissionHeldForStop = false }
        actions.append(.peerDrainedBeforeStop(failure: failure))
    }
}
