// The peer protocol's messages as value types. Layouts are in docs/protocol.md; the codec is
// in WireEncoder/WireDecoder. Nothing here performs I/O.

/// DRBD-style generation identifiers, as exchanged in the handshake.
public struct WireGenerations: Equatable, Sendable {
    public var current: UInt64
    public var bitmap: UInt64
    /// Exactly `WireFormat.generationHistoryCount` entries, newest first.
    public var history: [UInt64]

    public init(current: UInt64, bitmap: UInt64, history: [UInt64] = [0, 0, 0, 0]) {
        precondition(history.count == WireFormat.generationHistoryCount, "history must have 4 entries")
        self.current = current
        self.bitmap = bitmap
        self.history = history
    }
}

/// The version-4 Hello tail: this node's generation identifiers (docs/design-v3.md section
/// 2), which the version-3 Hello's `current`/`bitmap`/`history` fields cannot carry (they hold
/// the session, its basis and the catch-up bases). u64 current, u64 bitmap, u64 changed
/// bytes, u32 flags, u8 `after_split_brain` code, u8 and u16 reserved (0).
public struct WireNodeGenerations: Equatable, Sendable {
    static let bytes = 8 + 8 + 8 + 4 + 4

    public struct Flags: OptionSet, Hashable, Sendable {
        public var rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// The sender's copy is `Outdated` (persisted flag `outdated`).
        public static let outdated = Flags(rawValue: 1 << 0)
        /// Protocol 6, a primary's Hello: this session resolves a split brain by the union of
        /// both bitmaps; the peer sends its bitmap since `bitmap` (BitmapChunk, BitmapDone)
        /// before its ReplicaHello, or refuses with `unrelated-data` (then a full copy).
        public static let splitBrainResync = Flags(rawValue: 1 << 1)
        public static let known: Flags = [.outdated, .splitBrainResync]
    }

    public var current: UInt64
    public var bitmap: UInt64
    /// Bytes the sender wrote since it parted from its peer (split-brain reports).
    public var changedBytes: UInt64
    public var flags: Flags
    /// The sender's `after_split_brain` setting.
    public var afterSplitBrain: AfterSplitBrain

    public init(current: UInt64, bitmap: UInt64, changedBytes: UInt64 = 0, flags: Flags = [],
                afterSplitBrain: AfterSplitBrain = .disconnect) {
        self.afterSplitBrain = afterSplitBrain
        self.current = current
        self.bitmap = bitmap
        self.changedBytes = changedBytes
        self.flags = flags
    }
}

/// First message on a connection, sent by both sides as soon as TLS is up.
public struct WireHello: Equatable, Sendable {
    /// u16 version, u8 role, u8 reserved, u64 size, u64 current, u64 bitmap, 4×u64 history,
    /// u64 promotion, u8 node length, u8 resource length; then the two names.
    static let fixedBytes = 2 + 1 + 1 + 8 + 8 + 8 + 32 + 8 + 1 + 1

    /// Highest protocol version the sender speaks.
    public var protocolVersion: UInt16
    public var role: ResourceRole
    public var nodeName: String
    public var resourceName: String
    public var volumeSizeBytes: UInt64
    public var generations: WireGenerations
    /// The sender's promotion number P (design-v3 section 2; 0 before version 4).
    public var promotionNumber: UInt64
    /// Version 4: the tail after the names. Nil in a Hello of version 3 or older.
    public var node: WireNodeGenerations?

    public init(
        protocolVersion: UInt16 = WireFormat.helloVersion, role: ResourceRole, nodeName: String,
        resourceName: String, volumeSizeBytes: UInt64, generations: WireGenerations, promotionNumber: UInt64,
        node: WireNodeGenerations? = nil
    ) {
        // A version-4 Hello always has the tail (zero when the caller gave none), so that a
        // Hello survives encoding and decoding unchanged.
        self.node = protocolVersion >= WireFormat.generationsVersion ? node ?? WireNodeGenerations(current: 0, bitmap: 0) : nil
        self.protocolVersion = protocolVersion
        self.role = role
        self.nodeName = nodeName
        self.resourceName = resourceName
        self.volumeSizeBytes = volumeSizeBytes
        self.generations = generations
        self.promotionNumber = promotionNumber
    }
}

/// Why a handshake was refused. A struct rather than an enum so that a code from a newer
/// peer is carried through (and logged) instead of dropping the reply.
public struct WireRefusal: RawRepresentable, Equatable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let unsupportedVersion = WireRefusal(rawValue: 1)
    public static let unknownResource = WireRefusal(rawValue: 2)
    public static let unexpectedNode = WireRefusal(rawValue: 3)
    public static let sizeMismatch = WireRefusal(rawValue: 4)
    public static let splitBrain = WireRefusal(rawValue: 5)
    public static let unrelatedData = WireRefusal(rawValue: 6)
    public static let roleConflict = WireRefusal(rawValue: 7)
    public static let stalePromotion = WireRefusal(rawValue: 8)
    public static let busy = WireRefusal(rawValue: 9)
    /// The refusing node's disk for this resource has failed (an older peer shows `code-10`).
    public static let diskFailed = WireRefusal(rawValue: 10)
    public static let other = WireRefusal(rawValue: 255)

    public var description: String {
        switch self {
        case .unsupportedVersion: return "unsupported-version"
        case .unknownResource: return "unknown-resource"
        case .unexpectedNode: return "unexpected-node"
        case .sizeMismatch: return "size-mismatch"
        case .splitBrain: return "split-brain"
        case .unrelatedData: return "unrelated-data"
        case .roleConflict: return "role-conflict"
        case .stalePromotion: return "stale-promotion"
        case .busy: return "busy"
        case .diskFailed: return "disk-failed"
        case .other: return "other"
        default: return "code-\(rawValue)"
        }
    }
}

/// Answer to a Hello: accepted (`refusal == nil`) or refused with a code and a reason.
public struct WireHelloReply: Equatable, Sendable {
    /// u16 version, u8 status (0 accepted, else refusal code), u8 reserved, u16 reason length.
    static let fixedBytes = 6

    /// The version both sides will speak (the lower of the two highest versions).
    public var protocolVersion: UInt16
    public var refusal: WireRefusal?
    /// Human-readable; at most `WireFormat.maxReasonBytes` of UTF-8 (longer is truncated).
    public var reason: String

    public init(
        protocolVersion: UInt16 = UInt16(WireFormat.currentVersion), refusal: WireRefusal? = nil, reason: String = ""
    ) {
        self.protocolVersion = protocolVersion
        self.refusal = refusal
        self.reason = reason
    }

    public var isAccepted: Bool { refusal == nil }
}

public struct WireDataFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The write must be durable on the secondary before it is acknowledged.
    public static let fua = WireDataFlags(rawValue: 1 << 0)
    /// The payload is an LZ4 block that decompresses to `lengthBytes`.
    public static let compressed = WireDataFlags(rawValue: 1 << 1)
    /// The sender acknowledges the write only after the receiver completed it (sync mode):
    /// the receiver may apply it ahead of earlier epochs (docs/replication.md).
    public static let acknowledgedAfterApply = WireDataFlags(rawValue: 1 << 2)
    public static let known: WireDataFlags = [.fua, .compressed, .acknowledgedAfterApply]
}

/// The fixed fields of a Data message.
public struct WireDataHeader: Equatable, Sendable {
    public var epoch: UInt64
    /// Consecutive per connection: each Data message carries the previous one's plus one.
    public var sequence: UInt64
    public var offsetBytes: UInt64
    /// Uncompressed length of the block.
    public var lengthBytes: UInt32
    public var flags: WireDataFlags
    /// CRC32C of the uncompressed block; the secondary checks it before writing.
    public var crc32c: UInt32

    public init(
        epoch: UInt64, sequence: UInt64, offsetBytes: UInt64, lengthBytes: UInt32,
        flags: WireDataFlags = [], crc32c: UInt32
    ) {
        self.epoch = epoch
        self.sequence = sequence
        self.offsetBytes = offsetBytes
        self.lengthBytes = lengthBytes
        self.flags = flags
        self.crc32c = crc32c
    }
}

/// A Data message. When decoded, `payload` is a slice of the decoder's buffer: drop it before
/// feeding the decoder again, or the next feed copies the buffer.
public struct WireData: Equatable, Sendable {
    public var header: WireDataHeader
    public var payload: ArraySlice<UInt8>
    /// Set when the transport placed the payload (this many bytes) in a buffer of its own
    /// instead of the decoder's (WireDecoder.beginPlacing); `payload` is then empty.
    public var placedPayloadBytes: Int?

    public init(header: WireDataHeader, payload: ArraySlice<UInt8>, placedPayloadBytes: Int? = nil) {
        self.header = header
        self.payload = payload
        self.placedPayloadBytes = placedPayloadBytes
    }
}

public enum WireMessage: Equatable, Sendable {
    case hello(WireHello)
    case helloReply(WireHelloReply)
    case data(WireData)
    /// Closes `epoch`: it held `writeCount` Data messages. Later Data carries a larger epoch.
    case epochBarrier(epoch: UInt64, writeCount: UInt32)
    /// The secondary completed (not necessarily flushed) this write.
    case dataAck(epoch: UInt64, sequence: UInt64)
    /// The secondary's disk holds every write of every epoch up to and including `epoch`.
    case durableAck(epoch: UInt64)
    /// Asks the secondary to make everything through `epoch` durable now and say so.
    case flushRequest(epoch: UInt64)
    case ping(nonce: UInt64)
    case pong(nonce: UInt64)
    /// Everything after the secondary's durable epoch has been re-sent, through this
    /// sequence (0: nothing was re-sent). A restarted secondary is consistent again once it
    /// has applied through it.
    case resendComplete(throughSequence: UInt64)
    /// The initial full copy is durable on the receiver through this sequence: its volume
    /// now equals the sender's history, so it may call itself UpToDate.
    case syncComplete(throughSequence: UInt64)
    /// Secondary → primary: planned failover; stop taking writes, drain, demote, answer Demoted.
    case failoverRequest(promotion: UInt64)
    /// Primary → secondary: every write through `throughSequence` is durable on the receiver and
    /// the sender is now secondary; the receiver may promote itself.
    case demoted(throughSequence: UInt64)
    /// The secondary's first frame of the replication stream (version 2): what it recorded
    /// as durable in the session it holds, and its own copy's state as it starts.
    case replicaHello(WireReplicaHello)
    /// Secondary → primary (protocol 5): the staged catch-up of `session` outgrew the
    /// journal and goes on in place; the sender's copy is Inconsistent until SyncComplete.
    case catchUpInPlace(session: UInt64)
    /// Secondary → primary (protocol 7): the SyncComplete of `session` is durable here — a
    /// staged catch-up committed and applied to the volume, or the record says synced.
    case caughtUp(session: UInt64)
    /// Primary → secondary (protocol 4): digest these bytes of your volume (`offsetBytes`
    /// and `lengthBytes` multiples of 4 KiB, length 1 ... `digestRegionBytesMax`).
    case digestRequest(offsetBytes: UInt64, lengthBytes: UInt64)
    /// Secondary → primary: the digest of the region a DigestRequest named.
    case digests(offsetBytes: UInt64, lengthBytes: UInt64, digest: RegionDigest)
    /// Online resize (protocol 5): primary → secondary the request, secondary → primary the
    /// answer (WireResize).
    case resize(WireResize)
    /// Split-brain resolve (protocol 6): part of the sender's bitmap of changes since parting.
    case bitmapChunk(WireBitmapChunk)
    /// Ends the sender's chunks: the total of set bits they carried (checked).
    case bitmapDone(setBlocks: UInt64)
    /// Read balancing (protocol 6): primary → secondary, read this region of your volume;
    /// secondary → primary, its bytes or why not (WireRead).
    case readRequest(WireReadRequest)
    case readReply(WireReadReply)
    /// Consistency group (docs/groups.md), primary → secondary: group epoch `epoch` of the
    /// group `groupID` is closed for this member (none of its writes of an epoch ≤ it follows).
    case groupBarrier(groupID: UInt64, epoch: UInt64)
    /// Primary → secondary (protocol 9), right before the EpochBarrier of `epoch`: the
    /// primary's wall-clock time (ns since the Unix epoch, its own clock) when it closed it.
    case epochTime(epoch: UInt64, wallClockNs: UInt64)
    /// Primary → secondary (protocol 10): the online verify or digest compare it ran on this
    /// link ended (completed, aborted or stopped); no DigestRequest of it follows. No body.
    case verifyEnd

    public var type: WireMessageType {
        switch self {
        case .hello: return .hello
        case .helloReply: return .helloReply
        case .data: return .data
        case .epochBarrier: return .epochBarrier
        case .dataAck: return .dataAck
        case .durableAck: return .durableAck
        case .flushRequest: return .flushRequest
        case .ping: return .ping
        case .pong: return .pong
        case .resendComplete: return .resendComplete
        case .syncComplete: return .syncComplete
        case .failoverRequest: return .failoverRequest
        case .demoted: return .demoted
        case .replicaHello: return .replicaHello
        case .catchUpInPlace: return .catchUpInPlace
        case .caughtUp: return .caughtUp
        case .digestRequest: return .digestRequest
        case .digests: return .digests
        case .resize: return .resize
        case .bitmapChunk: return .bitmapChunk
        case .bitmapDone: return .bitmapDone
        case .readRequest: return .readRequest
        case .readReply: return .readReply
        case .groupBarrier: return .groupBarrier
        case .epochTime: return .epochTime
        case .verifyEnd: return .verifyEnd
        }
    }
}

extension ResourceRole {
    var wireCode: UInt8 {
        switch self {
        case .standalone: return 0
        case .primary: return 1
        case .secondary: return 2
        }
    }

    init?(wireCode: UInt8) {
        switch wireCode {
        case 0: self = .standalone
        case 1: self = .primary
        case 2: self = .secondary
        default: return nil
        }
    }
}

/// A disk state word as one byte on the wire. A struct rather than an enum so that a code
/// from a newer peer is carried through (and refused by the receiver's rules) rather than
/// failing the decode.
public struct WireDiskState: RawRepresentable, Equatable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let unknown = WireDiskState(rawValue: 0)
    public static let inconsistent = WireDiskState(rawValue: 1)
    public static let outdated = WireDiskState(rawValue: 2)
    public static let consistent = WireDiskState(rawValue: 3)
    public static let upToDate = WireDiskState(rawValue: 4)
    public static let failed = WireDiskState(rawValue: 5)
}

/// ReplicaHello (type 14): u64 durable epoch, u8 disk state, 7 reserved bytes (0).
public struct WireReplicaHello: Equatable, Sendable {
    /// Every write of every epoch up to this one of the session the secondary holds is on its
    /// stable storage (0: none).
    public var durableThroughEpoch: UInt64
    /// The secondary's copy as it starts this connection: `inconsistent` after its own crash
    /// (until the re-send is applied) or while a full copy is due; `consistent` otherwise.
    public var diskState: WireDiskState

    public init(durableThroughEpoch: UInt64, diskState: WireDiskState) {
        self.durableThroughEpoch = durableThroughEpoch
        self.diskState = diskState
    }
}
