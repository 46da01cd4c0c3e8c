// DirtyBitmap's byte forms: the 4064 bit bytes of a metadata page (docs/metadata.md, *Bitmap
// page*: bit i is byte i/8, bit i%8 of page i/32 512) and the run-length runs of a wire
// BitmapChunk (docs/design-v3.md, type 16: u32 little-endian runs, alternating clear/set,
// starting clear). Page headers, CRCs and frame bodies belong to the metadata and wire
// codecs; these helpers only turn bits into bytes and back. Decoding is strict and checks
// the whole input before changing a bit.

extension DirtyBitmap {
    static let wordsPerPage = Int(bitsPerPage / 64)

    /// The pages holding at least one set bit, ascending (those a write of the bitmap's set
    /// bits must write: any other page's set bits on disk are only extra).
    public var pagesWithSetBits: [Int] {
        (0..<pageCount).filter { page in
            let first = UInt64(page) * Self.bitsPerPage
            return setCount(in: BlockRun(first: first, count: min(Self.bitsPerPage, blockCount - first))) > 0
        }
    }

    /// Writes page `page`'s 4064 bit bytes at `buffer[offset...]`; bits past the volume are 0.
    public func encodePageBits(_ page: Int, into buffer: inout [UInt8], at offset: Int) {
        precondition(page >= 0 && page < pageCount, "page \(page) outside \(pageCount)")
        precondition(offset >= 0 && buffer.count - offset >= Self.pageBitBytes, "page buffer too small")
        let firstWord = page * Self.wordsPerPage
        for index in 0..<Self.wordsPerPage {
            let word = firstWord + index < live.wordCount ? live[word: firstWord + index] : 0
            for byte in 0..<8 {
                buffer[offset + index * 8 + byte] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(byte)))
            }
        }
    }

    /// Replaces page `page`'s bits with the stored ones (at load, before any cycle) and
    /// records the page as persisted: it now equals the disk.
    public mutating func loadPageBits(_ page: Int, from bytes: ArraySlice<UInt8>) throws(BitmapCodingError) {
        precondition(page >= 0 && page < pageCount, "page \(page) outside \(pageCount)")
        precondition(!cycleFrozen, "loading pages while a cycle is frozen")
        guard bytes.count == Self.pageBitBytes else {
            throw .wrongPageLength(page: page, bytes: bytes.count, expected: Self.pageBitBytes)
        }
        let firstWord = page * Self.wordsPerPage
        let tailBits = blockCount & 63
        for index in 0..<Self.wordsPerPage {
            let word = Self.readWord(bytes, at: index * 8)
            let global = firstWord + index
            let outside = global >= live.wordCount
                || (global == live.wordCount - 1 && tailBits != 0 && word >> tailBits != 0)
            if outside && word != 0 { throw .bitsBeyondVolume(page: page) }
        }
        for index in 0..<Self.wordsPerPage where firstWord + index < live.wordCount {
            let word = Self.readWord(bytes, at: index * 8)
            let old = live[word: firstWord + index]
            setBlockCount = setBlockCount - UInt64(old.nonzeroBitCount) + UInt64(word.nonzeroBitCount)
            live[word: firstWord + index] = word
        }
        if isPageDirty(page) { dirtyPageCount -= 1 }
        persistedVersions[page] = pageVersions[page]
    }

    /// A page whose CRC failed: all its blocks count as dirty (more to resync, never less),
    /// and the page is dirty so that it is rewritten whole.
    public mutating func markPageAllSet(_ page: Int) {
        let run = pageBlocks(page)
        setBlocks(run)
        touchPage(page)
    }

    private static func readWord(_ bytes: ArraySlice<UInt8>, at offset: Int) -> UInt64 {
        var word: UInt64 = 0
        for byte in 0..<8 { word |= UInt64(bytes[bytes.startIndex + offset + byte]) << (8 * UInt64(byte)) }
        return word
    }

    // MARK: Run-length chunks

    /// Encodes live bits from `firstBlock` (at most `blockCount` of them) as runs at
    /// `buffer[offset...]`, stopping at a run boundary when `capacityBytes` is full.
    /// Returns the blocks the runs cover (the chunk's count) and the bytes written.
    public func encodeRuns(
        firstBlock: UInt64, blockCount count: UInt64, into buffer: inout [UInt8], at offset: Int, capacityBytes: Int
    ) -> (blocks: UInt64, bytes: Int) {
        precondition(firstBlock <= blockCount && count <= blockCount - firstBlock, "chunk outside the bitmap")
        precondition(count <= UInt64(UInt32.max), "a chunk covers at most 2^32-1 blocks")
        precondition(capacityBytes >= 8 && buffer.count - offset >= capacityBytes, "chunk buffer too small")
        let end = firstBlock + count
        var position = firstBlock
        var written = 0
        var runIsSet = false
        while position < end && written + 4 <= capacityBytes {
            let runEnd = runIsSet
                ? live.firstClear(from: position, before: end)
                : live.firstSet(from: position, before: end) ?? end
            let length = UInt32(runEnd - position)
            for byte in 0..<4 { buffer[offset + written + byte] = UInt8(truncatingIfNeeded: length >> (8 * UInt32(byte))) }
            written += 4
            position = runEnd
            runIsSet.toggle()
        }
        return (position - firstBlock, written)
    }

    /// Adds a peer's chunk (blocks `[firstBlock, firstBlock + blockCount)` as runs) to the
    /// live bitmap. Returns the chunk's set blocks (BitmapDone checks their total).
    @discardableResult
    public mutating func unionRuns(
        firstBlock: UInt64, blockCount count: UInt64, runs: ArraySlice<UInt8>
    ) throws(BitmapCodingError) -> UInt64 {
        guard firstBlock <= blockCount && count <= blockCount - firstBlock else {
            throw .chunkOutsideBitmap(firstBlock: firstBlock, blockCount: count, bitmapBlocks: blockCount)
        }
        guard runs.count % 4 == 0 else { throw .runsNotWholeWords(bytes: runs.count) }
        let runCount = runs.count / 4
        var total: UInt64 = 0
        for index in 0..<runCount {
            let length = UInt64(Self.readRun(runs, index))
            if length == 0 && index != 0 { throw .emptyRun(index: index) }
            total += length
            if total > count { throw .runsTotal(expected: count, found: total) }
        }
        guard total == count else { throw .runsTotal(expected: count, found: total) }
        var position = firstBlock
        var setInChunk: UInt64 = 0
        for index in 0..<runCount {
            let length = UInt64(Self.readRun(runs, index))
            if index % 2 == 1 {
                setBlocks(BlockRun(first: position, count: length))
                setInChunk += length
            }
            position += length
        }
        return setInChunk
    }

    private static func readRun(_ runs: ArraySlice<UInt8>, _ index: Int) -> UInt32 {
        var value: UInt32 = 0
        for byte in 0..<4 { value |= UInt32(runs[runs.startIndex + index * 4 + byte]) << (8 * UInt32(byte)) }
        return value
    }
}
