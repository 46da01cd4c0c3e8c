import Testing

@testable import TandemCore

/// Split-brain resolve by the union of both bitmaps: the BitmapChunk / BitmapDone codec and
/// stream (every malformed case refused, nothing handed over), and the union decision.
@Suite struct SplitBrainResyncTests {
    typealias F = WireFixtures
    static let volumeBytes: UInt64 = 256 << 20
    static let blocks = volumeBytes / 4096

    private func bitmap(_ runs: [(UInt64, UInt64)], blockBytes: UInt64 = 4096) -> DirtyBitmap {
        var bitmap = DirtyBitmap(volumeSizeBytes: Self.volumeBytes, blockBytes: blockBytes)
        for (first, count) in runs { bitmap.setBlocks(BlockRun(first: first, count: count)) }
        return bitmap
    }

    private func sameBits(_ a: DirtyBitmap, _ b: DirtyBitmap) -> Bool {
        guard a.setBlockCount == b.setBlockCount, a.blockBytes == b.blockBytes else { return false }
        var block: UInt64 = 0
        while let run = a.nextDirtyRun(from: block) {
            guard b.setCount(in: run) == run.count else { return false }
            block = run.end
        }
        return true
    }

    /// Encoded to frames and decoded again, as the link carries them.
    private func throughTheWire(_ messages: [WireMessage]) throws -> [WireMessage] {
        var bytes: [UInt8] = []
        for message in messages { bytes += try WireEncoder.encode(message, promotionNumber: 3) }
        return try F.decodeAll(bytes).map(\.message)
    }

    private func receive(_ messages: [WireMessage]) throws(PeerBitmapError) -> DirtyBitmap {
        var receiver = PeerBitmapReceiver(volumeSizeBytes: Self.volumeBytes)
        for message in messages {
            switch message {
            case .bitmapChunk(let chunk): try receiver.receive(chunk)
            case .bitmapDone(let total): return try receiver.done(setBlocks: total)
            default: Issue.record("unexpected \(message.type)")
            }
        }
        throw .incomplete(coveredBlocks: 0, blocks: 0)
    }

    // MARK: codec round trips

    @Test func aBitmapRoundTripsThroughChunksOnTheWire() throws {
        var random = SplitMix64(seed: 14)
        for _ in 0..<20 {
            var source = DirtyBitmap(volumeSizeBytes: Self.volumeBytes, blockBytes: 4096)
            for _ in 0..<Int.random(in: 0...3000, using: &random) {
                let first = UInt64.random(in: 0..<Self.blocks, using: &random)
                source.setBlocks(BlockRun(first: first, count: UInt64.random(in: 1...min(Self.blocks - first, 9), using: &random)))
            }
            let messages = try throughTheWire(source.bitmapExchangeMessages())
            #expect(messages.count >= 2)
            let received = try receive(messages)
            #expect(sameBits(source, received))
        }
    }

    @Test func aDenseBitmapIsSplitIntoBoundedChunksAndAnEmptyOneIsOneChunk() throws {
        var alternate = DirtyBitmap(volumeSizeBytes: Self.volumeBytes, blockBytes: 4096)
        for block in stride(from: 1, to: Self.blocks, by: 2) { alternate.setBlocks(BlockRun(first: block, count: 1)) }
        let messages = alternate.bitmapExchangeMessages()
        #expect(messages.count > 10)  // 65 536 runs, at most 4 096 per chunk
        for case .bitmapChunk(let chunk) in messages { #expect(chunk.runs.count <= WireBitmapChunk.runsBytesMax) }
        #expect(sameBits(alternate, try receive(try throughTheWire(messages))))

        let empty = DirtyBitmap(volumeSizeBytes: Self.volumeBytes, blockBytes: 65_536)
        let emptyMessages = empty.bitmapExchangeMessages()
        #expect(emptyMessages == [
            .bitmapChunk(WireBitmapChunk(firstBlock: 0, blockCount: UInt32(Self.volumeBytes / 65_536), blockBytes: 65_536,
                                         runs: F.le(UInt32(Self.volumeBytes / 65_536)))),
            .bitmapDone(setBlocks: 0),
        ])
        #expect(try receive(emptyMessages).setBlockCount == 0)
    }

    // MARK: malformed frames (the decoder)

    private func chunkBody(first: UInt64 = 0, count: UInt32 = 4, blockBytes: UInt32 = 4096, runs: [UInt32]) -> [UInt8] {
        F.le(first) + F.le(count) + F.le(blockBytes) + runs.flatMap { F.le($0) }
    }

    @Test func malformedChunkFramesAreRefusedByTheDecoder() {
        #expect(F.firstError(F.rawFrame(type: 16, body: chunkBody(runs: [1, 2, 1]))) == nil)
        #expect(F.firstError(F.rawFrame(type: 16, body: chunkBody(runs: [1, 2]) + [0, 0]))
                == .inconsistentBody(type: .bitmapChunk, reason: "runs of 10 bytes are not whole u32 runs"))
        #expect(F.firstError(F.rawFrame(type: 16, body: chunkBody(blockBytes: 5000, runs: [4])))
                == .inconsistentBody(type: .bitmapChunk, reason: "block bytes 5000 is not a power of two in 4 KiB ... 1 MiB"))
        #expect(F.firstError(F.rawFrame(type: 16, body: chunkBody(count: 0, runs: [0])))
                == .inconsistentBody(type: .bitmapChunk, reason: "a chunk of no blocks"))
        // No run at all, and more runs than a chunk may carry: refused at the header.
        #expect(F.firstError(F.rawFrame(type: 16, body: chunkBody(runs: [])))
                == .inconsistentBody(type: .bitmapChunk, reason: "body of 16 bytes is shorter than the 20 required"))
        let tooMany = chunkBody(runs: Array(repeating: 1, count: WireBitmapChunk.runsBytesMax / 4 + 1))
        guard case .oversizedBody = F.firstError(F.rawFrame(type: 16, body: tooMany)) else {
            Issue.record("an oversized chunk was not refused at its header")
            return
        }
        #expect(F.firstError(F.rawFrame(type: 17, body: [1, 2, 3]))
                == .inconsistentBody(type: .bitmapDone, reason: "body of 3 bytes is shorter than the 8 required"))
    }

    @Test func theEncoderNeverSendsWhatThePeerRefuses() {
        let bad = WireBitmapChunk(firstBlock: 0, blockCount: 4, blockBytes: 4096, runs: [1, 0, 0])
        #expect(throws: WireEncodeError.self) { try WireEncoder.encode(.bitmapChunk(bad), promotionNumber: 0) }
        let noRuns = WireBitmapChunk(firstBlock: 0, blockCount: 4, blockBytes: 4096, runs: [])
        #expect(throws: WireEncodeError.self) { try WireEncoder.encode(.bitmapChunk(noRuns), promotionNumber: 0) }
    }

    // MARK: malformed streams (the receiver): refused, nothing handed over

    private func chunk(first: UInt64, count: UInt64, runs: [UInt32], blockBytes: UInt32 = 4096) -> WireBitmapChunk {
        WireBitmapChunk(firstBlock: first, blockCount: UInt32(count), blockBytes: blockBytes, runs: runs.flatMap { F.le($0) })
    }

    @Test func everyMalformedStreamIsRefusedWithAClearError() {
        let n = Self.blocks
        func expectRefused(_ expected: PeerBitmapError, _ messages: [WireMessage], sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(throws: expected, sourceLocation: sourceLocation) { _ = try receive(messages) }
        }
        // Bad runs: a run past the chunk, an empty run in the middle, runs short of the count.
        expectRefused(.badChunk(.runsTotal(expected: n, found: n + 1)),
                      [.bitmapChunk(chunk(first: 0, count: n, runs: [1, UInt32(n)]))])
        expectRefused(.badChunk(.emptyRun(index: 2)),
                      [.bitmapChunk(chunk(first: 0, count: n, runs: [1, 1, 0, UInt32(n - 2)]))])
        expectRefused(.badChunk(.runsTotal(expected: n, found: n - 1)),
                      [.bitmapChunk(chunk(first: 0, count: n, runs: [1, UInt32(n - 2)]))])
        // Counts beyond the volume.
        expectRefused(.badChunk(.chunkOutsideBitmap(firstBlock: 0, blockCount: n + 1, bitmapBlocks: n)),
                      [.bitmapChunk(chunk(first: 0, count: n + 1, runs: [0, UInt32(n + 1)]))])
        // Chunks out of order: a gap, a repeat.
        expectRefused(.chunkOutOfOrder(expectedFirst: 0, found: 8),
                      [.bitmapChunk(chunk(first: 8, count: n - 8, runs: [UInt32(n - 8)]))])
        expectRefused(.chunkOutOfOrder(expectedFirst: 8, found: 0),
                      [.bitmapChunk(chunk(first: 0, count: 8, runs: [0, 8])), .bitmapChunk(chunk(first: 0, count: 8, runs: [0, 8]))])
        // The block size changes mid-stream.
        expectRefused(.blockBytesChanged(first: 4096, now: 8192),
                      [.bitmapChunk(chunk(first: 0, count: 8, runs: [8])),
                       .bitmapChunk(chunk(first: 8, count: 8, runs: [8], blockBytes: 8192))])
        // BitmapDone: before the whole volume was covered; a total that does not match.
        expectRefused(.incomplete(coveredBlocks: 8, blocks: n), [.bitmapChunk(chunk(first: 0, count: 8, runs: [0, 8])), .bitmapDone(setBlocks: 8)])
        expectRefused(.incomplete(coveredBlocks: 0, blocks: 0), [.bitmapDone(setBlocks: 0)])
        expectRefused(.totalMismatch(sent: 9, received: 8),
                      [.bitmapChunk(chunk(first: 0, count: n, runs: [0, 8, UInt32(n - 8)])), .bitmapDone(setBlocks: 9)])
    }

    @Test func anErrorEndsTheStreamAndNothingIsHandedOver() throws {
        var receiver = PeerBitmapReceiver(volumeSizeBytes: Self.volumeBytes)
        try receiver.receive(chunk(first: 0, count: 8, runs: [0, 8]))
        #expect(throws: PeerBitmapError.chunkOutOfOrder(expectedFirst: 8, found: 9)) {
            try receiver.receive(chunk(first: 9, count: Self.blocks - 9, runs: [UInt32(Self.blocks - 9)]))
        }
        // Even a now well-formed continuation and a matching total are refused.
        #expect(throws: PeerBitmapError.finished) {
            try receiver.receive(chunk(first: 8, count: Self.blocks - 8, runs: [UInt32(Self.blocks - 8)]))
        }
        #expect(throws: PeerBitmapError.finished) { _ = try receiver.done(setBlocks: 8) }
        // And nothing after a good BitmapDone.
        var good = PeerBitmapReceiver(volumeSizeBytes: Self.volumeBytes)
        try good.receive(chunk(first: 0, count: Self.blocks, runs: [UInt32(Self.blocks)]))
        _ = try good.done(setBlocks: 0)
        #expect(throws: PeerBitmapError.finished) { try good.receive(chunk(first: 0, count: 1, runs: [1])) }
    }

    /// A peer-named block size sizes the receiver's bitmap: one that would make it larger than
    /// the receiver's bound is refused at the first chunk, before the bitmap exists (a 4 KiB
    /// block over 16 TiB is 2^32 blocks, 512 MiB of bits, against a survivor whose own bitmap
    /// has 1 MiB blocks).
    @Test func aBlockSizeThatWouldMakeAHugeBitmapIsRefusedBeforeAllocating() throws {
        let huge: UInt64 = 16 << 40
        let localBlocks = huge / (1 << 20)
        let bound = PeerBitmapReceiver.bound(localBlocks: localBlocks)
        #expect(bound == PeerBitmapReceiver.blocksFloor)
        var receiver = PeerBitmapReceiver(volumeSizeBytes: huge, blocksMax: bound)
        let tooFine = WireBitmapChunk(firstBlock: 0, blockCount: UInt32.max, blockBytes: 4096, runs: F.le(UInt32.max))
        #expect(throws: PeerBitmapError.bitmapTooLarge(blockBytes: 4096, blocks: 1 << 32, blocksMax: 1 << 26)) {
            try receiver.receive(tooFine)
        }
        // The refusal ends the stream, and says what it refused and why.
        #expect(throws: PeerBitmapError.finished) { try receiver.receive(tooFine) }
        let text = "\(PeerBitmapError.bitmapTooLarge(blockBytes: 4096, blocks: 1 << 32, blocksMax: 1 << 26))"
        #expect(text.contains("4096 bytes") && text.contains("536870912 bytes") && text.contains("refused before allocating"))
        // The same block size within the bound (this node's own bitmap is as fine) is taken.
        var fine = PeerBitmapReceiver(volumeSizeBytes: Self.volumeBytes,
                                      blocksMax: PeerBitmapReceiver.bound(localBlocks: Self.blocks))
        try fine.receive(chunk(first: 0, count: Self.blocks, runs: [UInt32(Self.blocks - 8), 8]))
        #expect(try fine.done(setBlocks: 8).setBlockCount == 8)
        // A bound of exactly the bitmap's blocks takes it; one block less refuses it.
        var exact = PeerBitmapReceiver(volumeSizeBytes: Self.volumeBytes, blocksMax: Self.blocks)
        try exact.receive(chunk(first: 0, count: Self.blocks, runs: [UInt32(Self.blocks)]))
        var under = PeerBitmapReceiver(volumeSizeBytes: Self.volumeBytes, blocksMax: Self.blocks - 1)
        #expect(throws: PeerBitmapError.bitmapTooLarge(blockBytes: 4096, blocks: Self.blocks, blocksMax: Self.blocks - 1)) {
            try under.receive(chunk(first: 0, count: Self.blocks, runs: [UInt32(Self.blocks)]))
        }
        // A parted-bitmap file whose block size is too fine for this node is refused the same way.
        let file = try PartedBitmapCodec.encode(PartedBitmap(partingGeneration: 7, bitmap: bitmap([(0, 1)])))
        #expect(throws: PartedBitmapError.self) {
            _ = try PartedBitmapCodec.decode(file, volumeSizeBytes: Self.volumeBytes, blocksMax: Self.blocks / 2)
        }
        #expect(try PartedBitmapCodec.decode(file, volumeSizeBytes: Self.volumeBytes, blocksMax: Self.blocks).bitmap.setBlockCount == 1)
    }

    // MARK: the union decision

    let parting: UInt64 = 0x5151
    private func survivor(_ bitmap: DirtyBitmap? = DirtyBitmap(volumeSizeBytes: volumeBytes, blockBytes: 4096),
                          parting: UInt64? = nil, lost: String = "") -> PartedChanges {
        PartedChanges(partingGeneration: parting ?? self.parting, bitmap: bitmap, lostReason: lost)
    }

    @Test func bothBitmapsSinceTheSameGenerationAreUnited() {
        #expect(SplitBrainResync.plan(survivor: survivor(), peerHelloVersion: 6, victimPartingGeneration: parting) == .union)
    }

    @Test func whereTheBitmapsCannotCoverTheDivergenceTheWholeVolumeIsCopiedAndSaysWhy() {
        func reason(_ plan: SplitBrainResyncPlan) -> String {
            if case .fullCopy(let reason) = plan { return reason }
            return ""
        }
        // A peer older than the protocol that carries bitmaps.
        #expect(reason(SplitBrainResync.plan(survivor: survivor(), peerHelloVersion: 5, victimPartingGeneration: parting))
                    .contains("protocol 5"))
        // This side tracks nothing since parting (history generations only).
        #expect(reason(SplitBrainResync.plan(survivor: survivor(parting: 0), peerHelloVersion: 6, victimPartingGeneration: parting))
                    .contains("tracks no generation"))
        // This side's bitmap was lost.
        #expect(reason(SplitBrainResync.plan(survivor: survivor(nil, lost: "a crash"), peerHelloVersion: 6,
                                             victimPartingGeneration: parting)).contains("lost (a crash)"))
        // The peer's metadata was re-initialised: it states no parting generation.
        #expect(reason(SplitBrainResync.plan(survivor: survivor(), peerHelloVersion: 6, victimPartingGeneration: 0))
                    .contains("re-initialised"))
        // Parted from different generations (a promoted copy that never held the old primary's).
        #expect(reason(SplitBrainResync.plan(survivor: survivor(), peerHelloVersion: 6, victimPartingGeneration: 0x7777))
                    .contains("different generations"))
    }

    @Test func theUnionHoldsBothSidesChangesInTheSurvivorsGeometry() {
        let own = bitmap([(0, 256), (10_000, 512)])  // 1 MiB + 2 MiB
        let peer = bitmap([(200, 100), (40_000, 256)])  // overlaps 56 blocks of the first run
        let set = SplitBrainResync.union(survivor: own, victim: peer)
        #expect(set.survivorChangedBytes == 768 * 4096)
        #expect(set.victimChangedBytes == 356 * 4096)
        #expect(set.unionBytes == (768 + 356 - 56) * 4096)
        #expect(sameBits(set.bitmap, bitmap([(0, 300), (10_000, 512), (40_000, 256)])))
        // A victim with 64 KiB blocks: its regions are added by bytes, rounded outward.
        let coarse = bitmap([(1_000, 1), (1, 1)], blockBytes: 65_536)  // the second inside own's first run
        let mixed = SplitBrainResync.union(survivor: own, victim: coarse)
        #expect(mixed.bitmap.blockBytes == 4096)
        #expect(mixed.unionBytes == own.outOfSyncBytes + 65_536)
        #expect(mixed.bitmap.setCount(in: BlockRun(first: 16_000, count: 16)) == 16)
    }
}
