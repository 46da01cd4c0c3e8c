// DirtyBitmap: one bit per `blockBytes` block of the volume; a set bit means "this block may
// differ from the peer's copy" (docs/metadata.md, *Bitmap page*). It owns three facts the
// driver must never reconstruct itself: the exact count of set bits (`out_of_sync_bytes`),
// which 32 512-bit metadata pages changed since they were last persisted, and the frozen
// cycle (docs/design-v3.md section 4: cycle K is read from a frozen copy while new writes set
// bits of K+1). All storage is allocated at init; setting, clearing and testing bits never
// allocate. No I/O: pages are encoded into, and loaded from, bytes the caller owns.

/// A run of consecutive blocks.
public struct BlockRun: Hashable, Sendable {
    public var first: UInt64
    public var count: UInt64
    public init(first: UInt64, count: UInt64) {
        self.first = first
        self.count = count
    }
    public var end: UInt64 { first + count }
}

public struct DirtyBitmap: Sendable {
    /// Bits per metadata page: 4064 bytes of bits after a 32-byte page header.
    public static let bitsPerPage: UInt64 = 32_512
    public static let pageBitBytes = 4064
    /// Bounds of `bitmap_block_bytes` (docs/metadata.md, superblock offset 112).
    public static let blockBytesRange: ClosedRange<UInt64> = 4096...(1 << 20)
    /// Page indexes are u32 on disk and RLE runs are u32 on the wire.
    public static let blockCountMax = UInt64(UInt32.max)

    public let volumeSizeBytes: UInt64
    public let blockBytes: UInt64
    public let blockCount: UInt64
    public let pageCount: Int

    var live: BitWords
    /// Cycle K as it was frozen (meaningful while `cycleFrozen`).
    var frozen: BitWords
    /// Blocks set since the freeze: they belong to cycle K+1 and survive K's completion.
    var sinceFreeze: BitWords
    public internal(set) var setBlockCount: UInt64 = 0
    public private(set) var frozenBlockCount: UInt64 = 0
    public private(set) var cycleFrozen = false

    // A page is dirty while its version differs from the version last persisted.
    // Internal only for DirtyBitmap+Coding.swift.
    var pageVersions: [UInt64]
    var persistedVersions: [UInt64]
    public internal(set) var dirtyPageCount = 0

    public init(volumeSizeBytes: UInt64, blockBytes: UInt64) {
        precondition(Self.isValidBlockBytes(blockBytes), "bitmap block bytes \(blockBytes) not a power of two in 4 KiB...1 MiB")
        precondition(volumeSizeBytes > 0, "a bitmap over an empty volume")
        let blocks = (volumeSizeBytes + blockBytes - 1) / blockBytes
        precondition(blocks <= Self.blockCountMax, "\(blocks) blocks exceed \(Self.blockCountMax)")
        self.volumeSizeBytes = volumeSizeBytes
        self.blockBytes = blockBytes
        self.blockCount = blocks
        self.pageCount = Int((blocks + Self.bitsPerPage - 1) / Self.bitsPerPage)
        self.live = BitWords(bitCount: blocks)
        // The cycle's bits exist from the first freeze on (a bitmap that never freezes one,
        // as the catch-up session's, carries only the live bits).
        self.frozen = BitWords(bitCount: blocks, allocated: false)
        self.sinceFreeze = BitWords(bitCount: blocks, allocated: false)
        self.pageVersions = Array(repeating: 0, count: pageCount)
        self.persistedVersions = Array(repeating: 0, count: pageCount)
    }

    public static func isValidBlockBytes(_ bytes: UInt64) -> Bool {
        blockBytesRange.contains(bytes) && bytes.nonzeroBitCount == 1
    }

    /// `out_of_sync_bytes` (docs/design-v3.md): set bits × block size.
    public var outOfSyncBytes: UInt64 { setBlockCount * blockBytes }

    // MARK: Byte ranges to blocks

    /// Every block the byte range touches (a partly written block may differ).
    public func blocksTouched(offsetBytes: UInt64, lengthBytes: UInt64) -> BlockRun {
        checkBytes(offsetBytes, lengthBytes)
        guard lengthBytes > 0 else { return BlockRun(first: offsetBytes / blockBytes, count: 0) }
        let first = offsetBytes / blockBytes
        let end = (offsetBytes + lengthBytes + blockBytes - 1) / blockBytes
        return BlockRun(first: first, count: end - first)
    }

    /// Only the blocks the byte range covers whole (a block is in sync only if all of it
    /// is); the volume's last, short block counts as whole when the range reaches the end.
    public func blocksCovered(offsetBytes: UInt64, lengthBytes: UInt64) -> BlockRun {
        checkBytes(offsetBytes, lengthBytes)
        let first = (offsetBytes + blockBytes - 1) / blockBytes
        let rangeEnd = offsetBytes + lengthBytes
        let end = rangeEnd == volumeSizeBytes ? blockCount : rangeEnd / blockBytes
        return BlockRun(first: first, count: end > first ? end - first : 0)
    }

    private func checkBytes(_ offset: UInt64, _ length: UInt64) {
        precondition(offset <= volumeSizeBytes && length <= volumeSizeBytes - offset,
                     "byte range \(offset)+\(length) outside the \(volumeSizeBytes)-byte volume")
    }

    // MARK: Setting, clearing, testing

    /// Marks the blocks a write touches; returns how many were clean.
    @discardableResult
    public mutating func setRange(offsetBytes: UInt64, lengthBytes: UInt64) -> UInt64 {
        setBlocks(blocksTouched(offsetBytes: offsetBytes, lengthBytes: lengthBytes))
    }

    /// Clears the blocks the range covers whole; returns how many were set.
    @discardableResult
    public mutating func clearRange(offsetBytes: UInt64, lengthBytes: UInt64) -> UInt64 {
        clearBlocks(blocksCovered(offsetBytes: offsetBytes, lengthBytes: lengthBytes))
    }

    @discardableResult
    public mutating func setBlocks(_ run: BlockRun) -> UInt64 {
        checkRun(run)
        var changed: UInt64 = 0
        var start = run.first
        while start < run.end {
            let page = Int(start / Self.bitsPerPage)
            let end = min(run.end, UInt64(page + 1) * Self.bitsPerPage)
            let newlySet = live.set(from: start, to: end)
            if newlySet > 0 { touchPage(page) }
            // Even a bit already set belongs to K+1 once written after the freeze.
            if cycleFrozen { sinceFreeze.set(from: start, to: end) }
            changed += newlySet
            start = end
        }
        setBlockCount += changed
        return changed
    }

    @discardableResult
    public mutating func clearBlocks(_ run: BlockRun) -> UInt64 {
        checkRun(run)
        var changed: UInt64 = 0
        var start = run.first
        while start < run.end {
            let page = Int(start / Self.bitsPerPage)
            let end = min(run.end, UInt64(page + 1) * Self.bitsPerPage)
            let cleared = live.clear(from: start, to: end)
            if cleared > 0 { touchPage(page) }
            changed += cleared
            start = end
        }
        setBlockCount -= changed
        return changed
    }

    private func checkRun(_ run: BlockRun) {
        precondition(run.first <= blockCount && run.count <= blockCount - run.first,
                     "blocks \(run.first)+\(run.count) outside \(blockCount)")
    }

    public func isSet(block: UInt64) -> Bool { live.isSet(block) }

    public func anySet(offsetBytes: UInt64, lengthBytes: UInt64) -> Bool {
        let run = blocksTouched(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
        return live.firstSet(from: run.first, before: run.end) != nil
    }

    /// Set bits of the live bitmap in a block run.
    public func setCount(in run: BlockRun) -> UInt64 {
        checkRun(run)
        return live.count(from: run.first, to: run.end)
    }

    /// The first run of set blocks at or after `block`, at most `maxBlocks` long, from the
    /// live bitmap or (`frozen: true`) from the frozen cycle. Resync planning walks the
    /// bitmap with it: the next call starts at the returned run's end.
    public func nextDirtyRun(from block: UInt64, maxBlocks: UInt64 = .max, frozen: Bool = false) -> BlockRun? {
        precondition(maxBlocks > 0, "a run of at most 0 blocks")
        precondition(!frozen || cycleFrozen, "no cycle is frozen")
        guard block < blockCount else { return nil }
        let bits = frozen ? self.frozen : live
        guard let first = bits.firstSet(from: block, before: blockCount) else { return nil }
        let limit = blockCount - first > maxBlocks ? first + maxBlocks : blockCount
        let end = bits.firstClear(from: first, before: limit)
        return BlockRun(first: first, count: end - first)
    }

    // MARK: Cycles

    /// Freezes the current dirty set as a cycle. The live bitmap keeps every bit (so pages
    /// persisted meanwhile still cover cycle K); writes from now on are also recorded as K+1.
    public mutating func freezeCycle() {
        precondition(!cycleFrozen, "a cycle is already frozen")
        frozen.allocate()
        sinceFreeze.allocate()
        frozen.copy(from: live)
        sinceFreeze.zeroAll()
        frozenBlockCount = setBlockCount
        cycleFrozen = true
    }

    public func isFrozenSet(block: UInt64) -> Bool {
        precondition(cycleFrozen, "no cycle is frozen")
        return frozen.isSet(block)
    }

    /// Whether any block of `run` is in the frozen cycle.
    public func anyFrozenSet(_ run: BlockRun) -> Bool {
        precondition(cycleFrozen, "no cycle is frozen")
        checkRun(run)
        return frozen.firstSet(from: run.first, before: run.end) != nil
    }

    /// The peer applied cycle K durably: clear K's blocks except those written since the
    /// freeze (they belong to K+1). Returns how many bits were cleared.
    @discardableResult
    public mutating func completeCycle() -> UInt64 {
        precondition(cycleFrozen, "no cycle is frozen")
        var cleared: UInt64 = 0
        let wordsPerPage = Int(Self.bitsPerPage / 64)
        for word in 0..<live.wordCount {
            let clearMask = frozen[word: word] & ~sinceFreeze[word: word]
            let before = live[word: word]
            let after = before & ~clearMask
            if after != before {
                live[word: word] = after
                cleared += UInt64((before & clearMask).nonzeroBitCount)
                touchPage(word / wordsPerPage)
            }
        }
        setBlockCount -= cleared
        endCycle()
        return cleared
    }

    /// The cycle was interrupted: nothing is cleared; its blocks stay dirty in the live bitmap.
    public mutating func abandonCycle() {
        precondition(cycleFrozen, "no cycle is frozen")
        endCycle()
    }

    private mutating func endCycle() {
        cycleFrozen = false
        frozenBlockCount = 0
    }

    // MARK: Union

    /// Adds another bitmap's set bits (the peer's, same geometry): the resync set is the union.
    @discardableResult
    public mutating func formUnion(_ other: DirtyBitmap) -> UInt64 {
        precondition(other.blockCount == blockCount && other.blockBytes == blockBytes,
                     "union of bitmaps of different geometry")
        var added: UInt64 = 0
        var block: UInt64 = 0
        while let run = other.nextDirtyRun(from: block) {
            added += setBlocks(run)
            block = run.end
        }
        return added
    }

    // MARK: Pages

    public func page(ofBlock block: UInt64) -> Int {
        precondition(block < blockCount, "block \(block) outside \(blockCount)")
        return Int(block / Self.bitsPerPage)
    }

    /// The pages holding the bits of a byte range (an activity-log extent spans one or more).
    public func pages(coveringOffset offsetBytes: UInt64, lengthBytes: UInt64) -> ClosedRange<Int> {
        let run = blocksTouched(offsetBytes: offsetBytes, lengthBytes: lengthBytes)
        let first = page(ofBlock: run.first)
        return first...page(ofBlock: run.count == 0 ? run.first : run.end - 1)
    }

    public func isPageDirty(_ page: Int) -> Bool { pageVersions[page] != persistedVersions[page] }

    /// The first page at or after `page` changed since it was last persisted.
    public func nextDirtyPage(from page: Int) -> Int? {
        guard dirtyPageCount > 0 else { return nil }
        var index = page
        while index < pageCount {
            if isPageDirty(index) { return index }
            index += 1
        }
        return nil
    }

    /// Bumped by every change to the page's bits. Read it when encoding the page and hand it
    /// back in `pagePersisted`: a change made while the write was in flight keeps it dirty.
    public func pageVersion(_ page: Int) -> UInt64 { pageVersions[page] }

    public mutating func pagePersisted(_ page: Int, version: UInt64) {
        precondition(version <= pageVersions[page], "page \(page) persisted at a future version")
        guard version > persistedVersions[page] else { return }
        let wasDirty = isPageDirty(page)
        persistedVersions[page] = version
        if wasDirty && !isPageDirty(page) { dirtyPageCount -= 1 }
    }

    mutating func touchPage(_ page: Int) {
        if !isPageDirty(page) { dirtyPageCount += 1 }
        pageVersions[page] &+= 1
    }

    /// Bits `[first, end)` of page `page`.
    func pageBlocks(_ page: Int) -> BlockRun {
        precondition(page >= 0 && page < pageCount, "page \(page) outside \(pageCount)")
        let first = UInt64(page) * Self.bitsPerPage
        return BlockRun(first: first, count: min(Self.bitsPerPage, blockCount - first))
    }
}
