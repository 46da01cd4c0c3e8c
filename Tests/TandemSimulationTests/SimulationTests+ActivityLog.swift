import Testing
import TandemCore

// The seeded-fault checkers SeededFaultCheck names (their seeds move with the activity log's
// batching rule, SeededFaultSurvey.swift), and the activity log's other checker.

extension SimulationTests {
    @Test func checkerCatchesASyncWriteAppliedAheadOverAnOutstandingOne() {
        let check = SeededFaultCheck.syncWriteAppliedAhead
        let caught = firstFailure(check)
        #expect(caught != nil, "the checker never noticed an overtaking write in seeds \(check.seedsNow)")
    }

    /// Overlapping application writes (the core serialises them on the primary): a secondary
    /// that applies a later overlapping write before an earlier one completed can leave the
    /// older data in place.
    @Test func checkerCatchesASecondaryApplyingOverlappingWritesOutOfOrder() {
        let check = SeededFaultCheck.overlappingWritesOutOfOrder
        let caught = firstFailure(check)
        #expect(caught != nil, "the checker never noticed overlapping writes applied out of order in seeds \(check.seedsNow)")
    }

    /// ActivityLogTestingFault.releasesAtLocalCompletion: an extent leaves the primary's
    /// activity log while the peer still lacks its write, so a crash restart's catch-up never
    /// copies it (every run has a primary kill -9 and an activity log).
    @Test func checkerCatchesAnActivityLogThatReleasesExtentsAtLocalCompletion() {
        let check = SeededFaultCheck.releasesAtLocalCompletion
        let caught = firstFailure(check)
        #expect(caught != nil, "the checker never noticed an activity log that forgot writes the peer lacked in seeds \(check.seedsNow)")
    }

    /// ActivityLogTestingFault.evictsBeforePagesPersisted: an extent leaves the log while the
    /// bitmap pages holding its bits (set Ahead) are not on disk, so a crash restart that
    /// counts the pages never copies them.
    /// ActivityLogTestingFault.skipsEvictionFlush: the flush an eviction needs (the leaving
    /// extent had a write released after the last flush) is skipped, so a power loss takes
    /// writes the peer holds from a region no crash restart copies. The real log skips only
    /// the flushes an earlier one already covers.
    @Test func checkerCatchesAnActivityLogThatEvictsWithoutFlushingTheVolume() {
        let check = SeededFaultCheck.evictsWithoutFlushing
        let caught = firstFailure(check)
        #expect(caught != nil, "the checker never noticed evictions without a volume flush in seeds \(check.seedsNow)")
    }

    /// ActivityLogTestingFault.formsFromDurableSetOnly: with two transactions in flight, the
    /// second holds the last durable set and its own joiners but not the first's; once the
    /// first is durable its writes are issued, and a crash that leaves the second newest on
    /// disk catches up a set without them (rule 2 of docs/tracking.md, *Transactions in
    /// flight*). (`countsFlushWhenAsked`, rule 4's fault, is caught by ActivityLogTests; in
    /// this shape's seeds 1–200 a power loss never met its window, one flush long.)
    @Test func checkerCatchesAnActivityLogThatFormsATransactionWithoutTheJoinersInFlight() {
        let check = SeededFaultCheck.formsFromDurableSetOnly
        let caught = firstFailure(check)
        #expect(caught != nil, "the checker never noticed a transaction without the joiners in flight in seeds \(check.seedsNow)")
    }

    @Test func checkerCatchesAnActivityLogThatEvictsBeforeItsPagesArePersisted() {
        let caught = firstFailure(with: .activityLogEvictsBeforePagesPersisted) { _ in true }
        #expect(caught != nil, "the checker never noticed evictions before their bitmap pages in \(Self.faultSeeds) seeds")
    }
}
