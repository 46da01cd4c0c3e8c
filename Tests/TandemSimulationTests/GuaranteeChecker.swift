import TandemCore

// GuaranteeChecker: the primary's history (every admitted write with its epoch) and the
// requirements acknowledgements created, and the checks of DESIGN.md's guarantees 1–3
// against the fake disks' content. Every check returns a description of the violation.

struct GuaranteeChecker {
    struct HistoryEntry {
        var epoch: Epoch
        var sequence: WriteSequence
    }

    let mode: ReplicationAckMode
    let blockCount: Int
    /// Indexed by sequence; sequence 0 is the initial content, epoch 0.
    private(set) var epochOfSequence: [Epoch] = [0]
    /// Per block, every admitted write that covers it, in sequence order.
    private var history: [[HistoryEntry]]
    /// Per block, the newest acknowledged write covering it: must be readable.
    private(set) var ackedRequired: [WriteSequence]
    /// Per block, the newest write an acknowledged FLUSH/FUA made durable on the primary…
    private var durableRequiredPrimary: [WriteSequence]
    /// …and, in sync mode, on the secondary too.
    private var durableRequiredSecondary: [WriteSequence]

    init(mode: ReplicationAckMode, blockCount: Int) {
        self.mode = mode
        self.blockCount = blockCount
        history = Array(repeating: [], count: blockCount)
        ackedRequired = Array(repeating: 0, count: blockCount)
        durableRequiredPrimary = Array(repeating: 0, count: blockCount)
        durableRequiredSecondary = Array(repeating: 0, count: blockCount)
    }

    mutating func recordAdmission(_ write: LocalWrite, blocks: Range<Int>) -> String? {
        guard write.sequence == WriteSequence(epochOfSequence.count) else {
            return "sequence \(write.sequence) is not the next one (\(epochOfSequence.count))"
        }
        guard write.epoch >= epochOfSequence.last! else {
            return "write \(write.sequence) has epoch \(write.epoch) below the previous write's"
        }
        epochOfSequence.append(write.epoch)
        for block in blocks {
            // The workload never overlaps an unacknowledged write, so two writes of one epoch
            // on the same block mean the epoch rule let a dependent write into its cause's epoch.
            if let last = history[block].last, last.epoch == write.epoch {
                return "writes \(last.sequence) and \(write.sequence) overlap in epoch \(write.epoch)"
            }
            history[block].append(HistoryEntry(epoch: write.epoch, sequence: write.sequence))
        }
        return nil
    }

    mutating func recordWriteAcknowledged(_ sequence: WriteSequence, blocks: Range<Int>, fua: Bool) {
        for block in blocks {
            ackedRequired[block] = max(ackedRequired[block], sequence)
            if fua {
                durableRequiredPrimary[block] = max(durableRequiredPrimary[block], sequence)
                if mode == .sync {
                    durableRequiredSecondary[block] = max(durableRequiredSecondary[block], sequence)
                }
            }
        }
    }

    /// A FLUSH covers every write acknowledged before the FLUSH was submitted (`snapshot`).
    mutating func recordFlushAcknowledged(snapshot: [WriteSequence]) {
        for block in 0..<blockCount {
            durableRequiredPrimary[block] = max(durableRequiredPrimary[block], snapshot[block])
            if mode == .sync {
                durableRequiredSecondary[block] = max(durableRequiredSecondary[block], snapshot[block])
            }
        }
    }

    func checkPrimary(_ disk: FakeDisk) -> String? {
        for block in 0..<blockCount {
            if disk.cache[block] < ackedRequired[block] {
                return "primary block \(block) holds write \(disk.cache[block]), acknowledged write \(ackedRequired[block]) is missing"
            }
            if disk.durable[block] < durableRequiredPrimary[block] {
                return "primary block \(block) durably holds \(disk.durable[block]), but FLUSH/FUA acknowledged write \(durableRequiredPrimary[block])"
            }
        }
        return nil
    }

    /// `consistent`: the secondary's own claim; an inconsistent secondary is promotable only
    /// with force, so only its durable content is held to the acknowledged FLUSH/FUAs.
    func checkSecondary(_ disk: FakeDisk, consistent: Bool) -> String? {
        for block in 0..<blockCount where disk.durable[block] < durableRequiredSecondary[block] {
            return "secondary block \(block) durably holds \(disk.durable[block]), but sync FLUSH/FUA acknowledged write \(durableRequiredSecondary[block])"
        }
        guard consistent else { return nil }
        if mode == .sync {
            for block in 0..<blockCount where disk.cache[block] < ackedRequired[block] {
                return "sync secondary block \(block) holds write \(disk.cache[block]), acknowledged write \(ackedRequired[block]) is missing"
            }
            // Sync promises every acknowledged write, which includes everything any present
            // write can depend on; writes of later epochs may be applied ahead (DataFlags
            // .acknowledgedAfterApply), so the content need not be an epoch prefix.
            return admittedViolation(disk.cache)
        }
        return prefixViolation(disk.cache)
    }

    func admittedViolation(_ content: [WriteSequence]) -> String? {
        for (block, sequence) in content.enumerated() where sequence >= WriteSequence(epochOfSequence.count) {
            return "block \(block) holds write \(sequence) the primary never admitted"
        }
        return nil
    }

    /// Crash consistency: the content equals the primary's history through some epoch K plus
    /// a subset of the writes of epoch K+1. K+1 can only be the newest epoch present.
    func prefixViolation(_ content: [WriteSequence]) -> String? {
        var newestEpoch: Epoch = 0
        for sequence in content {
            guard sequence < WriteSequence(epochOfSequence.count) else {
                return "block holds write \(sequence) the primary never admitted"
            }
            newestEpoch = max(newestEpoch, epochOfSequence[Int(sequence)])
        }
        guard newestEpoch > 0 else { return nil }
        for block in 0..<blockCount {
            let sequence = content[block]
            if epochOfSequence[Int(sequence)] == newestEpoch { continue }
            let expected = newestBefore(epoch: newestEpoch, block: block)
            if sequence != expected {
                return "not crash-consistent: block \(block) holds write \(sequence) (epoch \(epochOfSequence[Int(sequence)])) but epoch \(newestEpoch) is present and the history through epoch \(newestEpoch - 1) has write \(expected) there"
            }
        }
        return nil
    }

    private func newestBefore(epoch: Epoch, block: Int) -> WriteSequence {
        for entry in history[block].reversed() where entry.epoch < epoch { return entry.sequence }
        return 0
    }
}
