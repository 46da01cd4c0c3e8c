// ActivityLogRing: what a metadata file's activity-log ring proves at open (docs/metadata.md,
// *Activity-log transaction*). Transactions are numbered from 1 and transaction t lives in
// slot t % `AL slots`; a primary writes up to `transactionsInFlightMax` (K) at once, t only
// once every transaction up to t − K is durable. So after a crash the ring's newest valid
// transaction n holds exactly n, n − 1, ... in the slots before it (zeroes where the ring
// never got that far), except the K − 1 slots on either side of n: those after it (n + 1 ...)
// may have been torn or not yet written when the node stopped, those before it (n − 1 ...)
// too, when the disk finished n before them. Every write issued was under a transaction whose
// whole set the newest one's includes, or was flushed before a transaction dropped its
// extent (docs/tracking.md, *Transactions in flight*): the newest valid one suffices.
// Anything else (a bad checksum elsewhere, a transaction in the wrong slot, a gap in the
// numbers) is a ring that does not prove its newest transaction: the caller must copy the
// whole volume, never treat the ring as empty. Pure: no I/O.

public enum ActivityLogRing {
    /// Why a ring proves nothing.
    public struct ProofError: Error, Equatable, Sendable, CustomStringConvertible {
        /// The ring slot at fault.
        public var slot: Int
        public var reason: String

        public var description: String { "activity-log slot \(slot): \(reason)" }
    }

    /// The most transactions a primary writes at once, and what a ring's proof allows for
    /// (ActivityLogSettings.transactionsInFlightMax is at most this). Raising it widens the
    /// window of slots the proof cannot check; a ring written with more in flight than a
    /// reader allows for may fail that reader's proof (a full copy, never a wrong catch-up).
    public static let transactionsInFlightMax = 2

    /// The newest transaction the ring proves, nil when the ring was never written (every slot
    /// zero), or why it proves none. `slots`: the ring's slots in order, 4096 bytes each.
    public static func newest(_ slots: [[UInt8]], resourceUUID: UInt128, extentsMax: UInt32)
        -> Result<ActivityLogTransaction?, ProofError>
    {
        let count = UInt64(slots.count)
        precondition(count >= 2, "a ring of \(count) slots")
        var found: [ActivityLogTransaction?] = []
        var failures: [Int: String] = [:]
        for (slot, bytes) in slots.enumerated() {
            switch ActivityLogTransaction.decode(bytes, resourceUUID: resourceUUID, extentsMax: extentsMax) {
            case .success(let transaction):
                found.append(transaction)
                if transaction.transaction == 0 || transaction.transaction % count != UInt64(slot) {
                    failures[slot] = "holds transaction \(transaction.transaction), which belongs in slot \(transaction.transaction % count)"
                }
            case .failure(.zeroes):
                found.append(nil)
            case .failure(let error):
                found.append(nil)
                failures[slot] = "\(error)"
            }
        }
        // Transactions are numbered from 1: a ring whose only sealed slots hold 0 proves
        // nothing (FuzzPages' second finding: such a slot in the next transaction's place
        // went unchecked, and the ring passed for never written).
        guard let newest = found.compactMap({ $0?.transaction }).max(), newest > 0 else {
            if let (slot, reason) = failures.min(by: { $0.key < $1.key }) { return .failure(ProofError(slot: slot, reason: reason)) }
            return .success(nil)
        }
        // Every slot but those of the transactions that may have been in flight with newest
        // (newest ± 1 ... K − 1, allowed to be torn or to hold an old transaction) holds
        // newest, newest − 1, ... or, before transaction 1, nothing.
        // In UInt64 throughout: a sealed slot may hold any number up to 2^64 − 1 (FuzzPages
        // found `Int(newest)` trapping on one past Int.max).
        for back in checkedBacks(count: count) {
            // Transaction newest − back, nil where that is below 1, and the slot it belongs in.
            let expected: UInt64? = newest > back ? newest - back : nil
            let slot = Int(expected.map { $0 % count } ?? (count - (back - newest) % count) % count)
            if let reason = failures[slot] { return .failure(ProofError(slot: slot, reason: reason)) }
            let holds = found[slot]?.transaction
            guard let expected else {
                if let holds {
                    return .failure(ProofError(slot: slot, reason: "holds transaction \(holds) in a ring that never got there"))
                }
                continue
            }
            guard holds == expected else {
                let what = holds.map { "transaction \($0)" } ?? "nothing"
                return .failure(ProofError(slot: slot, reason: "holds \(what) where transaction \(expected) belongs"))
            }
        }
        return .success(found[Int(newest % count)])
    }

    /// How far before the newest transaction the slots a proof checks lie: the newest's own
    /// (0), then from K on, up to the slot of newest + K (the first that cannot have been in
    /// flight with it). With K = 1, every slot but the next transaction's.
    static func checkedBacks(count: UInt64) -> [UInt64] {
        let window = UInt64(transactionsInFlightMax - 1)
        guard count > 2 * window + 1 else { return [0] }
        return [0] + Array((window + 1)...(count - window - 1))
    }

    /// The transactions before `newest` (a proven ring's newest) that may have been in flight
    /// with it and whose slots do not hold them: torn, or not yet written. A new transaction
    /// written after newest leaves them behind the proof's window, so the ring must hold them
    /// again first (`sealed(_:as:)`): else a later crash finds a gap and copies the volume.
    public static func unsettled(_ slots: [[UInt8]], newest: UInt64, resourceUUID: UInt128, extentsMax: UInt32)
        -> [UInt64]
    {
        let count = UInt64(slots.count)
        var numbers: [UInt64] = []
        var back: UInt64 = 1
        while back < UInt64(transactionsInFlightMax) && back < newest && back < count {
            let number = newest - back
            let decoded = ActivityLogTransaction.decode(slots[Int(number % count)], resourceUUID: resourceUUID,
                                                        extentsMax: extentsMax)
            if case .success(let found) = decoded, found.transaction == number {} else { numbers.append(number) }
            back += 1
        }
        return numbers
    }

    /// What an unsettled slot is written with: the newest transaction's set and bases under the
    /// slot's own number. Recovery reads only the newest, so the copy never speaks for itself;
    /// were it ever read, it would claim what the newest claims.
    public static func sealed(_ newest: ActivityLogTransaction, as number: UInt64) -> ActivityLogTransaction {
        precondition(number < newest.transaction, "a slot sealed as \(number), not older than \(newest.transaction)")
        var copy = newest
        copy.transaction = number
        return copy
    }
}
