// PeerBitmapReceiver: takes a peer's BitmapChunk / BitmapDone stream (split-brain resolve,
// docs/design-v3.md section 3 types 16/17) and yields the peer's bitmap of changes since
// parting, or a clear error. The chunks go into a bitmap of the receiver's own, never into
// the resync set: only a stream that ended in a BitmapDone whose total matches is handed
// over, so garbage (bad runs, counts beyond the volume, a wrong total, chunks out of order)
// changes nothing, and the driver drops the link. The chunks must come in order from block
// 0 and cover the whole bitmap once, so a duplicated, skipped or reordered chunk is refused
// too. The first chunk's block size fixes the bitmap's geometry, and the bitmap is allocated
// at once: a block size that would make it larger than the receiver's bound (`blocksMax`: the
// survivor's own bitmap, or a floor; a 4 KiB block on a 16 TiB volume is 512 MiB of bits) is
// refused before anything is allocated. Pure: no I/O.

public enum PeerBitmapError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A chunk's runs are malformed or do not fit the volume (BitmapCodingError says how).
    case badChunk(BitmapCodingError)
    /// The sender's block size differs between chunks, or yields a bitmap too large.
    case blockBytesChanged(first: UInt32, now: UInt32)
    /// The sender's block size would make a bitmap of more blocks than the receiver allows.
    case bitmapTooLarge(blockBytes: UInt32, blocks: UInt64, blocksMax: UInt64)
    case chunkOutOfOrder(expectedFirst: UInt64, found: UInt64)
    /// BitmapDone came before the chunks covered the whole volume.
    case incomplete(coveredBlocks: UInt64, blocks: UInt64)
    case totalMismatch(sent: UInt64, received: UInt64)
    /// A chunk or a BitmapDone after BitmapDone, or after an error.
    case finished

    public var description: String {
        switch self {
        case .badChunk(let error): return "the peer's bitmap chunk is malformed: \(error)"
        case .blockBytesChanged(let first, let now):
            return "the peer's bitmap chunks changed block size from \(first) to \(now) bytes"
        case .bitmapTooLarge(let blockBytes, let blocks, let blocksMax):
            return "the peer's bitmap block size of \(blockBytes) bytes would make a bitmap of \(blocks) blocks "
                + "(\((blocks + 7) / 8) bytes) for this volume, above this node's bound of \(blocksMax) blocks: "
                + "refused before allocating it"
        case .chunkOutOfOrder(let expected, let found):
            return "the peer's bitmap chunk starts at block \(found), expected \(expected) (chunks come in order, once each)"
        case .incomplete(let covered, let blocks):
            return "the peer's BitmapDone came after \(covered) of \(blocks) blocks"
        case .totalMismatch(let sent, let received):
            return "the peer's BitmapDone says \(sent) set bits, its chunks carried \(received)"
        case .finished: return "the peer's bitmap stream had already ended"
        }
    }
}

public struct PeerBitmapReceiver: Sendable {
    /// The least bound a receiver grants whatever its own geometry: 2^26 blocks (8 MiB of
    /// bits; a 256 GiB volume at 4 KiB blocks), so that a peer whose metadata chose a smaller
    /// block than this node's is still taken on ordinary volumes.
    public static let blocksFloor: UInt64 = 1 << 26

    public let volumeSizeBytes: UInt64
    /// The most blocks the peer's bitmap may have (its block size decides its count).
    public let blocksMax: UInt64
    /// The peer's bitmap as far as received (its geometry is the sender's, fixed by its
    /// first chunk).
    private var bitmap: DirtyBitmap?
    private var nextBlock: UInt64 = 0
    private var setBlocks: UInt64 = 0
    private var ended = false
    /// Chunks taken so far, and the bytes they came in (status: what the exchange cost).
    public private(set) var chunkCount = 0
    public private(set) var runsBytes: UInt64 = 0

    /// `blocksMax`: the bound on the peer's bitmap (DirtyBitmap.blockCountMax: only the
    /// format's own; see `bound(localBlocks:)` for a node's).
    public init(volumeSizeBytes: UInt64, blocksMax: UInt64 = DirtyBitmap.blockCountMax) {
        self.volumeSizeBytes = volumeSizeBytes
        self.blocksMax = min(blocksMax, DirtyBitmap.blockCountMax)
    }

    /// A node's bound on a peer's bitmap: its own bitmap's blocks, at least `blocksFloor`.
    public static func bound(localBlocks: UInt64) -> UInt64 { max(localBlocks, blocksFloor) }

    public var isEnded: Bool { ended }

    /// Takes the next chunk. An error ends the stream: nothing more is accepted.
    public mutating func receive(_ chunk: WireBitmapChunk) throws(PeerBitmapError) {
        guard !ended else { throw .finished }
        do throws(PeerBitmapError) { try take(chunk) } catch {
            ended = true
            throw error
        }
    }

    private mutating func take(_ chunk: WireBitmapChunk) throws(PeerBitmapError) {
        if bitmap == nil {
            let blockBytes = UInt64(chunk.blockBytes)
            guard DirtyBitmap.isValidBlockBytes(blockBytes) else {
                throw .badChunk(.chunkOutsideBitmap(firstBlock: chunk.firstBlock, blockCount: UInt64(chunk.blockCount), bitmapBlocks: 0))
            }
            // Checked before the bitmap exists: its size is the peer's word.
            let blocks = volumeSizeBytes / blockBytes + (volumeSizeBytes % blockBytes == 0 ? 0 : 1)
            guard blocks <= blocksMax else {
                throw .bitmapTooLarge(blockBytes: chunk.blockBytes, blocks: blocks, blocksMax: blocksMax)
            }
            bitmap = DirtyBitmap(volumeSizeBytes: volumeSizeBytes, blockBytes: blockBytes)
        }
        guard UInt64(chunk.blockBytes) == bitmap!.blockBytes else {
            throw .blockBytesChanged(first: UInt32(bitmap!.blockBytes), now: chunk.blockBytes)
        }
        guard chunk.firstBlock == nextBlock else { throw .chunkOutOfOrder(expectedFirst: nextBlock, found: chunk.firstBlock) }
        do throws(BitmapCodingError) {
            setBlocks += try bitmap!.unionRuns(firstBlock: chunk.firstBlock, blockCount: UInt64(chunk.blockCount),
                                               runs: chunk.runs[...])
        } catch {
            throw .badChunk(error)
        }
        nextBlock += UInt64(chunk.blockCount)
        chunkCount += 1
        runsBytes += UInt64(chunk.runs.count)
    }

    /// BitmapDone: the total must match the chunks and they must have covered the volume.
    /// Returns the peer's bitmap (a volume has at least one block, so at least one chunk
    /// comes before it).
    public mutating func done(setBlocks sent: UInt64) throws(PeerBitmapError) -> DirtyBitmap {
        guard !ended else { throw .finished }
        ended = true
        guard let bitmap, nextBlock == bitmap.blockCount else {
            throw .incomplete(coveredBlocks: nextBlock, blocks: bitmap?.blockCount ?? 0)
        }
        guard sent == setBlocks else { throw .totalMismatch(sent: sent, received: setBlocks) }
        return bitmap
    }
}

extension DirtyBitmap {
    /// This bitmap as BitmapChunk messages (in order from block 0, covering every block) and
    /// the BitmapDone that ends them.
    public func bitmapExchangeMessages() -> [WireMessage] {
        var messages: [WireMessage] = []
        var buffer = [UInt8](repeating: 0, count: WireBitmapChunk.runsBytesMax)
        var block: UInt64 = 0
        while block < blockCount {
            let count = min(blockCount - block, UInt64(UInt32.max))
            let (blocks, bytes) = encodeRuns(firstBlock: block, blockCount: count, into: &buffer, at: 0,
                                             capacityBytes: WireBitmapChunk.runsBytesMax)
            messages.append(.bitmapChunk(WireBitmapChunk(firstBlock: block, blockCount: UInt32(blocks),
                                                         blockBytes: UInt32(blockBytes), runs: Array(buffer[0..<bytes]))))
            block += blocks
        }
        messages.append(.bitmapDone(setBlocks: setBlockCount))
        return messages
    }
}
