// ChecksumResync: after a primary crash, the activity log's extents are compared by digest
// instead of copied whole (issue 13 §4; docs/replication.md, *Crash restarts*). The extents
// name where the crashed primary may have written without its peer; in sync, almost all of
// those writes reached the peer too, so most of the extents' bytes are already identical on
// both copies. Each extent is cut into regions (`regionBytesDefault`); a region the durable
// bitmap pages mark as a whole is copied as any dirty region, every other one is compared: this
// node digests its copy (RegionDigest, as online verify does), asks the peer for its digest
// (DigestRequest), and a region whose digests differ stays dirty and rides the catch-up's
// copy; one whose digests agree leaves the bitmap (the peer holds those bytes).
//
// This type holds the plan and the walk's state; PrimaryNode+Checksum drives it (the region
// lock, the stream's held writes, the throttle). The regions stay set in the node's bitmap
// until compared, so everything that persists the bitmap (a stop's seal, the activity log's
// pages) still covers them: a stop before the compare ends copies them, never misses them.
// A second crash resumes it: the restart keeps the regions it compares in a record
// (`record`), the regions found the same are cleared on the bitmap pages as the walk goes
// (PrimaryNode+Checksum, checkpoints), and the next crash restart compares again every
// recorded region the pages still mark (`plan(…resuming:)`). Pure: no I/O, no clock.

/// A region of the volume compared as one digest.
public struct ChecksumRegion: Sendable, Hashable {
    public var offsetBytes: UInt64
    public var lengthBytes: UInt64

    public init(offsetBytes: UInt64, lengthBytes: UInt64) {
        self.offsetBytes = offsetBytes
        self.lengthBytes = lengthBytes
    }

    public var endBytes: UInt64 { offsetBytes + lengthBytes }
}

/// The regions a compare found the same whose cleared bits are not on the bitmap pages yet,
/// and the page write in flight that carries the last ones (0: none).
struct ChecksumCheckpoint: Sendable {
    var pages: [Int] = []
    var bytes: UInt64 = 0
    var ticket: UInt64 = 0
}

/// What the compare of the activity log's extents did (status `checksum_resync`).
public struct ChecksumResyncProgress: Sendable, Hashable {
    /// Bytes of the regions to compare, compared so far, and found to differ (then copied).
    public var totalBytes: UInt64
    public var checkedBytes: UInt64
    public var differingBytes: UInt64
    /// Bytes of regions given up to the copy unasked: an application write came while they
    /// waited to be asked (copied whole, as a region that differs is).
    public var givenUpBytes: UInt64
    public var running: Bool
    /// Why it was given up (its regions left dirty: copied whole); nil: it ran, or runs.
    public var abandonedBecause: String?

    public init(totalBytes: UInt64, checkedBytes: UInt64, differingBytes: UInt64, running: Bool,
                abandonedBecause: String?, givenUpBytes: UInt64 = 0) {
        self.totalBytes = totalBytes
        self.checkedBytes = checkedBytes
        self.differingBytes = differingBytes
        self.givenUpBytes = givenUpBytes
        self.running = running
        self.abandonedBecause = abandonedBecause
    }
}

public struct ChecksumResync: Sendable {
    /// The region a digest covers: small enough that a difference ships little, large enough
    /// that the round trips stay few (a 4 MiB extent is 32 regions).
    public static let regionBytesDefault: UInt64 = 128 << 10
    /// Regions compared at once: each holds a local read buffer and a DigestRequest the peer
    /// answers (the secondary takes `SecondaryNode.digestReadsMax`, 8; half of it leaves
    /// room for reads of a previous link still finishing there).
    public static let regionsInFlightMax = 4
    /// Bytes found the same between two writes of their bitmap pages: one 4 KiB page write
    /// and a data sync per 4 MiB compared (an extent, by default) at most.
    public static let checkpointBytesDefault: UInt64 = 4 << 20

    /// The outcome of one region's compare.
    public enum Outcome: Sendable, Equatable {
        case same(ChecksumRegion)
        case differs(ChecksumRegion)
        /// Not compared: a write wanted it before it was asked (`giveUp`); copied whole.
        case givenUp(ChecksumRegion)
    }

    /// A region taken from the plan: locked, then asked, then answered twice.
    struct Compare: Sendable {
        var region: ChecksumRegion
        var asked = false
        var localReadPending = false
        var localDigest: RegionDigest?
        var peerDigest: RegionDigest?
        /// Its link or session went away: answers are dropped, and it is taken again once
        /// its local read is back.
        var abandoned = false
    }

    /// The regions to compare, ascending, and the first not yet taken.
    let regions: [ChecksumRegion]
    /// A returned primary's set compared by its promoted peer (ReturnedPrimaryCompare): inside
    /// a copy the activity log treats as a full copy (every block marked once), which then
    /// does not mean the volume is copied whole.
    public internal(set) var returnedPrimary = false
    private var next = 0
    /// Regions taken and abandoned: taken again before `next`.
    private var retry: [ChecksumRegion] = []
    private(set) var inFlight: [Compare] = []
    public let totalBytes: UInt64
    public private(set) var checkedBytes: UInt64 = 0
    public private(set) var differingBytes: UInt64 = 0
    public private(set) var givenUpBytes: UInt64 = 0

    /// The plan (the decision of which regions to compare): every region of the crash's
    /// extents that the durable bitmap does not mark as a whole. `dirty` is the bitmap the
    /// pages gave (empty when the transaction says they do not count). Regions are aligned to
    /// `regionBytes` and never cross an extent's end.
    public static func plan(extents: [ActivityLog.Region], dirty: DirtyBitmap, regionBytes: UInt64) -> [ChecksumRegion] {
        precondition(regionBytes > 0 && regionBytes % dirty.blockBytes == 0, "a region of whole bitmap blocks")
        var regions: [ChecksumRegion] = []
        for extent in extents {
            let end = min(extent.offsetBytes + extent.lengthBytes, dirty.volumeSizeBytes)
            var offset = extent.offsetBytes
            while offset < end {
                let regionEnd = min((offset / regionBytes + 1) * regionBytes, end)
                let blocks = dirty.blocksTouched(offsetBytes: offset, lengthBytes: regionEnd - offset)
                if dirty.setCount(in: blocks) < blocks.count {
                    regions.append(ChecksumRegion(offsetBytes: offset, lengthBytes: regionEnd - offset))
                }
                offset = regionEnd
            }
        }
        return regions
    }

    /// The plan of a crash restart whose crash interrupted an earlier restart's compare:
    /// `plan(extents:dirty:regionBytes:)`, and every region of `resumed` (the regions that
    /// compare had to compare, kept in its record) that `dirty` still marks whole — compared
    /// again instead of copied whole. The durable pages mark such a region because that
    /// session wrote its bitmap with the regions still set; a region it found the same was
    /// cleared on the pages (`checksumCheckpointBytes`), one it found different is compared
    /// once more and copied. Comparing a region is sound whatever set its bits: the restart
    /// flushed its volume first, so equal digests mean both copies hold the region's bytes. A
    /// region the pages mark only in part is left to the copy (those bits alone move).
    /// `resumed` of another geometry is ignored.
    public static func plan(extents: [ActivityLog.Region], dirty: DirtyBitmap, regionBytes: UInt64,
                            resuming resumed: DirtyBitmap?) -> [ChecksumRegion] {
        let regions = plan(extents: extents, dirty: dirty, regionBytes: regionBytes)
        guard let resumed, resumed.blockBytes == dirty.blockBytes, resumed.volumeSizeBytes == dirty.volumeSizeBytes
        else { return regions }
        var merged = regions
        var block: UInt64 = 0
        while let run = resumed.nextDirtyRun(from: block) {
            block = run.end
            var offset = run.first * dirty.blockBytes
            let end = min(run.end * dirty.blockBytes, dirty.volumeSizeBytes)
            while offset < end {
                let regionEnd = min((offset / regionBytes + 1) * regionBytes, end)
                let region = ChecksumRegion(offsetBytes: offset, lengthBytes: regionEnd - offset)
                let blocks = dirty.blocksTouched(offsetBytes: offset, lengthBytes: region.lengthBytes)
                if dirty.setCount(in: blocks) == blocks.count && !overlapsAny(regions, region) { merged.append(region) }
                offset = regionEnd
            }
        }
        return merged.sorted { $0.offsetBytes < $1.offsetBytes }
    }

    /// The plan of a catch-up after a stop that ended a compare early (a `disable`, a daemon
    /// stop, any stop of the session; no crash): every region of `resumed` (the compare's
    /// record) that `tracked` (the bitmap the stop sealed, and the writes tracked since) still
    /// marks whole — compared, not copied. The stop sealed the node's bitmap with the regions
    /// not compared yet (and those found to differ) still set and those found the same clear,
    /// so these are what the compare still owed; a region the bitmap marks only in part was
    /// found the same and written since, and only those blocks move. As after a second crash,
    /// comparing is sound whatever marked the region, once the volume is flushed (the driver's
    /// start does so before the session): equal digests mean both copies hold its bytes.
    public static func plan(afterStop tracked: DirtyBitmap, regionBytes: UInt64, resuming resumed: DirtyBitmap?) -> [ChecksumRegion] {
        plan(extents: [], dirty: tracked, regionBytes: regionBytes, resuming: resumed)
    }

    /// The regions' bytes.
    public static func bytes(of regions: [ChecksumRegion]) -> UInt64 { regions.reduce(0) { $0 + $1.lengthBytes } }

    /// Whether `region` overlaps one of `sorted` (ascending, not overlapping).
    private static func overlapsAny(_ sorted: [ChecksumRegion], _ region: ChecksumRegion) -> Bool {
        var low = 0
        var high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle].endBytes <= region.offsetBytes { low = middle + 1 } else { high = middle }
        }
        return low < sorted.count && sorted[low].offsetBytes < region.endBytes
    }

    /// The regions as a bitmap of `geometry`'s blocks (the record a crash restart keeps of
    /// the compare it starts: `plan(…resuming:)` reads it back after a second crash).
    public static func record(_ regions: [ChecksumRegion], geometry: DirtyBitmap) -> DirtyBitmap {
        var record = DirtyBitmap(volumeSizeBytes: geometry.volumeSizeBytes, blockBytes: geometry.blockBytes)
        for region in regions { _ = record.setRange(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes) }
        return record
    }

    /// `regions`: ascending, not overlapping (as `plan` gives them).
    public init(regions: [ChecksumRegion]) {
        for index in regions.indices.dropFirst() {
            precondition(regions[index - 1].endBytes <= regions[index].offsetBytes, "checksum regions out of order")
        }
        self.regions = regions
        totalBytes = Self.bytes(of: regions)
        inFlight.reserveCapacity(Self.regionsInFlightMax)
    }

    /// Every region is compared or given up.
    public var isDone: Bool { checkedBytes + givenUpBytes == totalBytes }

    /// Bytes not compared yet: at most this many of the bitmap's set bytes lie in regions the
    /// copy must leave alone.
    public var pendingBytes: UInt64 { totalBytes - checkedBytes - givenUpBytes }

    public var progress: ChecksumResyncProgress {
        ChecksumResyncProgress(totalBytes: totalBytes, checkedBytes: checkedBytes, differingBytes: differingBytes,
                               running: !isDone, abandonedBecause: nil, givenUpBytes: givenUpBytes)
    }

    /// The next region to compare, now in flight (locked, not asked); nil when none is left
    /// to take or `regionsInFlightMax` are in flight.
    mutating func take() -> ChecksumRegion? {
        guard inFlight.count < Self.regionsInFlightMax else { return nil }
        let region: ChecksumRegion
        if !retry.isEmpty {
            region = retry.removeFirst()
        } else if next < regions.count {
            region = regions[next]
            next += 1
        } else {
            return nil
        }
        inFlight.append(Compare(region: region))
        return region
    }

    /// The region at `index` is asked of the peer now, and read here.
    mutating func markAsked(_ index: Int) {
        precondition(!inFlight[index].asked && !inFlight[index].abandoned)
        inFlight[index].asked = true
        inFlight[index].localReadPending = true
    }

    /// Gives up the regions in flight that overlap [start, end) and are not asked yet: they
    /// leave the compare (unlocked; their bits stay set, so the copy ships them whole). A
    /// region waits to be asked until no write the stream holds overlaps it, and a member of
    /// a consistency group may hold such a write for as long as another member is away
    /// (the secondary's group barrier): an application write must not wait for that. An
    /// asked region is answered on this link (the peer reads it at once) and stays locked.
    mutating func giveUp(overlapping start: UInt64, _ end: UInt64) -> [ChecksumRegion] {
        var given: [ChecksumRegion] = []
        inFlight.removeAll { compare in
            guard !compare.asked, !compare.abandoned, start < compare.region.endBytes, compare.region.offsetBytes < end
            else { return false }
            given.append(compare.region)
            return true
        }
        givenUpBytes += given.reduce(0) { $0 + $1.lengthBytes }
        return given
    }

    /// The link or the session went away: what was asked will not be answered. Regions not
    /// asked yet are simply put back.
    mutating func abandonInFlight() {
        var kept: [Compare] = []
        for var compare in inFlight {
            if compare.localReadPending {
                compare.abandoned = true
                kept.append(compare)
            } else {
                retry.append(compare.region)
            }
        }
        inFlight = kept
        retry.sort { $0.offsetBytes < $1.offsetBytes }
    }

    /// This node's digest of a region it asked for (nil: the read failed). Returns whether the
    /// read was the compare's, and the outcome once both digests are in.
    mutating func localDigest(offsetBytes: UInt64, _ digest: RegionDigest?) -> (owned: Bool, outcome: Outcome?) {
        guard let index = inFlight.firstIndex(where: { $0.region.offsetBytes == offsetBytes && $0.localReadPending })
        else { return (false, nil) }
        inFlight[index].localReadPending = false
        if inFlight[index].abandoned {
            retry.append(inFlight.remove(at: index).region)
            retry.sort { $0.offsetBytes < $1.offsetBytes }
            return (true, nil)
        }
        inFlight[index].localDigest = digest
        return (true, settle(index))
    }

    /// The peer's digest of a region. Returns whether it answered a compare, and the outcome
    /// once both digests are in.
    mutating func peerDigest(_ region: ChecksumRegion, _ digest: RegionDigest) -> (owned: Bool, outcome: Outcome?) {
        guard let index = inFlight.firstIndex(where: { $0.region == region && $0.asked && !$0.abandoned && $0.peerDigest == nil })
        else { return (false, nil) }
        inFlight[index].peerDigest = digest
        return (true, settle(index))
    }

    private mutating func settle(_ index: Int) -> Outcome? {
        guard let local = inFlight[index].localDigest, let peer = inFlight[index].peerDigest else { return nil }
        let region = inFlight.remove(at: index).region
        checkedBytes += region.lengthBytes
        guard local.agrees(withPeer: peer) else {
            differingBytes += region.lengthBytes
            return .differs(region)
        }
        return .same(region)
    }

    /// A local read failed: the region counts as differing (it stays dirty; the node's disk
    /// failure decides the rest).
    mutating func localReadFailed(offsetBytes: UInt64) -> ChecksumRegion? {
        guard let index = inFlight.firstIndex(where: { $0.region.offsetBytes == offsetBytes && $0.localReadPending })
        else { return nil }
        let region = inFlight.remove(at: index).region
        checkedBytes += region.lengthBytes
        differingBytes += region.lengthBytes
        return region
    }

    /// The lowest range of regions not compared yet that overlaps [start, end), as one span
    /// of adjacent regions: the copy skips it (or stops before it). nil: none overlaps.
    func pendingSpan(overlapping start: UInt64, _ end: UInt64) -> ChecksumRegion? {
        var best: ChecksumRegion?
        func consider(_ region: ChecksumRegion) {
            guard region.offsetBytes < end, start < region.endBytes else { return }
            if best == nil || region.offsetBytes < best!.offsetBytes { best = region }
        }
        // Abandoned regions in flight still wait for their read: they are taken again.
        for compare in inFlight { consider(compare.region) }
        for region in retry { consider(region) }
        // The first region not yet taken that ends after `start` (binary search), and those
        // adjacent to it.
        var low = next
        var high = regions.count
        while low < high {
            let middle = (low + high) / 2
            if regions[middle].endBytes <= start { low = middle + 1 } else { high = middle }
        }
        if low < regions.count, regions[low].offsetBytes < end {
            var span = regions[low]
            var index = low + 1
            while index < regions.count, regions[index].offsetBytes == span.endBytes {
                span.lengthBytes += regions[index].lengthBytes
                index += 1
            }
            consider(span)
        }
        return best
    }

    /// A region in flight (locked: writes to it wait) overlaps [start, end).
    func locks(_ start: UInt64, _ end: UInt64) -> Bool {
        inFlight.contains { !$0.abandoned && start < $0.region.endBytes && $0.region.offsetBytes < end }
    }
}
