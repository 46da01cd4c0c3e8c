import TandemCore

// Simulation+Adaptive: `mode: adaptive` (AdaptiveModeController, PrimaryNode+Adaptive) in the
// seeds that draw it. The stream runs async and the node admits each write sync or async as its
// controller says; the controller is production's, fed by the node from the simulated link's
// acknowledgement latencies (bounds of a fraction of a millisecond to a few, so that the
// network's slow deliveries, stalls and partitions make it switch both ways).
//
// Which writes were admitted sync is read where production says it: the Data frame's
// `acknowledgedAfterApply` flag. The rule (GuaranteeChecker.syncAckedRequired): a write
// acknowledged while admitted sync is never lost by a later switch to async and a crash or a
// failover — every Consistent copy of the lineage holds it, and a FLUSH/FUA-acknowledged one
// is durable on a synced secondary and survives a forced promotion as sync mode's do.

extension Simulation {
    /// The primary sends a Data frame: remember the application writes admitted sync.
    func noteAdmissionMode(_ message: PrimaryMessage, session: UInt64) {
        guard scenario.adaptive != nil, case let .data(data) = message, data.flags.contains(.acknowledgedAfterApply),
            let value = checker.histories[session]?.valueOfSequence[data.sequence]
        else { return }
        syncAdmittedValues.insert(value)
    }

    /// Whether the application write `value` was admitted sync (adaptive mode only).
    func wasAdmittedSync(_ value: UInt64) -> Bool {
        guard scenario.adaptive != nil, syncAdmittedValues.contains(value) else { return false }
        syncAdmittedAcks += 1
        return true
    }
}
