// AdaptiveModeController: sync while the peer answers within the bound, async after the
// latency stayed above it for the hysteresis, sync again once drained and in time as long.
import TandemCore
import Testing

@Suite struct AdaptiveModeControllerTests {
    private static let ms: UInt64 = 1_000_000
    private func controller(boundMs: UInt64 = 10, switchMs: UInt64 = 100) -> AdaptiveModeController {
        AdaptiveModeController(settings: .init(latencyBoundNs: boundMs * Self.ms, switchAfterNs: switchMs * Self.ms))
    }

    @Test func staysSyncWhileAcknowledgementsAreInTime() {
        var c = controller()
        for step in 0..<1000 {
            let seen = AdaptiveModeController.Observation(latencyNs: 9 * Self.ms, drained: true)
            #expect(c.observe(seen, nowNs: UInt64(step) * Self.ms) == nil)
        }
        #expect(c.mode == .sync && c.switches == 0 && c.decisionDueNs == nil)
    }

    @Test func goesAsyncOnlyAfterTheLatencyStayedAboveTheBoundForTheHysteresis() {
        var c = controller()
        // Acks 10 ms over the bound for 90 ms (above it since 1 000 ms), then one in time:
        // the clock starts over.
        var now: UInt64 = 1_000 * Self.ms
        for _ in 0..<9 {
            now += 10 * Self.ms
            #expect(c.observe(.init(latencyNs: 20 * Self.ms, drained: false), nowNs: now) == nil)
        }
        #expect(c.observe(.init(latencyNs: 1 * Self.ms, drained: true), nowNs: now + 1) == nil)
        #expect(c.decisionDueNs == nil)
        // A stall: the oldest waiting write's age grows; it crossed the bound at now + 10 ms.
        let start = now
        var switched: AdaptiveModeController.Switch?
        for _ in 0..<1000 where switched == nil {
            now += 5 * Self.ms
            switched = c.observe(.init(latencyNs: now - start, drained: false), nowNs: now)
        }
        #expect(switched?.to == .async && c.mode == .async && c.switches == 1)
        #expect(now - start == 110 * Self.ms, "the bound (10 ms) plus the hysteresis (100 ms) after the stall began")
        #expect(c.lastReason?.contains("adaptive_latency_ms 10") == true)
    }

    @Test func returnsToSyncOnlyOnceDrainedAndInTimeForTheHysteresis() {
        var c = controller()
        var now: UInt64 = 1_000 * Self.ms
        _ = c.observe(.init(latencyNs: 500 * Self.ms, drained: false), nowNs: now)
        #expect(c.mode == .async)
        // Acks in time but the queue not drained: stays async however long.
        for _ in 0..<100 {
            now += 10 * Self.ms
            #expect(c.observe(.init(latencyNs: 5 * Self.ms, drained: false), nowNs: now) == nil)
        }
        // Drained and in time: sync after 100 ms, not before.
        let drainedAt = now + 10 * Self.ms
        var switched: AdaptiveModeController.Switch?
        for _ in 0..<1000 where switched == nil {
            now += 10 * Self.ms
            switched = c.observe(.init(latencyNs: 5 * Self.ms, drained: true), nowNs: now)
        }
        #expect(switched?.to == .sync && now - drainedAt == 100 * Self.ms && c.switches == 2)
        #expect(c.lastReason?.contains("drained") == true)
    }

    @Test func aPeerOutOfTheStreamMakesItAsyncAtOnceAndKeepsItSo() {
        var c = controller()
        let switched = c.observe(.init(latencyNs: 0, peerOutOfStream: true, drained: false), nowNs: 5)
        #expect(switched?.to == .async && switched?.reason.contains("Ahead") == true)
        for step in 1...1000 {
            #expect(c.observe(.init(latencyNs: 0, peerOutOfStream: true, drained: true), nowNs: 5 + UInt64(step) * Self.ms) == nil)
        }
        #expect(c.mode == .async)
    }

    @Test func aZeroHysteresisSwitchesOnTheFirstObservation() {
        var c = controller(switchMs: 0)
        #expect(c.observe(.init(latencyNs: 11 * Self.ms, drained: false), nowNs: 100 * Self.ms)?.to == .async)
        #expect(c.observe(.init(latencyNs: 1 * Self.ms, drained: true), nowNs: 101 * Self.ms)?.to == .sync)
    }
}
