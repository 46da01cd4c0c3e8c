// LocalDiskResync: what a primary knows about its own disk lacking writes its peer holds —
// DRBD's diskless primary (the disk failed; writes go to the UpToDate peer only) and the
// resync of that disk from the peer once it is back (PrimaryNode+Diskless decides with it).
// The regions lacking are a bitmap of their own (the node's `bitmap` is what the *peer*
// lacks). Writes through the peer begin only once the record says, durably, that this disk
// lacks writes (MetadataFlags.localLacksWrites): a restart then never serves this disk's
// older content. Where the driver can (`keepsLackingRegions`), the record also keeps the
// regions, each durable before a write over it goes through the peer (+DisklessRegions), so a
// restart pulls only those; otherwise the record holds the flag and a restart pulls the whole
// volume. No I/O, no clock.

/// How the node serves a mutation (write, zeroes, flush): decided once, by PrimaryNode.
public enum MutationPath: Sendable, Equatable {
    /// This disk (and, replicating, the peer): the ordinary path.
    case local
    /// The peer only; this disk failed and lacks them, and the record says so.
    case throughPeer
    /// Both disks while this one is resynced from the peer; they still need the peer.
    case localAndPeer
    /// Through the peer as soon as the record says this disk lacks writes (being written).
    case awaitingRecord
    /// Answered EIO, for this reason (status `diskless.writes_refused_because`).
    case refused(String)
}

/// One region being pulled from the peer (a ReadRequest, then a write to this disk).
public struct PulledRegion: Sendable, Equatable {
    public var offsetBytes: UInt64
    public var lengthBytes: UInt32

    public init(offsetBytes: UInt64, lengthBytes: UInt32) {
        self.offsetBytes = offsetBytes
        self.lengthBytes = lengthBytes
    }
}

/// A write that failed on this disk and that the peer applied, waiting for the record.
struct LostWrite: Sendable, Equatable {
    var request: RequestID
    var start: UInt64
    var end: UInt64
}

public struct LocalDiskResync: Sendable {
    /// Pulls in flight at most (each at most `WireFormat.readBytesMax`): the peer serves at
    /// most `SecondaryNode.peerReadsMax` reads at once, shared with the application's.
    public static let pullsInFlightMax = 4
    /// The lacking bitmap's blocks hold at least this many bits' worth of volume: at most
    /// 2^25 blocks (4 MiB of bits), and never more than one ReadRequest per block.
    public static let blocksMax: UInt64 = 1 << 25

    /// The regions this disk lacks; nil when it lacks nothing. Set at a failure (the regions
    /// of writes that failed here, or all of it when a flush failed), by every write through
    /// the peer, and whole at a start whose record says the disk lacks writes.
    public internal(set) var lacking: DirtyBitmap?
    /// The record says, durably, that this disk lacks writes.
    public internal(set) var recorded = false
    /// The lacking set is the whole volume (a restart, a failed flush): status says so.
    public internal(set) var wholeVolume = false
    var recordInFlight = false
    /// The record cannot say it (internal metadata, a failed record write): writes are refused.
    public internal(set) var recordRefusal: String?
    /// The resync finished: the record's flag is being cleared (admission waits).
    var clearing = false
    var cursorBlock: UInt64 = 0
    public internal(set) var pulls: [PulledRegion] = []
    /// A pull failed without this disk's fault (the peer's read, the link) in the event being
    /// handled: nothing is pulled again before the next event (+Diskless, `regionPulled`).
    var pullFailedThisEvent = false
    /// The resync from the peer: running, what it had to pull when it began, pulled so far.
    public internal(set) var resyncing = false
    public internal(set) var resyncTotalBytes: UInt64 = 0
    public internal(set) var pulledBytes: UInt64 = 0
    /// Writes through the peer (acknowledged or not) in this run, and their bytes.
    public internal(set) var writesThroughPeer: UInt64 = 0
    public internal(set) var bytesThroughPeer: UInt64 = 0

    // Diskless regions (+DisklessRegions, issue 13 §4): what the record keeps of `lacking`.
    /// Whether the record keeps the regions: nil until asked (with the first record), false
    /// when it cannot (the flag alone: a restart pulls the whole volume).
    public internal(set) var regionsKept: Bool?
    /// The bits the record's pages hold durably (this bitmap's geometry); only grows until
    /// the flag is cleared.
    public internal(set) var durable: DirtyBitmap?
    /// The page write in flight (one at a time): its ticket and runs.
    var regionsInFlight: (ticket: UInt64, runs: [BlockRun], fresh: Bool)?
    var regionsTicket: UInt64 = 0
    /// A write failed here since the last page write: its region may not be durable yet.
    var lossUnpersisted = false
    /// Page writes asked for, and the bytes their runs cover (status, tests).
    public internal(set) var regionWrites: UInt64 = 0
    /// Why this node pulls the whole volume (a start whose record could not say which
    /// regions); nil when it pulls regions. The event `local-resync-started` says it.
    public internal(set) var wholeVolumeBecause: String?

    /// Sequences whose local half is done at once (the event's end drives them).
    var completedAtOnce: [WriteSequence] = []

    /// Writes that failed on this disk and that the peer applied: each is answered success once
    /// the record says, durably, that this disk lacks its region (+Diskless,
    /// `answerLostWritesIfRecorded`), EIO if the record cannot say it or the node stops first.
    var lostAwaitingRecord: [LostWrite] = []

    public init() {}

    /// The bitmap's block size for a volume: 4 KiB, doubled until the bitmap has at most
    /// `blocksMax` blocks, at most `WireFormat.readBytesMax`.
    public static func blockBytes(volumeSizeBytes: UInt64) -> UInt64 {
        var block: UInt64 = 4096
        while block < UInt64(WireFormat.readBytesMax), volumeSizeBytes / block > blocksMax { block *= 2 }
        return block
    }

    /// What is left to pull (set bits × block size, plus the pulls in flight).
    public var lackingBytes: UInt64 {
        (lacking?.outOfSyncBytes ?? 0) + pulls.reduce(0) { $0 + UInt64($1.lengthBytes) }
    }
}
