// ConsistentPoint: `consistent_as_of` in status (docs/replication.md, *Staged catch-up*;
// docs/control-protocol.md). The point of the primary's history a consistent image holds: a
// session and the epoch through which it holds every write of it (`wholeSession`: every
// write of the session, as a clean stop or a `continues` basis promises). Epochs are the
// stream's group-commit cycles, so the point advances cycle by cycle while the stream runs;
// during a staged catch-up it stays at the image from before it until the journal commits.
// Only a consistent image has one: an Inconsistent copy reports none.

public struct ConsistentPoint: Equatable, Sendable {
    public var session: UInt64
    /// `CatchUpBase.epochAll`: the whole session.
    public var epoch: Epoch
    /// The primary's wall-clock time of that epoch (ns since the Unix epoch, its clock), when
    /// the primary sent one (protocol 9, SecondaryNode+EpochTime); nil: not known.
    public var wallClockNs: UInt64?

    public init(session: UInt64, epoch: Epoch, wallClockNs: UInt64? = nil) {
        self.session = session
        self.epoch = epoch
        self.wallClockNs = wallClockNs
    }

    public var wholeSession: Bool { epoch == CatchUpBase.epochAll }
}
