// ActivityLogRing: what a metadata file's activity-log ring proves at open (docs/metadata.md,
// *Activity-log transaction*). Transactions are numbered from 1 and transaction t lives in
// slot t % `AL slots`, so a ring whose newest valid transaction is n holds exactly n, n − 1,
// ... in the slots before it (zeroes where the ring never got that far). One slot may differ:
// the one the next transaction (n + 1) was being written to when the node stopped — a torn
// write there is expected after a crash, and no data write was issued under it. Anything
// else (a bad checksum elsewhere, a transaction in the wrong slot, a gap in the numbers) is a
// ring that does not prove its newest transaction: the caller must copy the whole volume,
// never treat the ring as empty. Pure: no I/O.

public enum ActivityLogRing {
    /// Why a ring proves nothing.
    public struct ProofError: Error, Equatable, Sendable, CustomStringConvertible {
        /// The ring slot at fault.
        public var slot: Int
        public var reason: String

        public var description: String { "activity-log slot \(slot): \(reason)" }
    }

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
        // Every slot but the next transaction's (newest + 1, the only one allowed to be torn
        // or to hold an old transaction) holds newest, newest − 1, ... or, before transaction
        // 1, nothing.
        // In UInt64 throughout: a sealed slot may hold any number up to 2^64 − 1 (FuzzPages
        // found `Int(newest)` trapping on one past Int.max).
        for back in 0..<(count - 1) {
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
}
