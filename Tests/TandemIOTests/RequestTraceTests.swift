// RequestTrace: what a hop records (time and turn buckets per operation and phase), that an
// unstamped hop or a disabled trace records nothing, that enabling resets, that sequence
// stamps are trusted only for their own sequence, and the quantiles `tandemctl trace` prints.
import Testing
@testable import TandemIO

struct RequestTraceTests {
    func stamp(_ ns: UInt64, turn: UInt64) -> TraceStamp { TraceStamp(ns: ns, turn: turn) }

    func phase(_ trace: RequestTrace, _ operation: TraceOperation, _ phase: TracePhase) -> PhaseSnapshot? {
        trace.snapshot.phases.first { $0.operation == operation && $0.phase == phase }
    }

    @Test func aHopCountsItsTimeAndTurnsUnderItsOperationAndPhase() throws {
        let trace = RequestTrace()
        trace.enable()
        trace.record(.write, .local, from: stamp(1_000, turn: 10), to: stamp(41_000, turn: 12))  // 40 µs, 2 turns
        trace.record(.write, .local, from: stamp(1_000, turn: 10), to: stamp(1_500, turn: 10))   // 0.5 µs, same turn
        trace.record(.read, .local, from: stamp(1_000, turn: 1), to: stamp(3_001_000, turn: 40))  // 3 ms, 39 turns
        let writes = try #require(phase(trace, .write, .local))
        #expect(writes.count == 2)
        #expect(writes.sumNs == 40_500)
        #expect(writes.turnSum == 2)
        // 0.5 µs falls in the first bucket (≤ 1 µs), 40 µs in (30, 40].
        #expect(writes.bucketCounts[0] == 1)
        #expect(writes.bucketCounts[RequestTrace.boundsNs.firstIndex(of: 40_000)!] == 1)
        #expect(writes.turnBucketCounts[0] == 1 && writes.turnBucketCounts[2] == 1)
        let reads = try #require(phase(trace, .read, .local))
        #expect(reads.count == 1 && reads.turnBucketCounts.last == 1)  // 39 turns: beyond the last bound
        #expect(trace.snapshot.phases.count == 2)  // phases that counted nothing are not listed
    }

    @Test func nothingIsCountedWhileOffOrFromAHopThatWasNotStamped() {
        let trace = RequestTrace()
        trace.record(.write, .total, from: stamp(1, turn: 0), to: stamp(2, turn: 0))  // never enabled
        #expect(trace.snapshot == RequestTraceSnapshot.off)
        trace.enable()
        trace.record(.write, .total, from: .none, to: stamp(5_000, turn: 3))
        #expect(trace.snapshot.phases.isEmpty)
        trace.record(.write, .total, from: stamp(1, turn: 0), to: stamp(2, turn: 0))
        trace.disable()
        trace.record(.write, .total, from: stamp(1, turn: 0), to: stamp(2, turn: 0))
        #expect(phase(trace, .write, .total)?.count == 1)  // kept after disable, not added to
        #expect(trace.snapshot.enabled == false && trace.snapshot.everEnabled)
        trace.enable()
        #expect(trace.snapshot.phases.isEmpty)  // enabling starts from zero
    }

    @Test func sequenceStampsAreTrustedOnlyForTheirOwnSequence() {
        let trace = RequestTrace()
        trace.enable()
        let first = trace.begin(7, at: stamp(100, turn: 1))
        first.pointee.link = stamp(200, turn: 2)
        #expect(trace.existingStamps(7)?.pointee.link == stamp(200, turn: 2))
        #expect(trace.existingStamps(8) == nil)
        // A later write in the same slot takes it over: the earlier one is no longer found.
        _ = trace.begin(7 + UInt64(RequestTrace.sequenceSlots), at: stamp(300, turn: 3))
        #expect(trace.existingStamps(7) == nil)
        trace.disable()
        #expect(trace.existingStamps(7 + UInt64(RequestTrace.sequenceSlots)) == nil)
    }

    @Test func quantilesInterpolateInsideTheirBucketAsPrometheusDoes() throws {
        let trace = RequestTrace()
        trace.enable()
        // 100 hops in (12, 15] µs and 100 in (120, 150] µs.
        for _ in 0..<100 { trace.record(.read, .total, from: stamp(1, turn: 0), to: stamp(13_001, turn: 1)) }
        for _ in 0..<100 { trace.record(.read, .total, from: stamp(1, turn: 0), to: stamp(130_001, turn: 3)) }
        let total = try #require(phase(trace, .read, .total))
        #expect(total.quantileNs(0.25) == 13_500)  // halfway through (12 µs, 15 µs]
        #expect(total.quantileNs(0.5) == 15_000)
        #expect(total.quantileNs(0.99) == 149_400)
        #expect(total.quantileTurns(0.5) == 1)
        #expect(total.quantileTurns(0.99) == 3)
    }

    @Test func bucketBoundsRunFromOneMicrosecondToOneSecondInOrder() {
        let bounds = RequestTrace.boundsNs
        #expect(bounds.first == 1_000 && bounds.last == 1_000_000_000)
        #expect(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 })
        #expect(bounds.contains(1_200) && bounds.contains(80_000) && bounds.contains(500_000_000))
        #expect(bounds.count == 61)
    }

    @Test func everyDurationLandsInTheFirstBucketThatHoldsIt() {
        let bounds = RequestTrace.boundsNs
        for durationNs: UInt64 in [0, 1, 999, 1_000, 1_001, 1_200, 1_201, 79_999, 80_000, 999_999_999, 1_000_000_000,
                                   1_000_000_001, .max] {
            let index = RequestTrace.bucket(durationNs)
            let expected = bounds.firstIndex { durationNs <= $0 } ?? bounds.count
            #expect(index == expected, "\(durationNs) ns")
        }
    }
}
