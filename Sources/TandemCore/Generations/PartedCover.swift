// PartedCover: what a primary that parted from its peer must record before a write it makes
// with no replicator running (StandAlone after a split brain, or disabled). No activity log
// names such a write after a crash, so its region must be in the parted-bitmap file
// (`<name>.parted-bitmap`, docs/metadata.md) before the write goes to the volume —
// write-ahead, as the activity log's transaction is for a replicating primary — or a kill -9
// or a power loss leaves no proven set and the union resync becomes a full copy.
//
// The file holds a superset of the node's set (its *cover*): when a write falls outside it,
// the file is rewritten durably with the set known in memory, the old cover and the write's
// cover units whole (`unitBytes`: the activity log's extent, coarser on a large volume), so
// the writes that follow nearby cost nothing more. A restart takes the cover as its set: every
// region written since parting, and at most the rest of the units written — more than
// written, never less. Pure: no I/O.
//
// Batched (`hold` / `record`), as the activity log's transactions are: every write of one
// loop turn that the file does not cover waits, its units gathered in `pending`, and one
// durable rewrite at the turn's end releases them all — one file write per turn that brings
// new units, not one per write.

public enum PartedCover {
    /// At most this many cover units span a volume (`unitBytes`): a parting rewrites its file
    /// before writes at most about this many times, however the writes scatter.
    public static let unitsPerVolumeMax: UInt64 = 1024

    /// The unit a write's cover is rounded out to: the activity log's extent (4 MiB by
    /// default), doubled until `unitsPerVolumeMax` units span the volume. Random writes over a
    /// large volume otherwise find a new extent at nearly every write, each costing a durable
    /// rewrite before it (measured: a 64 GiB volume's 4 KiB random writes at QD1 went from
    /// 1,755 to 63 IOPS with 4 MiB units). Coarser units cost precision only after a crash:
    /// a restart's set is rounded out to them (a union resync copies whole units).
    public static func unitBytes(volumeSizeBytes: UInt64, extentBytes: UInt64, blockBytes: UInt64) -> UInt64 {
        precondition(extentBytes > 0 && blockBytes > 0, "an extent or block of 0 bytes")
        var unit = max(extentBytes, blockBytes)
        while (volumeSizeBytes + unit - 1) / unit > unitsPerVolumeMax { unit *= 2 }
        return unit
    }

    /// nil when `cover` (the set the file holds) has every block the write touches: nothing to
    /// record first. Otherwise the set the file must hold, durably, before the write goes to
    /// disk: `cover` ∪ `known` (the node's set in memory) ∪ the write's extents.
    public static func recordBefore(writeOffsetBytes offsetBytes: UInt64, lengthBytes: UInt64,
                                    cover: DirtyBitmap?, known: DirtyBitmap, extentBytes: UInt64) -> DirtyBitmap? {
        var pending: DirtyBitmap? = nil
        guard hold(writeOffsetBytes: offsetBytes, lengthBytes: lengthBytes, cover: cover, pending: &pending,
                   geometry: known, extentBytes: extentBytes)
        else { return nil }
        return record(cover: cover, known: known, pending: pending!)
    }

    /// The batched form's first half: false when the write may go to the volume now (`cover`
    /// has every block it touches); true when it must wait for the next record, its extents
    /// (whole, cut at the volume's end) set in `pending` (the turn's gathered extents, made in
    /// `geometry`'s blocks at the turn's first held write). A write whose extents are pending
    /// already waits too: pending is not durable yet.
    public static func hold(writeOffsetBytes offsetBytes: UInt64, lengthBytes: UInt64, cover: DirtyBitmap?,
                            pending: inout DirtyBitmap?, geometry: DirtyBitmap, extentBytes: UInt64) -> Bool {
        precondition(extentBytes > 0, "an extent of 0 bytes")
        guard lengthBytes > 0 else { return false }
        if let cover {
            let run = cover.blocksTouched(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
            if cover.setCount(in: run) == run.count { return false }
        }
        if pending == nil {
            pending = DirtyBitmap(volumeSizeBytes: geometry.volumeSizeBytes, blockBytes: geometry.blockBytes)
        }
        let first = offsetBytes / extentBytes * extentBytes
        let end = min(geometry.volumeSizeBytes, (offsetBytes + lengthBytes + extentBytes - 1) / extentBytes * extentBytes)
        _ = pending!.setRange(offsetBytes: first, lengthBytes: end - first)
        return true
    }

    /// The batched form's second half: the set the file must hold, durably, before the held
    /// writes go to disk: `cover` ∪ `known` ∪ `pending`. Never less than any of the three.
    public static func record(cover: DirtyBitmap?, known: DirtyBitmap, pending: DirtyBitmap) -> DirtyBitmap {
        let next = cover.map { SplitBrainResync.union(survivor: $0, victim: known).bitmap } ?? known
        return SplitBrainResync.union(survivor: next, victim: pending).bitmap
    }
}
