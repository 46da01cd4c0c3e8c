// PartedBitmapFile: a node's changes since it parted from its peer (the regions it wrote as a
// primary alone, or kept as a split brain's loser), kept across restarts in a state file of
// their own, `<state_dir>/<name>.parted-bitmap` (docs/metadata.md, *Parted bitmap*), so that a
// split brain found or resolved after a restart is still resynced by the union of both
// bitmaps. The file is written whole and durably (temporary file, fsync, rename, directory
// fsync) at a stop, at a split brain's detection and at a discard, and removed durably before
// the first write it would not cover: a crash therefore never finds a file that misses a
// write; without one the resolve copies the whole volume and says why.
//
// Layout: magic "TNDPRTB1" (8), parting generation (u64), volume bytes (u64), flags (u32: bit 0
// the node's tracked bitmap counts too), frames bytes (u32), the frames (the BitmapChunk and
// BitmapDone frames the peer would receive), CRC32C of everything before (u32).
#if canImport(Glibc)
import Glibc
#endif
import TandemCore

struct PartedBitmap {
    /// The generation both nodes shared when this one began to track (its B).
    var partingGeneration: UInt64
    var bitmap: DirtyBitmap
}

enum PartedBitmapFile {
    static let magic: [UInt8] = Array("TNDPRTB1".utf8)
    /// Bound on the file: the frames of the densest bitmap of the largest volume stay far below.
    static let bytesMax = 256 << 20

    static func path(stateDir: String, name: String) -> String { "\(stateDir)/\(name).parted-bitmap" }

    static func write(_ parted: PartedBitmap, to path: String) throws(ResourceStoreError) {
        var frames: [UInt8] = []
        for message in parted.bitmap.bitmapExchangeMessages() {
            do { frames += try WireEncoder.encode(message, promotionNumber: 0) } catch {
                throw ResourceStoreError("\(path): cannot encode the bitmap: \(error)")
            }
        }
        var bytes = magic
        append(&bytes, parted.partingGeneration)
        append(&bytes, parted.bitmap.volumeSizeBytes)
        append(&bytes, UInt32(0))
        append(&bytes, UInt32(frames.count))
        bytes += frames
        append(&bytes, CRC32C.checksum(bytes))
        let temporary = path + ".new"
        try FileIO.writeDurably(bytes, to: temporary)
        guard rename(temporary, path) == 0 else { throw FileIO.failure("rename \(temporary)") }
        try FileIO.syncDirectory(directory(of: path))
    }

    /// The file's bitmap, nil when there is none; an error when it cannot be proven.
    static func load(from path: String, volumeSizeBytes: UInt64) throws(ResourceStoreError) -> PartedBitmap? {
        guard access(path, F_OK) == 0 else { return nil }
        let bytes = try FileIO.readAll(path, bytesMax: bytesMax)
        let fixed = magic.count + 8 + 8 + 4 + 4
        guard bytes.count >= fixed + 4, Array(bytes[0..<magic.count]) == magic else {
            throw ResourceStoreError("\(path): not a parted-bitmap file")
        }
        let crc = UInt32(read(bytes, at: bytes.count - 4, width: 4))
        guard CRC32C.checksum(bytes[0..<(bytes.count - 4)]) == crc else { throw ResourceStoreError("\(path): checksum mismatch") }
        let generation = read(bytes, at: magic.count, width: 8)
        let volumeBytes = read(bytes, at: magic.count + 8, width: 8)
        let framesBytes = Int(read(bytes, at: magic.count + 20, width: 4))
        guard volumeBytes == volumeSizeBytes else {
            throw ResourceStoreError("\(path): written for a volume of \(volumeBytes) bytes, the volume has \(volumeSizeBytes)")
        }
        guard fixed + framesBytes + 4 == bytes.count else { throw ResourceStoreError("\(path): frames of the wrong length") }
        var decoder = WireDecoder(checksOrdering: false)
        decoder.feed(Array(bytes[fixed..<(fixed + framesBytes)]))
        var receiver = PeerBitmapReceiver(volumeSizeBytes: volumeSizeBytes)
        do {
            while let frame = try decoder.next() {
                switch frame.message {
                case .bitmapChunk(let chunk): try receiver.receive(chunk)
                case .bitmapDone(let total):
                    return PartedBitmap(partingGeneration: generation, bitmap: try receiver.done(setBlocks: total))
                default: throw ResourceStoreError("\(path): a \(frame.message.type) frame")
                }
            }
        } catch let error as ResourceStoreError {
            throw error
        } catch {
            throw ResourceStoreError("\(path): \(error)")
        }
        throw ResourceStoreError("\(path): no BitmapDone")
    }

    static func remove(_ path: String) throws(ResourceStoreError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw FileIO.failure("unlink \(path)") }
        try FileIO.syncDirectory(directory(of: path))
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func append<T: FixedWidthInteger>(_ bytes: inout [UInt8], _ value: T) {
        for index in 0..<MemoryLayout<T>.size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
    }

    private static func read(_ bytes: [UInt8], at offset: Int, width: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<width { value |= UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
        return value
    }
}
