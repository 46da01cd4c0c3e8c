// WireBitmapChunk: the body of BitmapChunk (type 16, protocol 6; docs/design-v3.md section 3,
// docs/protocol.md *Bitmap exchange*). At a split brain's resolve each node sends the regions it
// changed since the two parted as run-length coded bits, in order from block 0, then a
// BitmapDone (type 17) with the total of set bits; the survivor resyncs the union.
//
// | offset | size | field                                                                  |
// |--------|------|------------------------------------------------------------------------|
// | 0      | 8    | first block the runs cover                                             |
// | 8      | 4    | block count the runs cover (their sum; 1 ... 2^32-1)                   |
// | 12     | 4    | the sender's bitmap block bytes (4 KiB ... 1 MiB, a power of two)       |
// | 16     | 4×n  | runs, u32 little-endian, alternating clear/set, starting clear (n ≥ 1) |
//
// The decoder checks the frame's own shape (whole runs, a valid block size, at most
// `runsBytesMax`); whether the runs fit the volume and add up is the receiver's check
// (PeerBitmapReceiver), which needs the volume's size.

public struct WireBitmapChunk: Equatable, Sendable {
    public static let fixedBytes = 16
    /// Bound on one chunk's runs: 4096 runs (16 KiB), so a control frame stays small.
    public static let runsBytesMax = 16_384

    public var firstBlock: UInt64
    public var blockCount: UInt32
    public var blockBytes: UInt32
    /// The runs as they travel (u32 little-endian each).
    public var runs: [UInt8]

    public init(firstBlock: UInt64, blockCount: UInt32, blockBytes: UInt32, runs: [UInt8]) {
        self.firstBlock = firstBlock
        self.blockCount = blockCount
        self.blockBytes = blockBytes
        self.runs = runs
    }

    var bodyBytes: Int { Self.fixedBytes + runs.count }

    static func decode(_ reader: inout WireByteReader) throws(WireError) -> WireBitmapChunk {
        // The header guaranteed at least `fixedBytes + 4` and at most `runsBytesMax` of runs.
        let first = reader.u64()!
        let count = reader.u32()!
        let blockBytes = reader.u32()!
        guard DirtyBitmap.isValidBlockBytes(UInt64(blockBytes)) else {
            throw .inconsistentBody(type: .bitmapChunk, reason: "block bytes \(blockBytes) is not a power of two in 4 KiB ... 1 MiB")
        }
        guard count > 0 else { throw .inconsistentBody(type: .bitmapChunk, reason: "a chunk of no blocks") }
        guard reader.remaining % 4 == 0 else {
            throw .inconsistentBody(type: .bitmapChunk, reason: "runs of \(reader.remaining) bytes are not whole u32 runs")
        }
        var runs = [UInt8]()
        runs.reserveCapacity(reader.remaining)
        while reader.remaining > 0 { runs.append(reader.u8()!) }
        return WireBitmapChunk(firstBlock: first, blockCount: count, blockBytes: blockBytes, runs: runs)
    }

    func write(_ writer: inout WireByteWriter) {
        writer.put(firstBlock)
        writer.put(blockCount)
        writer.put(blockBytes)
        writer.put(bytes: runs)
    }
}
