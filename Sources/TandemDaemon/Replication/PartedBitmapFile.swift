// PartedBitmapFile: a node's changes since it parted from its peer (the regions it wrote as a
// primary alone, or kept as a split brain's loser), kept across restarts in a state file of
// their own, `<state_dir>/<name>.parted-bitmap` (docs/metadata.md, *Parted bitmap*), so that a
// split brain found or resolved after a restart is still resynced by the union of both
// bitmaps. The file is written whole and durably (temporary file, fsync, rename, directory
// fsync) at a stop, at a split brain's detection and at a discard; before a write it would
// not cover it is removed durably (a write through a replicator, whose activity log names it)
// or rewritten with the write's extents (a write with no replicator: StandAlone in a split
// brain, or disabled; once per loop turn for all such writes, Resource.notePartedWriteAlone).
// A crash therefore never finds a
// file that misses a write; without one the resolve copies the whole volume and says why. The layout and its
// proof are TandemCore's PartedBitmapCodec (fuzzed: FuzzBitmap); this file does the I/O.
#if canImport(Glibc)
import Glibc
#endif
import TandemCore

enum PartedBitmapFile {
    static func path(stateDir: String, name: String) -> String { "\(stateDir)/\(name).parted-bitmap" }

    static func write(_ parted: PartedBitmap, to path: String) throws(ResourceStoreError) {
        let bytes: [UInt8]
        do throws(WireEncodeError) { bytes = try PartedBitmapCodec.encode(parted) } catch {
            throw ResourceStoreError("\(path): cannot encode the bitmap: \(error)")
        }
        let temporary = path + ".new"
        try FileIO.writeDurably(bytes, to: temporary)
        guard rename(temporary, path) == 0 else { throw FileIO.failure("rename \(temporary)") }
        try FileIO.syncDirectory(ResourceStateFiles.directory(of: path))
    }

    /// The file's bitmap, nil when there is none; an error when it cannot be proven.
    /// `localBlockBytes`: this node's bitmap block, which bounds what the file may make it allocate.
    static func load(from path: String, volumeSizeBytes: UInt64,
                     localBlockBytes: UInt64) throws(ResourceStoreError) -> PartedBitmap? {
        guard access(path, F_OK) == 0 else { return nil }
        let bytes = try FileIO.readAll(path, bytesMax: PartedBitmapCodec.bytesMax)
        let localBlocks = (volumeSizeBytes + localBlockBytes - 1) / localBlockBytes
        do throws(PartedBitmapError) {
            return try PartedBitmapCodec.decode(bytes, volumeSizeBytes: volumeSizeBytes,
                                                blocksMax: PeerBitmapReceiver.bound(localBlocks: localBlocks))
        } catch {
            throw ResourceStoreError("\(path): \(error)")
        }
    }

    static func remove(_ path: String) throws(ResourceStoreError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw FileIO.failure("unlink \(path)") }
        try FileIO.syncDirectory(ResourceStateFiles.directory(of: path))
    }
}
