// ReturnedPrimaryCompare: which of a returned primary's regions the promoted node compares by
// digest instead of copying (issue 13 §4, issue 14; docs/replication.md, *The old primary
// returns*). The returned node's set is what it had not confirmed when it stopped: mostly its
// activity log's extents after a crash, whole 4 MiB extents of which, under sync, nearly every
// byte already reached the promoted node. Outside the promoted node's own changes since its
// promotion, its copy still holds what it held when it was promoted, so a region there whose
// digests agree on both nodes needs no copy, and one that differs is copied (ChecksumResync
// does the comparing, PrimaryNode+Checksum drives it). A region that touches the promoted
// node's own changes is copied whole: its data differs by construction. Pure: no I/O, no clock.

public enum ReturnedPrimaryCompare {
    /// The regions to compare, ascending, each of whole blocks of `geometry` (the promoted
    /// node's copy bitmap), at most `regionBytes` long, aligned to it and never crossing a run
    /// of the returned node's set: `returned` (any block size, rounded outward to `geometry`'s
    /// blocks) minus every region that touches `promotedChanges` (any block size).
    public static func plan(returned: DirtyBitmap, promotedChanges: DirtyBitmap, geometry: DirtyBitmap,
                            regionBytes: UInt64) -> [ChecksumRegion] {
        precondition(regionBytes > 0 && regionBytes % geometry.blockBytes == 0, "a region of whole bitmap blocks")
        precondition(returned.volumeSizeBytes == geometry.volumeSizeBytes
            && promotedChanges.volumeSizeBytes == geometry.volumeSizeBytes, "bitmaps of volumes of different size")
        let empty = DirtyBitmap(volumeSizeBytes: geometry.volumeSizeBytes, blockBytes: geometry.blockBytes)
        let set = SplitBrainResync.union(survivor: empty, victim: returned).bitmap
        var regions: [ChecksumRegion] = []
        var block: UInt64 = 0
        while let run = set.nextDirtyRun(from: block) {
            let end = min(run.end * set.blockBytes, set.volumeSizeBytes)
            var offset = run.first * set.blockBytes
            while offset < end {
                let regionEnd = min((offset / regionBytes + 1) * regionBytes, end)
                if !promotedChanges.anySet(offsetBytes: offset, lengthBytes: regionEnd - offset) {
                    regions.append(ChecksumRegion(offsetBytes: offset, lengthBytes: regionEnd - offset))
                }
                offset = regionEnd
            }
            block = run.end
        }
        return regions
    }
}
