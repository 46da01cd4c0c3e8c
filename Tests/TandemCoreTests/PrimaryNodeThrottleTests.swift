// PrimaryNode's `resync_rate`: a full copy driven with a fake clock, as the driver would
// (a `.tick` at `resyncRetryAtNs`, chunk reads answered at once, the peer confirming), checking
// at every read that the copy's bytes never exceed rate × elapsed + burst, across live changes.
import TandemCore
import Testing

/// A copying node, its clock, and the reads it asked for.
private struct CopyDriver {
    var node: PrimaryNode
    var nowNs: UInt64 = 1_000_000_000
    var random: SplitMix64
    /// Every copy read: when it was asked for and how long it is.
    var reads: [(atNs: UInt64, bytes: UInt64)] = []
    var events: [PrimaryNodeEvent] = []
    var localPending: [WriteSequence] = []
    /// Sent and not yet acknowledged by the fake peer; the newest epoch the stream closed.
    var unacknowledged: [WriteSequence] = []
    var closedEpoch: Epoch = 0
    var copyDone = false
    var nextRequest: RequestID = 1
    /// Application writes go on during the copy (the cap must not count them, and a copy
    /// waiting for quiet must not spend tokens it does not use).
    var writing: Bool
    /// An application write at every step (otherwise one step in four).
    var writeEveryStep: Bool

    init(rate: UInt64, volumeBytes: UInt64 = 64 << 20, bufferBytes: UInt64 = 8 << 20, seed: UInt64, writing: Bool = true,
         writeEveryStep: Bool = false) {
        node = PrimaryNode(
            config: PrimaryNodeConfig(
                primary: ReplicationPrimaryConfig(mode: .async, bufferBytesMax: bufferBytes),
                volumeSizeBytes: volumeBytes, resyncRateBytesPerSecond: rate),
            session: 77, basis: .fullCopy)
        random = SplitMix64(seed: seed)
        self.writing = writing
        self.writeEveryStep = writeEveryStep
        for event in [PrimaryNodeEvent.enable, .linkUp, .peer(.hello(durableThroughEpoch: 0, copy: .inconsistent))] {
            handle(event)
        }
    }

    mutating func handle(_ event: PrimaryNodeEvent) {
        var actions: [PrimaryNodeAction] = []
        node.handle(event, nowNs: nowNs, into: &actions)
        for action in actions {
            switch action {
            case let .readCopyChunk(offset, length):
                reads.append((nowNs, UInt64(length)))
                events.append(.copyChunkRead(offsetBytes: offset, lengthBytes: length, errno: 0))
            case let .writeLocal(write) where write.source != .copyChunk:
                localPending.append(write.sequence)
            case .notice(.copyDone):
                copyDone = true
            case let .send(.data(data)):
                unacknowledged.append(data.sequence)
                closedEpoch = max(closedEpoch, data.epoch - 1)
            case let .send(.epochBarrier(epoch)), let .send(.flushRequest(epoch)):
                closedEpoch = max(closedEpoch, epoch)
            case let .protocolViolation(reason):
                Issue.record("protocol violation: \(reason)")
            default:
                break
            }
        }
    }

    /// Handles what is due now, then moves the clock: at most to the node's retry time.
    mutating func step() {
        while !events.isEmpty { handle(events.removeFirst()) }
        var next = nowNs + UInt64.random(in: 1_000_000...20_000_000, using: &random)
        if let retry = node.resyncRetryAtNs, retry > nowNs { next = min(next, retry) }
        nowNs = next
        handle(.tick)
        for sequence in unacknowledged { handle(.peer(.dataAck(sequence: sequence))) }
        unacknowledged.removeAll()
        if closedEpoch > node.primary.peerDurableEpoch { handle(.peer(.durableThroughEpoch(closedEpoch))) }
        for sequence in localPending { handle(.localWriteDone(sequence: sequence, errno: 0)) }
        localPending.removeAll()
        if writing && (writeEveryStep || UInt64.random(in: 0..<4, using: &random) == 0) {
            let offset = UInt64.random(in: 0..<(node.config.volumeSizeBytes >> 12), using: &random) << 12
            handle(.request(id: nextRequest, .write(offsetBytes: offset, lengthBytes: 4096, fua: false)))
            nextRequest += 1
        }
    }

    /// The reads from index `first` on (asked at or after `fromNs`), checked at every read:
    /// their bytes never exceed rate × elapsed + burst.
    func checkBound(
        rate: UInt64, burst: UInt64, fromNs: UInt64, first: Int = 0, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        var bytes: UInt64 = 0
        for read in reads[first...] {
            bytes += read.bytes
            let allowed = rate * (read.atNs - fromNs) / 1_000_000_000 + burst
            #expect(bytes <= allowed, "\(bytes) bytes read \(read.atNs - fromNs) ns after the cap of \(rate) B/s",
                    sourceLocation: sourceLocation)
            if bytes > allowed { return }
        }
    }
}

@Suite struct PrimaryNodeThrottleTests {
    static let burst: UInt64 = 1 << 20

    @Test func aCappedCopyNeverReadsMoreThanRateTimesTimePlusBurstAndKeepsPace() {
        for seed in UInt64(1)...4 {
            let rate: UInt64 = 8 << 20
            var driver = CopyDriver(rate: rate, seed: seed)
            let start = driver.nowNs
            let configured = driver.node.resyncRateBytesPerSecond
            #expect(configured == rate)
            while !driver.copyDone && driver.nowNs < start + 60_000_000_000 { driver.step() }
            let done = driver.copyDone
            #expect(done, "the copy finishes (seed \(seed))")
            guard done else { return }
            driver.checkBound(rate: rate, burst: Self.burst, fromNs: start)
            // Woken at the retry time, the copy runs at the cap: the first chunk goes with the
            // burst, the 63 others one per 1/8 s: the last is read at 7.875 s.
            let lastRead = driver.reads.last!.atNs - start
            #expect(lastRead >= 7_875_000_000 && lastRead <= 8_100_000_000, "last read after \(lastRead) ns (seed \(seed))")
        }
    }

    @Test func aLiveRateChangeHoldsFromTheChangeOnAndZeroSelectsTheController() {
        var driver = CopyDriver(rate: 32 << 20, seed: 9)
        while driver.reads.reduce(0, { $0 + $1.bytes }) < 16 << 20 && driver.nowNs < 10_000_000_000 { driver.step() }
        let (slowFrom, slowFirst) = (driver.nowNs, driver.reads.count)
        driver.handle(.setResyncRate(bytesPerSecond: 2 << 20))
        let changed = driver.node.resyncRateBytesPerSecond
        #expect(changed == 2 << 20)
        while driver.nowNs < slowFrom + 3_000_000_000 { driver.step() }
        driver.checkBound(rate: 2 << 20, burst: Self.burst, fromNs: slowFrom, first: slowFirst)
        let slowBytes = driver.reads[slowFirst...].reduce(0) { $0 + $1.bytes }
        #expect(slowBytes >= 4 << 20, "the copy goes on at the new rate: \(slowBytes)")
        // 0: the dynamic controller; the application writes now and then, so the rest goes
        // well above the floor (32 MiB/s), with no retry pending once done.
        let fastFrom = driver.nowNs
        driver.handle(.setResyncRate(bytesPerSecond: 0))
        while !driver.copyDone && driver.nowNs < fastFrom + 60_000_000_000 { driver.step() }
        let (done, retry, tookNs) = (driver.copyDone, driver.node.resyncRetryAtNs, driver.nowNs - fastFrom)
        #expect(done && retry == nil)
        #expect(tookNs < 2_000_000_000, "under the controller, the rest takes \(tookNs) ns")
        // And from the controller back to a cap: a new bucket, full, bounds it from the change.
        var again = CopyDriver(rate: 0, seed: 10)
        while again.reads.count < 8 && again.nowNs < 10_000_000_000 { again.step() }
        let (cappedFrom, cappedFirst) = (again.nowNs, again.reads.count)
        again.handle(.setResyncRate(bytesPerSecond: 4 << 20))
        while again.nowNs < cappedFrom + 2_000_000_000 { again.step() }
        again.checkBound(rate: 4 << 20, burst: Self.burst, fromNs: cappedFrom, first: cappedFirst)
    }

    @Test func aRefusedReadLeavesARetryTimeAndTheTickAtItReadsIt() {
        var driver = CopyDriver(rate: 1 << 20, volumeBytes: 4 << 20, seed: 3, writing: false)
        driver.step()  // the first chunk went with the full burst; the second is refused
        let reads = driver.reads.count
        guard let retry = driver.node.resyncRetryAtNs else {
            Issue.record("a refused read leaves no retry time")
            return
        }
        #expect(retry > driver.nowNs)
        driver.nowNs = retry - 1
        driver.handle(.tick)
        let early = driver.reads.count
        #expect(early == reads, "one nanosecond early is refused")
        driver.nowNs = retry
        driver.handle(.tick)
        let onTime = driver.reads.count
        #expect(onTime == reads + 1, "at the retry time the read goes")
    }
}

/// `resync_rate: 0`: the dynamic controller, driven as the daemon drives it (a `.tick` at the
/// retry time, or every millisecond or so), with a fake peer that confirms at once.
@Suite struct PrimaryNodeDynamicRateTests {
    static let floor: UInt64 = 32 << 20

    /// Steps for `forNs` (or until the copy is done): the copy's bytes read meanwhile, and the time.
    private static func run(_ driver: inout CopyDriver, forNs: UInt64) -> (bytes: UInt64, ns: UInt64) {
        let (fromNs, first) = (driver.nowNs, driver.reads.count)
        while driver.nowNs < fromNs + forNs && !driver.copyDone { driver.step() }
        return (driver.reads[first...].reduce(0) { $0 + $1.bytes }, driver.nowNs - fromNs)
    }

    private static func rate(_ sample: (bytes: UInt64, ns: UInt64)) -> UInt64 {
        sample.bytes * 1_000_000_000 / max(sample.ns, 1)
    }

    @Test func applicationWritesBringTheCopyDownToTheFloorAndNeverBelowIt() {
        for seed in UInt64(1)...3 {
            var driver = CopyDriver(rate: 0, volumeBytes: 1 << 30, seed: seed, writing: true, writeEveryStep: true)
            _ = Self.run(&driver, forNs: 300_000_000)  // the ceiling halves each busy step
            let busy = Self.rate(Self.run(&driver, forNs: 2_000_000_000))
            #expect(busy >= Self.floor * 95 / 100, "busy: \(busy) B/s, floor \(Self.floor) (seed \(seed))")
            #expect(busy <= Self.floor * 115 / 100, "busy: \(busy) B/s, floor \(Self.floor) (seed \(seed))")
            let target = driver.node.resyncTargetBytesPerSecond
            #expect(target >= Self.floor && target <= Self.floor * 11 / 10, "target \(target) (seed \(seed))")
        }
    }

    @Test func idleTheCopyRisesWellAboveTheFloor() {
        var driver = CopyDriver(rate: 0, volumeBytes: 1 << 30, seed: 5, writing: true, writeEveryStep: true)
        _ = Self.run(&driver, forNs: 500_000_000)
        let busy = Self.rate(Self.run(&driver, forNs: 1_000_000_000))
        driver.writing = false
        _ = Self.run(&driver, forNs: 300_000_000)
        let idle = Self.rate(Self.run(&driver, forNs: 1_000_000_000))
        #expect(idle >= 4 * busy, "idle \(idle) B/s, busy \(busy) B/s")
        #expect(idle >= 4 * Self.floor, "idle \(idle) B/s")
    }

    @Test func aLiveFloorChangeIsObeyed() {
        var driver = CopyDriver(rate: 0, volumeBytes: 1 << 30, seed: 7, writing: true, writeEveryStep: true)
        _ = Self.run(&driver, forNs: 500_000_000)
        let floor: UInt64 = 96 << 20
        driver.handle(.setResyncRateMin(bytesPerSecond: floor))
        let current = driver.node.resyncRateMinBytesPerSecond
        #expect(current == floor)
        _ = Self.run(&driver, forNs: 100_000_000)
        let raised = Self.rate(Self.run(&driver, forNs: 2_000_000_000))
        #expect(raised >= floor * 95 / 100 && raised <= floor * 115 / 100, "raised floor: \(raised) B/s")
        driver.handle(.setResyncRateMin(bytesPerSecond: 8 << 20))
        _ = Self.run(&driver, forNs: 100_000_000)
        let lowered = Self.rate(Self.run(&driver, forNs: 2_000_000_000))
        #expect(lowered >= (8 << 20) * 95 / 100 && lowered <= (8 << 20) * 115 / 100, "lowered floor: \(lowered) B/s")
    }
}

/// `.resyncPermitted`: the daemon's `resync_concurrency_max` slot.
@Suite struct PrimaryNodeResyncPermitTests {
    @Test func withoutAPermitTheCopyReadsNothingAndSaysPausedSyncUntilItIsGiven() {
        var driver = CopyDriver(rate: 0, volumeBytes: 16 << 20, seed: 11, writing: true)
        driver.reads.removeAll()  // the copy's first read went at the peer's hello
        driver.handle(.resyncPermitted(false))
        while driver.nowNs < 3_000_000_000 { driver.step() }
        let (paused, state, reads) = (driver.node.copyWanted, driver.node.streamState, driver.reads.count)
        #expect(paused && state == .pausedSync && reads == 0, "\(state), \(reads) reads while paused")
        let retry = driver.node.resyncRetryAtNs
        #expect(retry == nil, "a paused copy asks for no tick")
        driver.handle(.resyncPermitted(true))
        let resumed = driver.node.streamState
        #expect(resumed == .syncSource)
        while !driver.copyDone && driver.nowNs < 30_000_000_000 { driver.step() }
        let (done, state2) = (driver.copyDone, driver.node.streamState)
        #expect(done && state2 == .established, "\(state2)")
    }
}

// The burst at high caps (10 ms of the rate, up to the copy's window): with a burst of one
// chunk, each event read one chunk and asked for a pacer wake-up a microsecond later.
extension PrimaryNodeThrottleTests {
    @Test func aCapAboveTheWindowReadsTheCopysShareAtOnceAndAsksForNoWakeUp() {
        // 1 TiB/s, Benchmarks/resync.sh's "no cap": 10 ms of it exceeds the window, so the
        // first event reads as many chunks as the buffer's copy share holds (16 of 32 MiB).
        var driver = CopyDriver(rate: 1 << 40, bufferBytes: 32 << 20, seed: 5, writing: false)
        let (reads, retry) = (driver.reads.count, driver.node.resyncRetryAtNs)
        #expect(reads == 16, "chunks read by the first event")
        #expect(retry == nil, "no pacer wake-up while the cap admits every chunk")
        while !driver.copyDone && driver.nowNs < 60_000_000_000 { driver.step() }
        #expect(driver.copyDone)
    }

    @Test func aHighCapGoesTenMillisecondsOfItsRateAtOnceAndKeepsTheBound() {
        let rate: UInt64 = 1 << 30
        let burst = rate / 100  // 10 ms of 1 GiB/s: 10 chunks of 1 MiB
        var driver = CopyDriver(rate: rate, volumeBytes: 256 << 20, bufferBytes: 64 << 20, seed: 6)
        let start = driver.nowNs
        let first = driver.reads.count
        #expect(first == 10, "chunks read by the first event")
        while !driver.copyDone && driver.nowNs < start + 60_000_000_000 { driver.step() }
        #expect(driver.copyDone)
        driver.checkBound(rate: rate, burst: burst, fromNs: start)
    }

    @Test func aLiveChangeDownFromAHighCapKeepsNoMoreThanTheNewBurst() {
        var driver = CopyDriver(rate: 1 << 40, volumeBytes: 256 << 20, bufferBytes: 32 << 20, seed: 7)
        driver.step()  // the 16 chunks of the first event released, the bucket full again
        let (from, first) = (driver.nowNs, driver.reads.count)
        driver.handle(.setResyncRate(bytesPerSecond: 8 << 20))
        while driver.nowNs < from + 2_000_000_000 { driver.step() }
        driver.checkBound(rate: 8 << 20, burst: Self.burst, fromNs: from, first: first)
        // And back up: the burst grows again with the rate (from the tokens kept, at most the
        // old burst: 1 ms later the bucket holds the window).
        driver.handle(.setResyncRate(bytesPerSecond: 1 << 40))
        while !driver.events.isEmpty { driver.handle(driver.events.removeFirst()) }
        driver.nowNs += 1_000_000
        let before = driver.reads.count
        driver.handle(.tick)
        let read = driver.reads.count - before
        #expect(read >= 8, "chunks read by one event 1 ms after raising the cap: \(read)")
    }
}
