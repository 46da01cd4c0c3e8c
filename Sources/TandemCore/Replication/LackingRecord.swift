// LackingRecord: what the record says about the regions a diskless primary's disk lacks, and
// what a start with the record's `local-lacks-writes` flag therefore pulls from the peer
// (issue 13 §4: a restart never copies the whole volume when the record can say less).
//
// The regions live in the metadata file's bitmap pages, marked as this disk's by the flag
// `local-lacking-regions` (docs/metadata.md): the direction is the opposite of the bitmap the
// activity log and a stop's seal keep, which say what the *peer* lacks. Every bit is durable
// before the write it covers goes through the peer (PrimaryNode+DisklessRegions), so the
// pages are a superset of what the disk lacks. A record that cannot prove them (the flag
// alone, a page that fails its proof) pulls the whole volume, and says why. Pure: no I/O.

/// The record's account of the regions this disk lacks, as the driver read it at start.
public enum LackingRecord: Sendable {
    /// The flag only: the record never kept the regions (an older daemon, a record whose
    /// page write failed, a failed flush that lost everything cached).
    case flagOnly
    /// The proven pages (the metadata file's geometry, not the node's lacking bitmap's).
    case regions(DirtyBitmap)
    /// The record says it keeps them, but a page cannot be proven: why.
    case unproven(String)
    /// The operator said the disk holds none of it (a replaced disk): why.
    case wholeVolume(String)
}

/// What a start pulls: `lacking` (nil: the whole volume, `wholeVolumeBecause` says why), and
/// the bits the record holds durably in the node's geometry (nil: it keeps no regions).
public struct LackingStart: Sendable {
    public var lacking: DirtyBitmap?
    public var durable: DirtyBitmap?
    public var wholeVolumeBecause: String?

    /// `kept`: the set the last node of this process left at its stop (exact; nil after a
    /// restart); `blockBytes`: the lacking bitmap's block (LocalDiskResync.blockBytes).
    public static func decide(volumeSizeBytes: UInt64, blockBytes: UInt64, kept: DirtyBitmap?,
                              record: LackingRecord) -> LackingStart {
        let keptFits = kept.map { $0.blockBytes == blockBytes && $0.volumeSizeBytes == volumeSizeBytes } ?? false
        switch record {
        case .regions(let pages) where pages.volumeSizeBytes == volumeSizeBytes:
            let durable = Self.convert(pages, blockBytes: blockBytes)
            // The pages are a superset (pulled regions stay set until the flag is cleared):
            // this process's own set, when it has one, is exact.
            return LackingStart(lacking: keptFits ? kept : durable, durable: durable, wholeVolumeBecause: nil)
        case .regions(let pages):
            let why = "the record's regions describe a \(pages.volumeSizeBytes)-byte volume, this one has \(volumeSizeBytes) bytes"
            return LackingStart(lacking: keptFits ? kept : nil, durable: nil, wholeVolumeBecause: keptFits ? nil : why)
        case .flagOnly:
            let why = "the record says this disk lacks writes but not which regions (it kept the flag only)"
            return LackingStart(lacking: keptFits ? kept : nil, durable: nil, wholeVolumeBecause: keptFits ? nil : why)
        case .unproven(let reason):
            let why = "the record's regions cannot be proven: \(reason)"
            return LackingStart(lacking: keptFits ? kept : nil, durable: nil, wholeVolumeBecause: keptFits ? nil : why)
        case .wholeVolume(let reason):
            return LackingStart(lacking: nil, durable: nil, wholeVolumeBecause: reason)
        }
    }

    /// `pages`' set regions in a bitmap of `blockBytes` blocks (by byte ranges: every block
    /// touched by a set region is set, so nothing is lost to a coarser or finer geometry).
    public static func convert(_ pages: DirtyBitmap, blockBytes: UInt64) -> DirtyBitmap {
        var converted = DirtyBitmap(volumeSizeBytes: pages.volumeSizeBytes, blockBytes: blockBytes)
        var block: UInt64 = 0
        while let run = pages.nextDirtyRun(from: block) {
            let offset = run.first * pages.blockBytes
            let length = min(run.count * pages.blockBytes, pages.volumeSizeBytes - offset)
            converted.setRange(offsetBytes: offset, lengthBytes: length)
            block = run.end
        }
        return converted
    }
}
