// ReplicationPrimary's buffer of held writes: finding a write by sequence, releasing the ones
// the peer no longer needs, and the Data message a held write is (re)sent as. Split from
// ReplicationPrimary.swift; the state is the machine's.

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
