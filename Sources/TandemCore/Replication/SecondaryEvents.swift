// What the secondary's replication state machine consumes and emits.

public enum SecondaryEvent: Sendable, Hashable {
    case connectionUp
    case connectionDown
    case message(PrimaryMessage)
    case writeCompleted(sequence: WriteSequence)
    case flushCompleted
    /// The metadata record "durable through epoch" submitted by `.recordDurableEpoch` is on
    /// stable storage.
    case durableEpochRecorded(Epoch)
    case tick
    /// Consistency group (docs/groups.md): writes of epochs ≤ `epoch` may be issued; the
    /// group's barrier on this node holds later ones until every member completed the one
    /// before. `Epoch.max` (the start) is no limit.
    case groupIssueLimit(Epoch)
}

public struct SecondaryWrite: Sendable, Hashable {
    public var sequence: WriteSequence
    public var epoch: Epoch
    public var offsetBytes: UInt64
    public var lengthBytes: UInt32

    public init(sequence: WriteSequence, epoch: Epoch, offsetBytes: UInt64, lengthBytes: UInt32) {
        self.sequence = sequence
        self.epoch = epoch
        self.offsetBytes = offsetBytes
        self.lengthBytes = lengthBytes
    }
}

public enum SecondaryAction: Sendable, Hashable {
    /// Write the payload received with `sequence`; answer with `.writeCompleted`.
    case submitWrite(SecondaryWrite)
    /// Flush the volume; answer with `.flushCompleted`. At most one is in flight.
    case submitFlush
    /// Persist "durable through epoch" in the metadata; answer with `.durableEpochRecorded`.
    case recordDurableEpoch(Epoch)
    case send(SecondaryMessage)
    /// The primary broke the protocol; drop the connection.
    case protocolViolation(String)
}
