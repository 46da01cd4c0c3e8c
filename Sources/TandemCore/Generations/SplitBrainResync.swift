// SplitBrainResync: how a resolved split brain is resynced (issue 14 §2). The survivor's copy
// and the victim's differ only in the regions either changed since they parted from their
// common generation, so the resync set is the union of both sides' bitmaps of those changes,
// copied from the survivor (the victim's own changes are overwritten with the survivor's
// data). That holds only when both bitmaps are known to cover everything since the same
// generation; otherwise the only safe resync is a full copy, and the plan says why (status
// `resync_reason`, the event). Pure: the driver supplies the facts and carries out the plan.

/// What one side knows about its own changes since parting.
public struct PartedChanges: Sendable {
    /// The generation both shared when this side began tracking (its B; 0 = none).
    public var partingGeneration: UInt64
    /// The regions this side changed since then, or nil when they are not known.
    public var bitmap: DirtyBitmap?
    /// Why `bitmap` is nil (metadata re-initialised, a crash lost it, ...).
    public var lostReason: String

    public init(partingGeneration: UInt64, bitmap: DirtyBitmap?, lostReason: String = "") {
        self.partingGeneration = partingGeneration
        self.bitmap = bitmap
        self.lostReason = lostReason
    }
}

public enum SplitBrainResyncPlan: Equatable, Sendable {
    /// Exchange bitmaps (BitmapChunk / BitmapDone) and resync their union.
    case union
    /// The bitmaps cannot cover the divergence: copy the whole volume, for this reason.
    case fullCopy(reason: String)

    public var word: String {
        switch self {
        case .union: return "split-brain-union"
        case .fullCopy: return "split-brain-full-copy"
        }
    }
}

/// The resync set and what it is made of (status and events: bytes each side changed, the
/// union, and later what was moved).
public struct SplitBrainResyncSet: Sendable {
    public var bitmap: DirtyBitmap
    public var survivorChangedBytes: UInt64
    public var victimChangedBytes: UInt64
    /// A returned primary's regions compared by digest (ReturnedPrimaryCompare), else empty.
    public var comparedRegions: [ChecksumRegion] = []
    public var unionBytes: UInt64 { bitmap.outOfSyncBytes }
}

public enum SplitBrainResync {
    /// Decided by the survivor before it asks for the victim's bitmap. `peerHelloVersion`: the
    /// highest version the victim's Hello names; `victimPartingGeneration`: the B its Hello
    /// tail states (0 when it has none: no tail, or its bitmap was lost).
    public static func plan(survivor: PartedChanges, peerHelloVersion: UInt16,
                            victimPartingGeneration: UInt64) -> SplitBrainResyncPlan {
        guard peerHelloVersion >= WireFormat.bitmapExchangeVersion else {
            return .fullCopy(reason: "the peer speaks protocol \(peerHelloVersion), older than "
                + "\(WireFormat.bitmapExchangeVersion): it cannot send its bitmap, so the whole volume is copied")
        }
        guard survivor.partingGeneration != 0 else {
            return .fullCopy(reason: "this node tracks no generation since parting: its bitmap does not cover the split brain")
        }
        guard survivor.bitmap != nil else {
            return .fullCopy(reason: "this node's bitmap since parting is lost (\(survivor.lostReason)): the whole volume is copied")
        }
        guard victimPartingGeneration != 0 else {
            return .fullCopy(reason: "the peer has no bitmap since parting (its metadata was re-initialised or lost it): "
                + "the whole volume is copied")
        }
        guard victimPartingGeneration == survivor.partingGeneration else {
            return .fullCopy(reason: "the two nodes parted from different generations (here "
                + "\(hex(survivor.partingGeneration)), on the peer \(hex(victimPartingGeneration))): "
                + "their bitmaps do not cover the divergence, so the whole volume is copied")
        }
        return .union
    }

    /// The union of both sides' changes, in the survivor's geometry (the victim's bitmap may
    /// use another block size: its regions are added by bytes, rounded outward).
    public static func union(survivor: DirtyBitmap, victim: DirtyBitmap) -> SplitBrainResyncSet {
        precondition(survivor.volumeSizeBytes == victim.volumeSizeBytes, "bitmaps of volumes of different size")
        var set = survivor
        var block: UInt64 = 0
        while let run = victim.nextDirtyRun(from: block) {
            let offset = run.first * victim.blockBytes
            let length = min(run.count * victim.blockBytes, victim.volumeSizeBytes - offset)
            _ = set.setRange(offsetBytes: offset, lengthBytes: length)
            block = run.end
        }
        return SplitBrainResyncSet(bitmap: set, survivorChangedBytes: survivor.outOfSyncBytes,
                                   victimChangedBytes: victim.outOfSyncBytes)
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
