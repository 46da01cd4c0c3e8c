// VolumeIOWatch: ages of volume I/Os under disk_timeout_ms. The table alone with a given
// clock (each overdue I/O reported once, a late completion still goes to its owner, slots
// are reused), and a real volume's I/O through the ring with the watch in the path.
import Glibc
import Logging
import Testing
@testable import TandemIO

struct VolumeIOWatchTests {
    private final class Reports {
        var seen: [(VolumeOperation, UInt64, UInt64)] = []
    }

    private func scratchVolume(_ logger: Logger) throws -> (Volume, String) {
        let dir = "/var/tmp/tandem-tests"
        mkdir(dir, 0o700)
        let path = "\(dir)/watch-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).img"
        return (try Volume(path: path, createSizeBytes: 1 << 20, logger: logger), path)
    }

    @Test func eachOverdueIOIsReportedOnceAndItsLateCompletionStillReachesItsOwner() throws {
        let (volume, path) = try scratchVolume(Logger(label: "test"))
        defer { unlink(path) }
        let reports = Reports()
        volume.ioTimeoutNs = 1_000_000_000
        volume.onIOOverdue = { reports.seen.append(($0, $1, $2)) }
        let watch = VolumeIOWatch(initialSlots: 4)
        let stuck = try #require(watch.begin(volume: volume, handler: 7, tag: 70, operation: .write, nowNs: 100))
        let quick = try #require(watch.begin(volume: volume, handler: 7, tag: 71, operation: .flush, nowNs: 900_000_000))
        watch.check(nowNs: 1_000_000_100)  // exactly the bound: not yet
        #expect(reports.seen.isEmpty)
        let done = watch.end(quick)
        #expect(done.handler == 7 && done.tag == 71 && done.late == nil)
        watch.check(nowNs: 1_500_000_000)
        #expect(reports.seen.count == 1)
        #expect(reports.seen.first?.0 == .write && reports.seen.first?.1 == 1_499_999_900)
        #expect(reports.seen.first?.2 == 1_000_000_000)
        watch.check(nowNs: 9_000_000_000)
        #expect(reports.seen.count == 1, "an I/O is reported overdue once")
        let late = watch.end(stuck)
        #expect(late.handler == 7 && late.tag == 70)
        #expect(late.late?.1 == .write && late.late?.2 == 100)
        #expect(watch.inFlightCount == 0 && watch.lateCompletions == 1)
    }

    @Test func aVolumeWithoutATimeoutIsNeverReportedAndATimeoutSetLaterJudgesIOsInFlight() throws {
        let (volume, path) = try scratchVolume(Logger(label: "test"))
        defer { unlink(path) }
        let reports = Reports()
        volume.onIOOverdue = { reports.seen.append(($0, $1, $2)) }
        let watch = VolumeIOWatch(initialSlots: 4)
        _ = watch.begin(volume: volume, handler: 3, tag: 1, operation: .read, nowNs: 0)
        watch.check(nowNs: 1 << 50)
        #expect(reports.seen.isEmpty)
        volume.ioTimeoutNs = 2_000_000_000  // `set disk_timeout_ms` while the read hangs
        watch.check(nowNs: 1 << 50)
        #expect(reports.seen.map(\.0) == [.read])
    }

    @Test func slotsAreReusedSoASteadyLoadNeverGrowsTheTable() throws {
        let (volume, path) = try scratchVolume(Logger(label: "test"))
        defer { unlink(path) }
        let watch = VolumeIOWatch(initialSlots: 4)
        var open: [UInt32] = []
        for round in 0..<10_000 {
            open.append(try #require(watch.begin(volume: volume, handler: 1, tag: UInt32(round), operation: .write,
                                                 nowNs: UInt64(round))))
            if open.count == 3 { _ = watch.end(open.removeFirst()) }
        }
        #expect(watch.inFlightCount == 2)
        #expect(watch.slotCount == 3, "the table holds the most ever in flight, not one slot per I/O")
    }

    @Test func watchedIOOnARealVolumeCompletesToItsOwnerWithItsTag() throws {
        let logger = Logger(label: "test")
        let loop = try EventLoop(ringEntries: 64, poolBytes: 1 << 20, logger: logger)
        let (volume, path) = try scratchVolume(logger)
        defer { unlink(path) }
        volume.ioTimeoutNs = 60_000_000_000
        try volume.attach(to: loop)
        let collector = Collector()
        let id = loop.register(collector)
        let buffer = try #require(loop.pool.allocate(bytes: 4096))
        memset(buffer.pointer, 0x5a, 4096)
        loop.prepareVolumeIO(write: true, volume: volume, buffer: buffer.pointer, length: 4096, offset: 8192,
                             dsync: false, handler: id, tag: 11)
        loop.prepareFlush(volume: volume, handler: id, tag: 12)
        #expect(loop.watchedVolumeIO.inFlight == 2)
        for _ in 0..<1000 where collector.results.count < 2 { loop.runOnce() }
        #expect(collector.results[11] == 4096 && collector.results[12] == 0)
        #expect(loop.watchedVolumeIO.inFlight == 0)
    }
}
