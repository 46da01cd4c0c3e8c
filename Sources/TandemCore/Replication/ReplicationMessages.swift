// The messages the replication state machines exchange, as values. The wire codec (a
// separate file's job) turns them into bytes; payloads travel beside a DataMessage and are
// owned by the daemon's buffer pool, never by the state machine.

/// Epoch 0 means "no epoch": nothing written yet, nothing durable yet.
public typealias Epoch = UInt64
/// Sequence numbers are assigned by the primary in admission order, starting at 1, and are
/// contiguous: the stream to the secondary carries them in order without gaps.
public typealias WriteSequence = UInt64
/// The application's handle for a request (the NBD handle), unique among its open requests.
public typealias RequestID = UInt64

public struct DataFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The write was FUA on the primary; its epoch ends with it.
    public static let fua = DataFlags(rawValue: 1 << 0)
    /// Sync mode: the primary acknowledges the write only once the secondary has completed
    /// it. So every write it may depend on (acknowledged before it was issued) is already
    /// complete on the secondary, and the secondary may issue it before earlier epochs have
    /// completed, as long as it overlaps no earlier write still outstanding there.
    public static let acknowledgedAfterApply = DataFlags(rawValue: 1 << 1)
}

/// One replicated write, as shipped to the secondary (payload travels beside it).
public struct DataMessage: Sendable, Hashable {
    public var epoch: Epoch
    public var sequence: WriteSequence
    public var offsetBytes: UInt64
    public var lengthBytes: UInt32
    public var flags: DataFlags

    public init(
        epoch: Epoch, sequence: WriteSequence, offsetBytes: UInt64, lengthBytes: UInt32,
        flags: DataFlags
    ) {
        self.epoch = epoch
        self.sequence = sequence
        self.offsetBytes = offsetBytes
        self.lengthBytes = lengthBytes
        self.flags = flags
    }
}

/// Primary → secondary, in one ordered stream per connection.
public enum PrimaryMessage: Sendable, Hashable {
    case data(DataMessage)
    /// Epoch `epoch` is closed: no further write will carry it.
    case epochBarrier(epoch: Epoch)
    /// Make everything through `throughEpoch` durable now and acknowledge it (sync FLUSH/FUA).
    /// Also closes `throughEpoch`.
    case flushRequest(throughEpoch: Epoch)
    /// Everything after the durable epoch named in the secondary's hello has been re-sent;
    /// the last re-sent write has sequence `throughSequence` (0 when nothing was re-sent).
    case resendComplete(throughSequence: WriteSequence)
    /// Consistency group (wire GroupBarrier, docs/groups.md): group epoch `epoch` is closed
    /// for this member: none of its writes of an epoch ≤ `epoch` follows.
    case groupBarrier(groupID: UInt64, epoch: Epoch)
}

/// Secondary → primary.
public enum SecondaryMessage: Sendable, Hashable {
    /// First message on every connection (the wire's ReplicaHello): what the secondary has
    /// recorded as durable, and its own copy's state as it starts (`inconsistent` after its
    /// crash until the re-send is applied, or while a full copy is due; else `consistent`).
    case hello(durableThroughEpoch: Epoch, copy: DiskState)
    /// Write `sequence` has completed on the secondary's disk (sync mode only).
    case dataAck(sequence: WriteSequence)
    /// Every write of every epoch ≤ `epoch` is flushed on the secondary and recorded so.
    case durableThroughEpoch(Epoch)
}
