// PartedCover: what a primary that parted from its peer must record before a write it makes
// with no replicator running (StandAlone after a split brain, or disabled). No activity log
// names such a write after a crash, so its region must be in the parted-bitmap file
// (`<name>.parted-bitmap`, docs/metadata.md) before the write goes to the volume —
// write-ahead, as the activity log's transaction is for a replicating primary — or a kill -9
// or a power loss leaves no proven set and the union resync becomes a full copy.
//
// The file holds a superset of the node's set (its *cover*): when a write falls outside it,
// the file is rewritten durably with the set known in memory, the old cover and the write's
// extents whole (the activity log's extent size), so the writes that follow nearby cost
// nothing more. A restart takes the cover as its set: every region written since parting, and
// at most the rest of the extents written — more than written, never less. Pure: no I/O.

public enum PartedCover {
    /// nil when `cover` (the set the file holds) has every block the write touches: nothing to
    /// record first. Otherwise the set the file must hold, durably, before the write goes to
    /// disk: `cover` ∪ `known` (the node's set in memory) ∪ the write's extents.
    public static func recordBefore(writeOffsetBytes offsetBytes: UInt64, lengthBytes: UInt64,
                                    cover: DirtyBitmap?, known: DirtyBitmap, extentBytes: UInt64) -> DirtyBitmap? {
        precondition(extentBytes > 0, "an extent of 0 bytes")
        guard lengthBytes > 0 else { return nil }
        if let cover {
            let run = cover.blocksTouched(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
            if cover.setCount(in: run) == run.count { return nil }
        }
        var next = cover.map { SplitBrainResync.union(survivor: $0, victim: known).bitmap } ?? known
        let first = offsetBytes / extentBytes * extentBytes
        let end = min(next.volumeSizeBytes, (offsetBytes + lengthBytes + extentBytes - 1) / extentBytes * extentBytes)
        _ = next.setRange(offsetBytes: first, lengthBytes: end - first)
        return next
    }
}
