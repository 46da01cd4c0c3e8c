// MetadataSuperblock: everything a node has *done* with a resource, as one superblock slot
// holds it (docs/metadata.md, *Superblock slot*): identity and geometry, role last taken,
// generations, the stream's session and durable epoch, the clean stop, and the flags that
// were marker files before format 3 (`enabled`, `peer-lacks-writes`). `record` is the
// `ReplicationRecord` view the state machines read and write. A value: no I/O.

/// Bits of the superblock's `flags` field; a set bit outside `known` is refused.
public struct MetadataFlags: OptionSet, Equatable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let enabled = MetadataFlags(rawValue: 1 << 0)
    public static let synced = MetadataFlags(rawValue: 1 << 1)
    public static let consistent = MetadataFlags(rawValue: 1 << 2)
    public static let primaryStarted = MetadataFlags(rawValue: 1 << 3)
    public static let promotedInconsistent = MetadataFlags(rawValue: 1 << 4)
    public static let peerLacksWrites = MetadataFlags(rawValue: 1 << 5)
    public static let outdated = MetadataFlags(rawValue: 1 << 6)
    public static let crashedPrimary = MetadataFlags(rawValue: 1 << 7)
    public static let writtenWhileDisabled = MetadataFlags(rawValue: 1 << 8)
    /// The staging journal is committed: replay it before anything else (StagedCatchUp).
    public static let stagedCommitted = MetadataFlags(rawValue: 1 << 9)
    public static let fullSyncTarget = MetadataFlags(rawValue: 1 << 10)
    // issue 14 (sbres): a secondary's clean stop, and a split brain that outlives a restart.
    public static let secondaryCleanStop = MetadataFlags(rawValue: 1 << 11)
    public static let splitBrain = MetadataFlags(rawValue: 1 << 12)

    // issue 16 §4 (diskless): this primary's disk lacks writes its peer holds (written through
    // the peer while the disk had failed): it is resynced from the peer before it serves.
    public static let localLacksWrites = MetadataFlags(rawValue: 1 << 15)
    // issue 13 §4 (diskless regions): with `localLacksWrites`, the bitmap pages hold the
    // regions this disk lacks (not what the peer lacks), each durable before a write over it
    // went through the peer: a restart pulls those (LackingRecord).
    public static let localLackingRegions = MetadataFlags(rawValue: 1 << 16)

    /// Bits 0-12, 15 and 16; the others are reserved.
    public static let known = MetadataFlags(rawValue: (1 << 13) - 1 | 1 << 15 | 1 << 16)
}

/// The role this node last took for the resource (byte 128).
public enum MetadataRole: UInt8, Equatable, Sendable {
    case none = 0, primary = 1, secondary = 2

    public init(_ role: ResourceRole) {
        switch role {
        case .standalone: self = .none
        case .primary: self = .primary
        case .secondary: self = .secondary
        }
    }
}

/// Where the metadata lives (byte 129).
public enum MetadataPlacement: UInt8, Equatable, Sendable {
    case external = 0, `internal` = 1
}

public struct MetadataSuperblock: Equatable, Sendable {
    public static let formatVersion: UInt32 = 3
    public static let historyCount = 4
    public static let nameBytesMax = 64
    /// Defaults of a new file (docs/metadata.md; the settings that change them come with the
    /// bitmap and activity-log work of issue 13).
    public static let bitmapBlockBytesDefault: UInt32 = 4096
    public static let alExtentBytesDefault: UInt32 = 4 << 20
    public static let alSlotsDefault: UInt32 = 8
    public static let alExtentsMaxDefault: UInt32 = 512

    /// Bumped by every superblock write; 1 for the first. The slot is `sequence % 2`.
    public var sequence: UInt64 = 0
    /// Random at `create`; 0 until known.
    public var resourceUUID: UInt128 = 0
    public var resourceName: String
    public var volumeSizeBytes: UInt64
    public var bitmapBlockBytes: UInt32 = bitmapBlockBytesDefault
    public var alExtentBytes: UInt32 = alExtentBytesDefault
    public var alSlots: UInt32 = alSlotsDefault
    public var alExtentsMax: UInt32 = alExtentsMaxDefault
    public var roleLastTaken: MetadataRole = .none
    public var placement: MetadataPlacement = .external
    public var flags: MetadataFlags = []
    public var currentGeneration: UInt64 = 0
    public var bitmapGeneration: UInt64 = 0
    /// Exactly `historyCount` entries, newest first (0: none).
    public var history: [UInt64] = [0, 0, 0, 0]
    public var promotionNumber: UInt64 = 0
    public var session: UInt64 = 0
    public var durableEpoch: UInt64 = 0
    public var continuedFrom: UInt64 = 0
    public var cleanStop: UInt64 = 0
    /// Offset 224: the session that began the staged catch-up (0: none; StagedCatchUp).
    public var stagingSession: UInt64 = 0
    /// Offset 232: the staging journal's durable, proven prefix in bytes.
    public var stagedJournalBytes: UInt64 = 0
    public var consistentAsOfNs: UInt64 = 0
    public var changedBytes: UInt64 = 0
    public var peerNodeName: String = ""
    /// Writes of the replication record (`ReplicationRecord.generation`): 0 while the
    /// resource's record was never written, which the secondary's restart rule and session
    /// verdict read (`SecondaryNode.restarted`, `fresh`).
    public var recordWrites: UInt64 = 0
    /// Bitmap sealed (offset 328): 0 while the bitmap area is not authoritative; otherwise
    /// the superblock sequence under which the last page of the sealed bitmap was written,
    /// durably, before this superblock (docs/metadata.md, *Bitmap validity*). Every page of
    /// a sealed bitmap carries a sequence ≤ this; no page is written while it is non-zero.
    public var bitmapSealedSequence: UInt64 = 0
    /// While the bitmap is sealed: the points it covers (CatchUp.swift), at most two.
    public var catchUpBases: [CatchUpBase] = []
    /// Offset 368 while staging: the session, durable epoch and continued-from the volume's
    /// image belongs to (restored when the journal is discarded). Exactly 3 entries.
    public var stagedFrom: [UInt64] = [0, 0, 0]
    /// Offset 392, a primary's: the wall-clock time (ns since the Unix epoch) of the oldest
    /// acknowledged write its peer lacks, recorded when tracking starts (B := C) and cleared
    /// when the peer caught up, so that a restarted primary's `rpo_ms` still counts from it
    /// (the monotonic clock of the run that wrote it means nothing to the next). 0: the peer
    /// lacks nothing, or a record written before this field (the age is then not known).
    public var peerLacksSinceUnixNs: UInt64 = 0

    public init(resourceName: String, volumeSizeBytes: UInt64) {
        self.resourceName = resourceName
        self.volumeSizeBytes = volumeSizeBytes
    }

    public var geometry: MetadataGeometry {
        MetadataGeometry(volumeSizeBytes: volumeSizeBytes, bitmapBlockBytes: bitmapBlockBytes, alSlots: alSlots)
    }

    /// The slot (0: A, 1: B) this superblock is written to.
    public var slot: Int { Int(sequence % 2) }

    public var enabled: Bool {
        get { flags.contains(.enabled) }
        set { set(.enabled, newValue) }
    }

    public var peerLacksWrites: Bool {
        get { flags.contains(.peerLacksWrites) }
        set { set(.peerLacksWrites, newValue) }
    }

    /// The bitmap area holds a bitmap that covers every write of this copy.
    public var bitmapSealed: Bool { bitmapSealedSequence != 0 }

    public var writtenWhileDisabled: Bool {
        get { flags.contains(.writtenWhileDisabled) }
        set { set(.writtenWhileDisabled, newValue) }
    }

    public mutating func set(_ flag: MetadataFlags, _ on: Bool) {
        if on { flags.insert(flag) } else { flags.remove(flag) }
    }

    /// The replication record the state machines read and write (`ReplicationRecord`),
    /// stored in these fields and flags.
    public var record: ReplicationRecord {
        get {
            var record = ReplicationRecord(
                generation: recordWrites, session: session, durableThroughEpoch: durableEpoch,
                synced: flags.contains(.synced), continuedFrom: continuedFrom, cleanStop: cleanStop,
                primaryStarted: flags.contains(.primaryStarted),
                promotedInconsistent: flags.contains(.promotedInconsistent), staging: staging)
            record.consistentAsOfNs = consistentAsOfNs
            return record
        }
        set {
            recordWrites = newValue.generation
            session = newValue.session
            durableEpoch = newValue.durableThroughEpoch
            continuedFrom = newValue.continuedFrom
            cleanStop = newValue.cleanStop
            set(.synced, newValue.synced)
            set(.primaryStarted, newValue.primaryStarted)
            set(.promotedInconsistent, newValue.promotedInconsistent)
            staging = newValue.staging
            consistentAsOfNs = newValue.consistentAsOfNs
        }
    }

    /// The staged catch-up these fields describe (stagingSession 0: none).
    public var staging: StagedCatchUp? {
        get {
            guard stagingSession != 0 else { return nil }
            return StagedCatchUp(session: stagingSession, journalBytes: stagedJournalBytes,
                                 committed: flags.contains(.stagedCommitted), fromSession: stagedFrom[0],
                                 fromDurableEpoch: stagedFrom[1], fromContinuedFrom: stagedFrom[2])
        }
        set {
            stagingSession = newValue?.session ?? 0
            stagedJournalBytes = newValue?.journalBytes ?? 0
            set(.stagedCommitted, newValue?.committed ?? false)
            stagedFrom = newValue.map { [$0.fromSession, $0.fromDurableEpoch, $0.fromContinuedFrom] } ?? [0, 0, 0]
        }
    }
}
