// ReplicationPrimary's buffer of held writes: finding a write by sequence, releasing the ones
// the peer no longer needs, the Data message a held write is (re)sent as, and the ages and
// pending promises read from it (RPO, the oldest unapplied write, sync-admitted writes still
// waiting). Split from ReplicationPrimary.swift; the state is the machine's.

extension ReplicationPrimary {
    func index(ofSequence sequence: WriteSequence) -> Int? {
        guard let first = writes.first, sequence >= first.sequence else { return nil }
        let index = Int(sequence - first.sequence)
        return index < writes.count ? index : nil
    }

    mutating func releaseFinished() {
        while let first = writes.first, first.acknowledged, isTracking || first.epoch <= peerDurableEpoch {
            retainedBytes -= UInt64(first.lengthBytes)
            writes.removeFirst()
        }
    }

    func dataMessage(_ write: Write) -> DataMessage {
        DataMessage(
            epoch: write.epoch, sequence: write.sequence, offsetBytes: write.offsetBytes,
            lengthBytes: write.lengthBytes, flags: dataFlags(fua: write.fua, sync: write.sync))
    }

    func dataFlags(fua: Bool, sync: Bool) -> DataFlags {
        var flags: DataFlags = fua ? [.fua] : []
        if sync { flags.insert(.acknowledgedAfterApply) }
        return flags
    }
}

extension ReplicationPrimary {
    /// How long the oldest write the peer has not applied yet has waited (0: none waits, or
    /// the peer is out of the stream): a stalled link shows here before any ack is late.
    public func oldestUnappliedAgeNs(nowNs: UInt64) -> UInt64 {
        oldestUnappliedAdmittedAtNs.map { nowNs - min($0, nowNs) } ?? 0
    }

    /// When the oldest write the peer has not applied yet was admitted (nil: none waits).
    public var oldestUnappliedAdmittedAtNs: UInt64? {
        guard !isTracking else { return nil }
        for index in 0..<writes.count where !writes[index].peerApplied { return writes[index].admittedAtNs }
        return nil
    }

    /// Sync-admitted writes or flushes not yet acknowledged: their promise still waits for
    /// the peer, whatever the mode is now.
    public var syncPending: Bool {
        for index in 0..<writes.count where writes[index].sync && !writes[index].acknowledged { return true }
        for index in 0..<flushes.count where flushes[index].sync { return true }
        return false
    }

    /// Age of the oldest acknowledged application write the secondary has not confirmed
    /// durable; 0 if none. Copy chunks are not counted: a chunk is "acknowledged" when it is
    /// read, which says nothing of when the writes it carries were made (the owner counts a
    /// catch-up's regions from when the peer began to lack them: PrimaryNode+Loss).
    /// `countingCopies` only for the pacer's seeded fault (`copyCountsAsApplication`).
    public func rpoAgeNs(nowNs: UInt64, countingCopies: Bool = false) -> UInt64 {
        var oldestNs: UInt64? = nil
        for index in 0..<writes.count {
            let write = writes[index]
            guard write.acknowledged, countingCopies || !write.copy, write.epoch > peerDurableEpoch else { continue }
            oldestNs = config.testingFault == .rpoAgeFromNewestWrite
                ? max(oldestNs ?? write.acknowledgedAtNs, write.acknowledgedAtNs)
                : min(oldestNs ?? write.acknowledgedAtNs, write.acknowledgedAtNs)
        }
        guard let oldestNs else { return 0 }
        return nowNs >= oldestNs ? nowNs - oldestNs : 0
    }

    /// The epoch of an admitted write still held in the buffer (for status and tests).
    public func epoch(ofSequence sequence: WriteSequence) -> Epoch? {
        guard let index = index(ofSequence: sequence) else { return nil }
        return writes[index].epoch
    }
}
