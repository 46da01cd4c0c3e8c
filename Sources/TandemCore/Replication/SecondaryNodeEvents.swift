// What the secondary node (SecondaryNode) consumes and emits. The driver (SecondaryReplicator
// in the daemon) turns TLS, io_uring and metadata results into these events and carries out
// the actions; every decision is the node's.

/// A failed result of this node's disk. `message` is the driver's text for `errno` (strerror),
/// nil while only the code is known.
public struct SecondaryDiskFault: Sendable, Hashable {
    /// What was being done: "write", "flush", "metadata write", or an operation of another part
    /// of the resource (the NBD server's "read", ...).
    public var operation: String
    public var errno: Int32
    public var message: String?

    public init(operation: String, errno: Int32, message: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.message = message
    }

    /// "write: Input/output error", or "write: errno 5" before the text is known.
    public var summary: String { "\(operation): \(message ?? "errno \(errno)")" }
}

/// The primary's Hello as the secondary sees it, with what TLS proved about the peer.
public struct PrimaryHelloFacts: Sendable, Equatable {
    public var hello: WireHello
    /// The peer's certificate names the configured peer.
    public var certificateNamesPeer: Bool
    /// The certificate's subject, for the refusal's text.
    public var certificateSubject: String?

    public init(hello: WireHello, certificateNamesPeer: Bool, certificateSubject: String?) {
        self.hello = hello
        self.certificateNamesPeer = certificateNamesPeer
        self.certificateSubject = certificateSubject
    }
}

public enum SecondaryNodeEvent: Sendable, Equatable {
    /// A connection's Hello named this resource: answered with `.acceptLink` or `.refuseLink`.
    case hello(PrimaryHelloFacts)
    /// The accepted connection finished its handshake.
    case linkEstablished
    /// The current connection (accepted or established) ended.
    case linkClosed
    /// A barrier, flush request or re-send end from the primary.
    case message(PrimaryMessage)
    /// A Data frame the node classified `.new` (its payload restored and checked by the driver)
    /// or `.duplicate` (dropped unread).
    case data(DataMessage)
    /// The primary's SyncComplete: this copy held every write it acknowledged through `through`.
    case syncComplete(through: WriteSequence)
    /// The primary drained and demoted (a planned failover).
    case demoted
    // A consistency group's staged catch-up (ConsistencyGroup+CatchUp, docs/groups.md):
    /// every staging member's catch-up is whole: drain the journal and wait for the decision.
    case groupCommitBegin
    /// The group's decision to commit every member's journal is durable: commit this one.
    case groupCommitDecided
    /// A frame a primary never sends (`type` names it).
    case unexpected(type: String)
    /// The operator asked for a planned failover: answered with `.failoverAnswered`.
    case requestFailover
    /// The primary's DigestRequest (online verify): answered with `.readForDigest`, then
    /// `.sendDigest` once `.digestRead` reports it.
    case digestRequested(offsetBytes: UInt64, lengthBytes: UInt64)
    /// The primary's VerifyEnd (protocol 10): its verify or digest compare on this link ended.
    case verifyEnded
    /// The flush of `.flushForDigests` ended (0: done).
    case digestFlushCompleted(errno: Int32)
    /// The read of `.readForDigest` ended: the region's digest, or the errno.
    case digestRead(offsetBytes: UInt64, lengthBytes: UInt64, digest: RegionDigest?, errno: Int32)
    /// A write of `.submitWrite` ended: `errno` 0 when all of it is on the disk (the driver
    /// continues short and interrupted writes itself).
    case writeCompleted(sequence: WriteSequence, errno: Int32)
    /// The flush of `.submitFlush` ended (0: done).
    case flushCompleted(errno: Int32)
    /// A record written by `.writeRecord` is on stable storage (the newest written, as stored).
    case recorded(ReplicationRecord)
    /// Writing the record failed; nothing more is recorded.
    case recordFailed(errno: Int32)
    /// Another part of the resource found its disk failed (or the driver learnt the text of a
    /// failure this node reported).
    case diskFailed(SecondaryDiskFault)
    /// The journal of `.applyStaging` is on the volume and flushed (0), or the errno.
    case stagingApplied(errno: Int32)
    /// Staging I/O of `.beginStaging` or `.commitStaging` failed (the journal's own write
    /// and flush results come as `.writeCompleted` and `.flushCompleted`).
    case stagingFailed(SecondaryDiskFault)
    /// The resource stops replicating (promotion, disable).
    case stop
    /// Consistency group (docs/groups.md): the group's barrier lets writes of epochs ≤ this
    /// be issued.
    case groupIssueLimit(Epoch)
    /// Time passes: group commit deadline, probe timing.
    case tick
}

public enum SecondaryNotice: Sendable, Hashable {
    /// Publish the connection state (event `connection-state`).
    case connectionState(ConnectionState)
    /// A failed result of this node's own I/O (every one, the first fails the node): the
    /// driver reports it (DiskHealth counts them and fails the resource at the first).
    case diskError(SecondaryDiskFault)
    /// The primary demoted itself (event `peer-demoted`).
    case peerDemoted
    /// A new primary session ended before its first write: the recorded one stays.
    case sessionAbandoned
    /// A staged catch-up outgrew the journal: it is applied and the catch-up goes on in
    /// place, Inconsistent until done (event `catch-up-inconsistent`).
    case catchUpInconsistent(stagedBytes: UInt64, writeBytes: UInt64, stagingBytesMax: UInt64)
    /// A committed journal of this many bytes is on the volume (event `catch-up-applied`).
    case stagingApplied(bytes: UInt64)
}

public enum SecondaryNodeAction: Sendable, Equatable {
    /// Accept the Hello of `.hello` (the driver answers with this node's Hello).
    case acceptLink
    /// Refuse the Hello of `.hello` with this code and reason.
    case refuseLink(WireRefusal, String)
    /// Close the current connection (the driver makes it not current first, so no
    /// `.linkClosed` follows for it).
    case closeLink(String)
    /// The primary broke the protocol: close the current connection as a violation
    /// (`.linkClosed` follows).
    case closeForViolation(String)
    /// Drop every received payload still held: a new session's sequence numbers start afresh.
    case releasePayloads
    /// Write the payload received with this sequence; answer with `.writeCompleted`.
    case submitWrite(SecondaryWrite)
    /// Flush the volume; answer with `.flushCompleted`. At most one is in flight.
    case submitFlush
    /// A staged catch-up begins or continues: flush the volume (it holds the image the
    /// record's staging names), and write the journal of `session` from `journalBytes` on
    /// (what lies after is a torn or unproven tail). Failure: `.stagingFailed`.
    case beginStaging(session: UInt64, journalBytes: UInt64)
    /// Append this write's payload to the staging journal as a record at this offset;
    /// answer with `.writeCompleted`.
    case stageWrite(SecondaryWrite, journalOffsetBytes: UInt64)
    /// Flush the staging journal; answer with `.flushCompleted`.
    case flushStaging
    /// Make the journal durable, then store this record (`staging.committed`); answer with
    /// `.recorded`, or `.stagingFailed` if the journal cannot be made durable.
    case commitStaging(ReplicationRecord)
    /// Apply the journal's first `journalBytes` to the volume and flush it; answer with
    /// `.stagingApplied`.
    case applyStaging(journalBytes: UInt64)
    /// Store this record (durably); answer with `.recorded` or `.recordFailed`.
    case writeRecord(ReplicationRecord)
    case send(SecondaryMessage)
    /// Ask the primary to drain and demote (wire FailoverRequest).
    case sendFailoverRequest
    /// Tell the primary (protocol 7 and later; the driver checks its Hello's version) that
    /// its SyncComplete of `session` is durable here (SecondaryNode+CaughtUp).
    case sendCaughtUp(session: UInt64)
    /// The answer to `.requestFailover`: the peer demoted (true), or it will not (false).
    case failoverAnswered(demoted: Bool)
    /// Dial the peer with a secondary Hello to learn why no primary connects (SecondaryProbe).
    /// Flush the volume before the link's first digest read; answer `.digestFlushCompleted`.
    /// At most one is in flight (besides `.submitFlush`'s).
    case flushForDigests
    /// Read this region of the volume and digest it; answer `.digestRead` (online verify).
    case readForDigest(offsetBytes: UInt64, lengthBytes: UInt64)
    /// Send the primary a region's digest (the wire's Digests).
    case sendDigest(offsetBytes: UInt64, lengthBytes: UInt64, digest: RegionDigest)
    case probe
    /// A primary connected: end a probe in progress.
    case endProbe
    case notice(SecondaryNotice)
}

/// The secondary's stream as status shows it (`replication_state`).
public enum SecondaryStreamState: String, Sendable, Equatable, CaseIterable {
    case off = "Off"
    /// A full copy is being received: Inconsistent until the primary's SyncComplete.
    case syncTarget = "SyncTarget"
    case established = "Established"
    /// The primary runs an online verify or digest compare against this copy: from its first
    /// DigestRequest until its VerifyEnd (a primary of protocol 10 or later), or until two
    /// seconds after its last DigestRequest (an older one).
    case verifyT = "VerifyT"
}

/// How the driver treats a Data frame before it reads the payload (`SecondaryNode.classify`).
public enum SecondaryDataClass: Sendable, Hashable {
    /// A write to keep: allocate, restore, check, then `.data`.
    case new
    /// A copy of a write this node already has (a re-send): `.data` without the payload.
    case duplicate
    /// Not for this session (stale, or the disk failed): drop it.
    case ignore
    /// No room in the receive queue now: hold the frame, stop reading the link, and ask again
    /// when a write completes (backpressure on the primary's stream).
    case wait
    /// The frame breaks the protocol: close the link with this reason.
    case violation(String)
}
