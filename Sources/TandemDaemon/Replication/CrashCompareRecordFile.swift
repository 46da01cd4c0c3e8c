// CrashCompareRecordFile: the regions a crash restart compares by digest (issue 13 §4;
// docs/replication.md, *Checksum resync of the extents*, "A crash during the compare"), kept
// in `<state_dir>/<name>.crash-compare` so that a second crash before the compare ends
// resumes it instead of copying its regions whole. Layout: the parted bitmap's
// (PartedBitmapCodec: magic, the key, the volume's bytes, the regions as bitmap frames,
// CRC32C; docs/metadata.md), whose "parting generation" holds the activity-log transaction
// the compare's plan came from. Written whole and durably (temporary file, fsync, rename,
// directory fsync) at open, before the session that runs the compare starts; removed when
// the compare ends with every region compared, and at any open that does not take it. What
// it names is only ever compared, never cleared unread, so a record that is stale or lost
// costs time or a copy, never a region. Loop thread only.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import TandemCore

enum CrashCompareRecordFile {
    static func path(stateDir: String, name: String) -> String { "\(stateDir)/\(name).crash-compare" }

    /// Keeps `regions` (compared from the ring's transaction `transaction`), durably.
    static func write(_ regions: [ChecksumRegion], transaction: UInt64, geometry: DirtyBitmap,
                      to path: String) throws(ResourceStoreError) {
        precondition(transaction != 0, "transactions are numbered from 1")
        let record = ChecksumResync.record(regions, geometry: geometry)
        try PartedBitmapFile.write(PartedBitmap(partingGeneration: transaction, bitmap: record), to: path)
    }

    /// The regions an interrupted compare still owed, if the record speaks for a compare
    /// started at or before the ring's newest transaction `newest`; nil when there is none.
    /// Throws (the reason) when it cannot be proven or belongs to another ring or geometry.
    static func load(from path: String, newest: UInt64, geometry: DirtyBitmap) throws(ResourceStoreError) -> DirtyBitmap? {
        guard let loaded = try PartedBitmapFile.load(from: path, volumeSizeBytes: geometry.volumeSizeBytes,
                                                     localBlockBytes: geometry.blockBytes)
        else { return nil }
        guard loaded.partingGeneration <= newest else {
            throw ResourceStoreError("\(path): names activity-log transaction \(loaded.partingGeneration), after the ring's newest (\(newest))")
        }
        guard loaded.bitmap.blockBytes == geometry.blockBytes else {
            throw ResourceStoreError("\(path): regions of \(loaded.bitmap.blockBytes)-byte blocks, the bitmap's are \(geometry.blockBytes)")
        }
        return loaded.bitmap
    }

    /// Removes the record (absent: nothing to do); a failure is logged (the record then
    /// speaks for regions a later crash compares once more, nothing worse).
    static func remove(_ path: String, logger: Logger) {
        guard access(path, F_OK) == 0 else { return }
        do throws(ResourceStoreError) { try PartedBitmapFile.remove(path) } catch {
            logger.error("removing the compare's record failed", metadata: ["error": "\(error)"])
        }
    }
}
