// CopyTrace: a copy chunk's hops count once each under the `copy` operation, the depth of each
// stage is integrated over time (so a mean depth says where the window's chunks sat), the
// socket hop follows the ciphertext total, and a lost link sends chunks back to wait for
// their re-send without counting the outage.
import Testing
@testable import TandemIO

struct CopyTraceTests {
    func stamp(_ us: UInt64, turn: UInt64 = 0) -> TraceStamp { TraceStamp(ns: 1_000_000 + us * 1_000, turn: turn) }

    func phase(_ trace: RequestTrace, _ phase: TracePhase) -> PhaseSnapshot? {
        trace.snapshot.phases.first { $0.operation == .copy && $0.phase == phase }
    }

    /// One chunk in slot `slot` through every hop, `us` apart starting at `start` µs.
    func pass(_ trace: RequestTrace, slot: Int, start: UInt64, mark: UInt64) {
        trace.copyReadSubmitted(slot: slot, at: stamp(start))
        trace.copyReadCompleted(slot: slot, at: stamp(start + 100))
        trace.copyAdmitted(slot: slot, sequence: UInt64(slot + 1))
        trace.copyHanded(slot: slot, at: stamp(start + 110))
        trace.copyEncrypted(slot: slot, mark: mark, at: stamp(start + 400))
    }

    @Test func eachHopOfAChunkCountsOnceUnderTheCopyOperation() throws {
        let trace = RequestTrace()
        trace.enable()
        pass(trace, slot: 3, start: 0, mark: 1_000)
        trace.copyCiphertextSent(through: 999, at: stamp(450))  // one byte short: still unsent
        #expect(phase(trace, .copySocket) == nil)
        trace.copyCiphertextSent(through: 1_000, at: stamp(500))
        trace.copyAcknowledged(slot: 3, at: stamp(900))
        trace.copyAcknowledged(slot: 3, at: stamp(950))  // a re-acknowledgement counts once
        trace.copyReleased(slot: 3, at: stamp(2_900))
        let expected: [(TracePhase, UInt64)] = [
            (.copyRead, 100_000), (.copyAdmit, 10_000), (.copyEncrypt, 290_000), (.copySocket, 100_000),
            (.copyApplied, 400_000), (.copyDurable, 2_000_000), (.copyTotal, 2_900_000),
        ]
        for (name, ns) in expected {
            let counted = try #require(phase(trace, name), "\(name.label)")
            #expect(counted.count == 1 && counted.sumNs == ns, "\(name.label)")
        }
    }

    @Test func theMeanDepthOfAStageIsTheTimeChunksSpentInItOverTheSpan() throws {
        let trace = RequestTrace()
        trace.enable()
        // Two chunks: both read for 100 µs, then unsent until 500, unacknowledged to 900,
        // undurable to 2,900 (both released together, as a DurableAck releases an epoch).
        for slot in [0, 1] { trace.copyReadSubmitted(slot: slot, at: stamp(0)) }
        for slot in [0, 1] { trace.copyReadCompleted(slot: slot, at: stamp(100)) }
        for slot in [0, 1] { trace.copyHanded(slot: slot, at: stamp(110)) }
        for (slot, mark) in [(0, 10), (1, 20)] as [(Int, UInt64)] { trace.copyEncrypted(slot: slot, mark: mark, at: stamp(400)) }
        trace.copyCiphertextSent(through: 20, at: stamp(500))  // both marks passed at once
        trace.copyAcknowledged(slot: 0, at: stamp(900))
        trace.copyAcknowledged(slot: 1, at: stamp(900))
        trace.copyReleased(slot: 0, at: stamp(2_900))
        trace.copyReleased(slot: 1, at: stamp(2_900))
        let copy = try #require(trace.snapshot.copy)
        #expect(copy.spanNs == 2_900_000)
        func mean(_ stage: CopyStage) -> Double { copy.meanDepths[stage.rawValue] }
        #expect(abs(mean(.reading) - 2 * 100.0 / 2_900) < 1e-9)
        #expect(abs(mean(.undurable) - 2 * 2_000.0 / 2_900) < 1e-9)
        #expect(mean(.unsent) > mean(.admitting))
        // Two chunks held for the whole span.
        #expect(copy.heldShares.count == 1 && copy.heldShares[0][0] == 2 && abs(copy.heldShares[0][1] - 1) < 1e-9)
        #expect(copy.samples.first?.depths == [1, 0, 0, 0, 0])  // the first hop is sampled
    }

    @Test func aLostLinkSendsChunksBackToWaitAndADiscardedReadCountsNothing() throws {
        let trace = RequestTrace()
        trace.enable()
        pass(trace, slot: 5, start: 0, mark: 100)
        trace.copyLinkLost(at: stamp(600))
        trace.copyCiphertextSent(through: 100, at: stamp(700))  // the old link's bytes: nothing
        #expect(phase(trace, .copySocket) == nil)
        #expect(trace.copy.depths[CopyStage.admitting.rawValue] == 1)
        // The re-send: handed again, encrypted on the new link.
        trace.copyHanded(slot: 5, at: stamp(5_000))
        trace.copyEncrypted(slot: 5, mark: 50, at: stamp(5_200))
        trace.copyCiphertextSent(through: 50, at: stamp(5_300))
        #expect(phase(trace, .copySocket)?.count == 1)
        #expect(phase(trace, .copyAdmit)?.count == 1)  // from an unset stamp: not counted again
        // A read that ended in a discard releases its slot without a total.
        trace.copyReadSubmitted(slot: 6, at: stamp(6_000))
        trace.copyReadCompleted(slot: 6, at: stamp(6_100))
        trace.copyReleased(slot: 6, at: stamp(6_200))
        #expect(phase(trace, .copyTotal) == nil)
        #expect(trace.copy.depths == [0, 0, 0, 1, 0])
    }
}
