// DirtyBitmap at a new volume size (online resize, docs/replication.md *Resize*): the bits
// below the smaller size are kept; growing marks every block past the old end, because
// nothing says the new area holds the same bytes on both nodes (a grown logical volume
// returns whatever the disk held there).

extension DirtyBitmap {
    /// A bitmap over `volumeSizeBytes` with this one's block size: set where this one is set
    /// (below both sizes), and set from the old end on when it grows. Not during a cycle.
    public func resized(toVolumeSizeBytes volumeSizeBytes: UInt64) -> DirtyBitmap {
        precondition(!cycleFrozen, "a bitmap resized during a cycle")
        var resized = DirtyBitmap(volumeSizeBytes: volumeSizeBytes, blockBytes: blockBytes)
        let keptBlocks = min(blockCount, resized.blockCount)
        var block: UInt64 = 0
        while let run = nextDirtyRun(from: block), run.first < keptBlocks {
            _ = resized.setBlocks(BlockRun(first: run.first, count: min(run.end, keptBlocks) - run.first))
            block = run.end
        }
        if volumeSizeBytes > self.volumeSizeBytes {
            _ = resized.setRange(offsetBytes: self.volumeSizeBytes, lengthBytes: volumeSizeBytes - self.volumeSizeBytes)
        }
        return resized
    }
}
