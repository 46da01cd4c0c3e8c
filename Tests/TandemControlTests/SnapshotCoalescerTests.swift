// SnapshotCoalescer: readers at once share snapshots, the loop takes at most one per
// interval, and no reader gets a snapshot taken before it asked.
import Foundation
import Logging
import Synchronization
import Testing
import TandemIO
@testable import TandemDaemon

struct SnapshotCoalescerTests {
    @Test func readersShareSnapshotsAtMostOnePerIntervalAndNoneOlderThanItsRequest() throws {
        let loop = try Self.runningLoop()
        defer { loop.stop() }
        // `changes` counts changes completed; a snapshot holds the count when the loop took it.
        let changes = Atomic<Int>(0)
        let taken = Atomic<Int>(0)
        let intervalNs: UInt64 = 20_000_000
        let coalescer = SnapshotCoalescer(loop: loop, intervalNs: intervalNs) { () -> Int in
            taken.add(1, ordering: .relaxed)
            return changes.load(ordering: .sequentiallyConsistent)
        }
        let readers = 32, readsEach = 5
        let stale = Mutex<[String]>([])
        let done = DispatchGroup()
        let start = MonotonicClock.nowNs()
        for reader in 0..<readers {
            done.enter()
            Thread.detachNewThread {
                for read in 0..<readsEach {
                    // This reader's own change, completed before it asks.
                    let mine = changes.add(1, ordering: .sequentiallyConsistent).newValue
                    let snapshot = coalescer.read()
                    if snapshot.value < mine {
                        stale.withLock { $0.append("reader \(reader) read \(read): \(snapshot.value) < \(mine)") }
                    }
                }
                done.leave()
            }
        }
        try #require(done.wait(timeout: .now() + 30) == .success, "the readers did not finish within 30 s")
        let elapsedNs = MonotonicClock.nowNs() - start
        let staleReads = stale.withLock { $0 }
        #expect(staleReads.count == 0, "\(staleReads.prefix(3))")
        // 160 reads; the loop took at most one snapshot per interval (and the first at once).
        let snapshots = taken.load(ordering: .relaxed)
        #expect(snapshots <= 1 + Int(elapsedNs / intervalNs), "\(snapshots) snapshots in \(elapsedNs / 1_000_000) ms")
        #expect(snapshots < readers * readsEach, "no read was shared")
    }

    /// A loop running on a thread of its own (the ring is the thread's that made it), as the
    /// daemon's main thread runs it; `stop()` ends it.
    static func runningLoop() throws -> EventLoop {
        let made = Mutex<Result<EventLoop, IOError>?>(nil)
        let ready = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do throws(IOError) {
                let loop = try EventLoop(ringEntries: 16, poolBytes: 1 << 16, logger: Logger(label: "test"))
                made.withLock { $0 = .success(loop) }
                ready.signal()
                loop.run()
            } catch {
                made.withLock { $0 = .failure(error) }
                ready.signal()
            }
        }
        ready.wait()
        return try made.withLock { $0! }.get()
    }
}
