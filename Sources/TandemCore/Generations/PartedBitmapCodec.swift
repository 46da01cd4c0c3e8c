// PartedBitmapCodec: the bytes of a node's parted-bitmap file, `<state_dir>/<name>.parted-bitmap`
// (docs/metadata.md, *Parted bitmap*): its changes since it parted from its peer, kept across
// restarts for a split brain's union resync. The daemon's PartedBitmapFile reads and writes the
// file; this is the layout, and the decoder that proves a file before a bit of it is used: it
// is read from disk, where a torn write, another build or a hand may have left anything.
//
// Layout: magic "TNDPRTB1" (8), parting generation (u64), volume bytes (u64), flags (u32: bit 0
// the node's tracked bitmap counts too; bit 1, a union resync's file only: the peer's set had
// not come, so a resumed union asks for it again; bit 2, with bit 1: the resync is a returned
// primary's; no other bit is defined), frames bytes (u32), the frames
// (the BitmapChunk and BitmapDone frames the peer would receive, PeerBitmapReceiver's rules,
// and nothing after the BitmapDone), CRC32C of everything before (u32). Integers little-endian.
// Pure: no I/O.

/// A node's changes since parting, as the file keeps them.
public struct PartedBitmap: Sendable {
    /// The generation both nodes shared when this one began to track (its B).
    public var partingGeneration: UInt64
    public var bitmap: DirtyBitmap
    /// A survivor's union resync (`<name>.union-resync`) stopped or crashed before the peer's
    /// set came (its BitmapDone): `bitmap` holds this node's side only, and a resumed union
    /// asks the peer for its set again (flag bit 1).
    public var peerSetPending: Bool
    /// With `peerSetPending`: the resync is a returned primary's (its set is compared by
    /// digest when it comes; flag bit 2).
    public var returnedPrimary: Bool

    public init(partingGeneration: UInt64, bitmap: DirtyBitmap, peerSetPending: Bool = false,
                returnedPrimary: Bool = false) {
        self.partingGeneration = partingGeneration
        self.bitmap = bitmap
        self.peerSetPending = peerSetPending
        self.returnedPrimary = returnedPrimary
    }
}

public enum PartedBitmapCodec {
    public static let magic: [UInt8] = Array("TNDPRTB1".utf8)
    /// Magic, generation, volume bytes, flags, frames bytes.
    public static let headerBytes = 8 + 8 + 8 + 4 + 4
    /// Bound on the file: the frames of the densest bitmap of the largest volume stay far below.
    public static let bytesMax = 256 << 20
    static let knownFlags: UInt32 = 0b111
    static let peerSetPendingFlag: UInt32 = 1 << 1
    static let returnedPrimaryFlag: UInt32 = 1 << 2

    public static func encode(_ parted: PartedBitmap) throws(WireEncodeError) -> [UInt8] {
        var frames: [UInt8] = []
        for message in parted.bitmap.bitmapExchangeMessages() {
            frames += try WireEncoder.encode(message, promotionNumber: 0)
        }
        var bytes = magic
        append(&bytes, parted.partingGeneration)
        append(&bytes, parted.bitmap.volumeSizeBytes)
        var flags: UInt32 = 0
        if parted.peerSetPending { flags |= peerSetPendingFlag }
        if parted.peerSetPending && parted.returnedPrimary { flags |= returnedPrimaryFlag }
        append(&bytes, flags)
        append(&bytes, UInt32(frames.count))
        bytes += frames
        append(&bytes, CRC32C.checksum(bytes))
        return bytes
    }

    /// The file's bitmap for a volume of `volumeSizeBytes`, or why it cannot be proven (at
    /// most 400 bytes: it goes into status and the log). `blocksMax` bounds the bitmap its block
    /// size makes (PeerBitmapReceiver), checked before it is allocated.
    public static func decode(_ bytes: [UInt8], volumeSizeBytes: UInt64,
                              blocksMax: UInt64 = DirtyBitmap.blockCountMax) throws(PartedBitmapError) -> PartedBitmap {
        // An empty or short file is a write that never completed (a crash, a full disk) or a
        // hand's truncation: said so, not taken for a file of another kind.
        guard !bytes.isEmpty else { throw PartedBitmapError("empty (0 bytes)") }
        guard bytes.count >= headerBytes + 4 else {
            throw PartedBitmapError("truncated: \(bytes.count) bytes, shorter than any whole file (\(headerBytes + 4))")
        }
        guard Array(bytes[0..<magic.count]) == magic else { throw PartedBitmapError("not a parted-bitmap file (no TNDPRTB1 magic)") }
        guard bytes.count <= bytesMax else { throw PartedBitmapError("\(bytes.count) bytes, more than \(bytesMax)") }
        let crc = UInt32(read(bytes, at: bytes.count - 4, width: 4))
        guard CRC32C.checksum(bytes[0..<(bytes.count - 4)]) == crc else { throw PartedBitmapError("checksum mismatch") }
        let generation = read(bytes, at: 8, width: 8)
        let volumeBytes = read(bytes, at: 16, width: 8)
        let flags = UInt32(read(bytes, at: 24, width: 4))
        let framesBytes = Int(read(bytes, at: 28, width: 4))
        guard volumeBytes == volumeSizeBytes else {
            throw PartedBitmapError("written for a volume of \(volumeBytes) bytes, the volume has \(volumeSizeBytes)")
        }
        guard flags & ~knownFlags == 0 else { throw PartedBitmapError("unknown flags 0x\(String(flags, radix: 16))") }
        guard flags & returnedPrimaryFlag == 0 || flags & peerSetPendingFlag != 0 else {
            throw PartedBitmapError("a returned primary's flag without the pending peer set's")
        }
        guard headerBytes + framesBytes + 4 == bytes.count else { throw PartedBitmapError("frames of the wrong length") }
        guard generation != 0 else { throw PartedBitmapError("parting generation 0") }
        let bitmap = try decodeFrames(bytes[headerBytes..<(headerBytes + framesBytes)], volumeSizeBytes: volumeSizeBytes,
                                      blocksMax: blocksMax)
        return PartedBitmap(partingGeneration: generation, bitmap: bitmap, peerSetPending: flags & peerSetPendingFlag != 0,
                            returnedPrimary: flags & returnedPrimaryFlag != 0)
    }

    /// The frames: chunks then one BitmapDone that ends the bytes.
    private static func decodeFrames(_ frames: ArraySlice<UInt8>, volumeSizeBytes: UInt64,
                                     blocksMax: UInt64) throws(PartedBitmapError) -> DirtyBitmap {
        var decoder = WireDecoder(checksOrdering: false)
        decoder.feed(frames)
        var receiver = PeerBitmapReceiver(volumeSizeBytes: volumeSizeBytes, blocksMax: blocksMax)
        do {
            while let frame = try decoder.next() {
                switch frame.message {
                case .bitmapChunk(let chunk): try receiver.receive(chunk)
                case .bitmapDone(let total):
                    let bitmap = try receiver.done(setBlocks: total)
                    guard try decoder.next() == nil, decoder.bufferedBytes == 0 else {
                        throw PartedBitmapError("bytes after the BitmapDone")
                    }
                    return bitmap
                default: throw PartedBitmapError("a \(frame.message.type) frame")
                }
            }
        } catch let error as PartedBitmapError {
            throw error
        } catch {
            throw PartedBitmapError(Self.shortened("\(error)"))
        }
        throw PartedBitmapError("no BitmapDone")
    }

    static func shortened(_ text: String) -> String {
        text.utf8.count <= 300 ? text : String(decoding: Array(text.utf8.prefix(300)), as: UTF8.self) + "…"
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

/// Why a parted-bitmap file cannot be proven.
public struct PartedBitmapError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
