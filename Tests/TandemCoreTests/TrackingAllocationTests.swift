import Glibc
import Testing

@testable import TandemCore

/// The per-write paths of the tracking types allocate nothing after init. Counting needs the
/// malloc counter preloaded (it exports `malloccount_value`); without it this test checks
/// nothing and says so. Run it as docs/tracking.md (*Tests*) shows.
@Suite struct TrackingAllocationTests {
    typealias Counter = @convention(c) () -> Int
    static let operations = 20_000

    @Test func perWritePathsAllocateNothingAfterInit() {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloccount_value") else { return }
        let counter = unsafeBitCast(symbol, to: Counter.self)
        var random = SplitMix64(seed: 1)
        let volume: UInt64 = 1 << 36
        let offsets = (0..<Self.operations).map { _ in UInt64.random(in: 0..<volume - (1 << 20), using: &random) & ~4095 }
        /// Mallocs of `body` over every offset, after a warm-up.
        func mallocs(_ body: (UInt64) -> Void) -> Int {
            for offset in offsets.prefix(100) { body(offset) }
            let before = counter()
            for offset in offsets { body(offset) }
            return counter() - before
        }
        // The loop itself may allocate (closure calls in debug builds): that is the baseline.
        let baseline = mallocs { _ in }
        var bitmap = DirtyBitmap(volumeSizeBytes: volume, blockBytes: 4096)
        var log = ActivityLog(volumeSizeBytes: volume, extentBytes: 4 << 20, capacity: 64, blockBytes: 4096, extentsPerWriteMax: 9)
        var bucket = TokenBucket(rateBytesPerSecond: 1 << 30, burstBytes: 1 << 20, nowNs: 0)
        var now: UInt64 = 0
        let writePath = mallocs { offset in
            bitmap.setRange(offsetBytes: offset, lengthBytes: 65536)
            bitmap.clearRange(offsetBytes: offset, lengthBytes: 4096)
            if log.noteWrite(offsetBytes: offset, lengthBytes: 65536) != .retryLater {
                log.writeCompleted(offsetBytes: offset, lengthBytes: 65536)
            }
            while let request = log.nextPageToPersist() { log.bitmapPagePersisted(request) }
            if let number = log.endTurn() { log.transactionDurable(number) }
            now += 1000
            _ = bucket.tryConsume(4096, nowNs: now)
        }
        bitmap.freezeCycle()
        var planner = CyclePlanner(volumeSizeBytes: volume, blockBytes: 4096, writesAdmittedMax: 128)
        planner.begin(cycle: 1)
        let cyclePath = mallocs { offset in
            if planner.writeMayProceed(offsetBytes: offset, lengthBytes: 4096, in: bitmap) {
                let token = planner.applicationWriteAdmitted(offsetBytes: offset, lengthBytes: 4096)
                planner.applicationWriteAnswered(token)
            }
            if let read = planner.nextRead(in: bitmap) { planner.readCompleted(regionIndex: read.regionIndex) }
        }
        #expect(writePath <= baseline + 10, "write path: \(writePath) mallocs for \(Self.operations) writes, baseline \(baseline)")
        #expect(cyclePath <= baseline + 10, "cycle path: \(cyclePath) mallocs, baseline \(baseline)")
    }
}
