// ResourceSpec: what a resource is, as the control plane created it and as it is persisted.
// Pure data: no I/O. Validation of control input into this type lives in TandemControl.

public enum ResourceRole: String, Sendable, CaseIterable {
    case standalone, primary, secondary
}

/// The modes this version replicates in. `adaptive`: sync while the peer answers within
/// `adaptive_latency_ms`, async when it does not (AdaptiveModeController).
public enum ReplicationMode: String, Sendable, CaseIterable {
    case sync, async
    case adaptive
    /// Ahead between cycles, a catch-up every `period_s` (PrimaryNode+Periodic).
    case periodic
}

public enum CompressionKind: String, Sendable, CaseIterable {
    case none, lz4
}

public enum DiskDrain: String, Sendable, CaseIterable {
    case flush, drain
}

public enum InitialSync: String, Sendable, CaseIterable {
    case full, none
}

/// What a sync primary does while its peer is away (docs/replication.md, "Fencing").
/// `dontCare`: it keeps serving, acknowledging writes on its own copy and tracking them (the
/// peer becomes Outdated; "no acknowledged write lost" is the connected pair's guarantee, as
/// in DRBD). `suspendIO`: it waits for its peer. The behaviour is PrimaryNode's.
public enum Fencing: String, Sendable, CaseIterable {
    case dontCare = "dont-care"
    case suspendIO = "suspend-io"
}

public struct PeerSpec: Sendable, Equatable {
    public var name: String
    public var address: String
    public init(name: String, address: String) {
        self.name = name
        self.address = address
    }
}

public struct NBDSpec: Sendable, Equatable {
    /// Unix socket path the export is served on.
    public var socket: String
    /// Optional TCP listen address "host:port".
    public var tcp: String?
    public init(socket: String, tcp: String? = nil) {
        self.socket = socket
        self.tcp = tcp
    }
}

public struct ResourceSpec: Sendable, Equatable {
    public var name: String
    /// An existing block device or regular file.
    public var volume: String
    /// Set when the daemon created (or should create) the backing file of this size.
    public var sizeBytes: UInt64?
    public var role: ResourceRole
    public var peer: PeerSpec?
    public var mode: ReplicationMode
    public var compression: CompressionKind
    public var diskDrain: DiskDrain
    public var initialSync: InitialSync
    public var fencing: Fencing
    /// `after_split_brain`: what two primaries that both wrote while apart do (SplitBrainVerdict).
    /// Changes live with `set`: it is read when the primaries meet.
    public var afterSplitBrain: AfterSplitBrain = .disconnect
    /// `resync_rate`: the cap on resync (copy) traffic, bytes per second; 0: the dynamic
    /// controller. Changes live with `set`.
    public var resyncRateBytesPerSecond: UInt64
    /// `resync_rate_min`: the dynamic controller's floor, bytes per second. Changes live.
    public var resyncRateMinBytesPerSecond: UInt64
    public var asyncBufferBytes: UInt64
    /// `disk_timeout_ms`: a volume or metadata I/O outstanding longer than this fails the
    /// resource's disk (DiskTimeout); 0: off. Changes live.
    public var diskTimeoutMs: UInt32 = 0
    public var nbd: NBDSpec
    /// Where the metadata file lives (docs/metadata.md). Set at `create` (default
    /// `<state_dir>/<name>.md`); nil only in a resource file of before format 3, whose
    /// format-2 files are converted once at start.
    public var metadataPath: String?
    // stage (issue 13 §3): the staged catch-up's journal; nil: the defaults
    // (`<state_dir>/<name>.staging`, StagingJournal.bytesDefault).
    public var stagingPath: String?
    public var stagingBytes: UInt64?
    /// `al_extents`: the primary's activity log holds this many extents (0: none, so a crash
    /// restart copies the whole volume). nil: the metadata's `AL extents max` (512 in a file
    /// created without it, or by a tandemd of before the setting).
    public var alExtents: UInt32?
    /// `bandwidth`: the cap on every replication byte the primary sends, bytes per second;
    /// 0: none (BandwidthGate). Changes live with `set`.
    public var bandwidthBytesPerSecond: UInt64 = 0
    /// `period_s`: the interval between cycles; set exactly when `mode` is `periodic`.
    /// Changes live with `set`.
    public var periodS: UInt32?

    // Internal metadata (issue 13 §1, docs/metadata.md *Internal metadata*).
    /// `metadata: internal`: the metadata lives in the volume's last bytes
    /// (MetadataInternalLayout) and `metadataPath` is nil; the resource serves the data area.
    public var metadataInternal = false

    // The replication profile (issue 16 §1, §2): adaptive mode and the RPO target.
    /// `adaptive_latency_ms`: mode `adaptive` stays sync while the peer's acknowledgements
    /// arrive within this.
    public var adaptiveLatencyMs: UInt32 = ResourceSpec.adaptiveLatencyMsDefault
    /// `adaptive_switch_ms`: how long the latency stays above (or back within) the bound
    /// before the mode switches.
    public var adaptiveSwitchMs: UInt32 = ResourceSpec.adaptiveSwitchMsDefault
    /// `rpo_target_ms`: async writes are paced toward this RPO (nil: no pacing).
    public var rpoTargetMs: UInt32?
    /// `rpo_pacing_max_ms`: the longest pacing delays one write.
    public var rpoPacingMaxMs: UInt32 = ResourceSpec.rpoPacingMaxMsDefault

    // Read balancing (issue 16 §4, PrimaryNode+Reads).
    /// `read_balancing`: where a sync primary's application reads go while its peer is
    /// UpToDate. Changes live with `set`.
    public var readBalancing: ReadBalancing = .preferLocal

    // Consistency groups (issue 16 §3, docs/groups.md).
    /// `group`: the consistency group this resource belongs to (nil: none). Its members
    /// share one epoch sequence; fixed at `create`.
    public var group: String?
    /// The group's id on the wire (0: no group).
    public var groupID: UInt64 { group.map(ConsistencyGroup.id(ofName:)) ?? 0 }
    public static let adaptiveLatencyMsDefault: UInt32 = 50
    public static let adaptiveSwitchMsDefault: UInt32 = 500
    public static let rpoPacingMaxMsDefault: UInt32 = 100

    // The secondary's group commit (issue 16 benchmarks: the RPO/IOPS trade-off).
    /// `group_commit_us`: a secondary flushes at the latest this long after the oldest
    /// unflushed epoch completed, then confirms the flushed epochs to the primary (an async
    /// primary's lag ends there). Applies while this node is secondary.
    public var groupCommitUs: UInt32 = ResourceSpec.groupCommitUsDefault
    public static let groupCommitUsDefault: UInt32 = 2_000

    /// The largest `al_extents`: an activity-log transaction names at most this many extents.
    public static let alExtentsMax: UInt32 = 1000

    public init(
        name: String, volume: String, sizeBytes: UInt64? = nil, role: ResourceRole = .standalone,
        peer: PeerSpec? = nil, mode: ReplicationMode = .sync, compression: CompressionKind = .none,
        diskDrain: DiskDrain = .drain, initialSync: InitialSync = .full, fencing: Fencing = .dontCare,
        resyncRateBytesPerSecond: UInt64 = 0, resyncRateMinBytesPerSecond: UInt64 = 32 << 20, asyncBufferBytes: UInt64 = 256 << 20, nbd: NBDSpec, metadataPath: String? = nil
    ) {
        self.name = name
        self.volume = volume
        self.sizeBytes = sizeBytes
        self.role = role
        self.peer = peer
        self.mode = mode
        self.compression = compression
        self.diskDrain = diskDrain
        self.initialSync = initialSync
        self.fencing = fencing
        self.resyncRateBytesPerSecond = resyncRateBytesPerSecond
        self.resyncRateMinBytesPerSecond = resyncRateMinBytesPerSecond
        self.asyncBufferBytes = asyncBufferBytes
        self.nbd = nbd
        self.metadataPath = metadataPath
    }

    /// Resource names become export names, file names and metric labels.
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 64 else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A)
                || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F || byte == 0x2E
        } && name.utf8.first != 0x2E
    }
}
