// DiskTimeout: the one decision behind disk_timeout_ms, at its edges.
import Testing
import TandemCore

struct DiskTimeoutDecisionTests {
    @Test func anIOOutstandingLongerThanTheBoundIsOverdueAndNotBefore() {
        let bound: UInt64 = 2_000_000_000
        #expect(!DiskTimeout.isOverdue(submittedNs: 1_000, nowNs: 1_000 + bound, timeoutNs: bound))
        #expect(DiskTimeout.isOverdue(submittedNs: 1_000, nowNs: 1_001 + bound, timeoutNs: bound))
        #expect(!DiskTimeout.isOverdue(submittedNs: 1_000, nowNs: 1_000, timeoutNs: bound))
    }

    @Test func aTimeoutOfZeroNeverFailsAnything() {
        #expect(!DiskTimeout.isOverdue(submittedNs: 0, nowNs: UInt64.max, timeoutNs: 0))
    }

    @Test func aStampLaterThanTheClockIsNeverOverdue() {
        // No wrap-around into an enormous age.
        #expect(!DiskTimeout.isOverdue(submittedNs: 5_000_000_000, nowNs: 1, timeoutNs: 1_000_000_000))
    }

    @Test func theMessageNamesTheAgeAndTheBound() {
        let text = DiskTimeout.message(ageNs: 2_345_000_000, timeoutNs: 1_000_000_000)
        #expect(text == "timed out: no completion after 2345 ms (disk_timeout_ms 1000)")
    }
}
