// What the primary's replication state machine consumes and emits.

public enum PrimaryEvent: Sendable, Hashable {
    case writeSubmitted(request: RequestID, offsetBytes: UInt64, lengthBytes: UInt32, fua: Bool)
    /// A copy chunk (a full copy's or a catch-up's read of this disk) goes into the stream as
    /// a write. It is not an application write: it stays out of the RPO age and
    /// `applicationLagBytes` (what pacing holds), and counts in `lagBytes`.
    case copyChunkSubmitted(request: RequestID, offsetBytes: UInt64, lengthBytes: UInt32)
    case flushSubmitted(request: RequestID)
    /// The local write submitted for `sequence` completed (durably, if it was FUA).
    case localWriteCompleted(sequence: WriteSequence)
    case localFlushCompleted
    case peerMessage(SecondaryMessage)
    case connectionUp
    case connectionDown
    /// The peer leaves this stream for good (Ahead): every held write counts as delivered,
    /// because PrimaryNode has marked its region in the dirty bitmap, and from now on writes
    /// are acknowledged once local and released at once. The stream never reconnects: the
    /// next session starts a new one.
    case trackingStarted
    /// The owner asks the peer to make every admitted write durable now (a diskless primary's
    /// stop: PrimaryNode+PeerDrain): the open epoch is closed and a FlushRequest names it.
    case peerFlushWanted
    /// The owner closes the open epoch (if it is open): writes admitted from now on fall in
    /// the next one, and the peer may make this one durable as soon as it has applied it
    /// (PrimaryNode+Copy: the copy's chunks are released an epoch at a time).
    case epochCloseWanted
    case tick
}

/// Where a write's payload comes from.
public enum PayloadSource: Sendable, Hashable {
    /// The application request's own buffer.
    case request(RequestID)
    /// The shared block of zeros (a chunk of a WRITE_ZEROES).
    case zeroes
    /// The block just read from the local volume for a full copy (already on this disk:
    /// nothing is written locally).
    case copyChunk
}

/// A write admitted under `sequence`, its identity from admission until it is released.
/// From `ReplicationPrimary`, `request` is the caller's handle and `source` is
/// `.request(request)`; `PrimaryNode` fills in the real source.
public struct LocalWrite: Sendable, Hashable {
    public var request: RequestID
    public var source: PayloadSource
    public var sequence: WriteSequence
    public var epoch: Epoch
    public var offsetBytes: UInt64
    public var lengthBytes: UInt32
    public var fua: Bool

    public init(
        request: RequestID, sequence: WriteSequence, epoch: Epoch, offsetBytes: UInt64,
        lengthBytes: UInt32, fua: Bool
    ) {
        self.request = request
        self.source = .request(request)
        self.sequence = sequence
        self.epoch = epoch
        self.offsetBytes = offsetBytes
        self.lengthBytes = lengthBytes
        self.fua = fua
    }
}

public enum PrimaryAction: Sendable, Hashable {
    case submitLocalWrite(LocalWrite)
    /// Flush the local volume; answer with `.localFlushCompleted`. At most one is in flight.
    case submitLocalFlush
    case send(PrimaryMessage)
    case acknowledgeWrite(request: RequestID)
    case acknowledgeFlush(request: RequestID)
    /// The replication buffer is full: new application requests wait until `writesUnblocked`.
    case writesBlocked
    case writesUnblocked
    /// The peer broke the protocol; drop the connection (the state machine already treats it
    /// as down).
    case protocolViolation(String)
    /// Consistency group (docs/groups.md): this member closed epoch `epoch`, which closes
    /// the group's epoch of that number on every other member.
    case groupEpochClosed(epoch: Epoch)
}
