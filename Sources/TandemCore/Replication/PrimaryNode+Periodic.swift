// PrimaryNode's periodic mode (`mode: periodic`, `period_s`; docs/replication.md, *Periodic
// mode*): the WAN mode, built on Ahead and the catch-up session (PrimaryNode+Ahead).
//
// Between cycles the node is Ahead on purpose: each write is marked in the bitmap (and the
// activity log) and acknowledged once it is on this disk, never waiting for the peer, and no
// link is kept. A cycle is due every period, counted from the start of the one before. When
// one is due the node dials as any Ahead node does; the link carries a catch-up session whose
// copy reads each dirty region as it is now, so only the last write to a region ships. Writes
// during the cycle stream as in async mode. The cycle is complete when the catch-up's copy is
// (its last chunk durable on the peer, SyncComplete sent) and, from a peer of protocol 7 or
// later, the peer's CaughtUp came (its staged catch-up committed and applied: until then a
// failover to it would lose the cycle, and closing the link at once lost the SyncComplete
// itself — tandem-bench's truth check found both): the peer then holds every write
// acknowledged before the cycle started. The node goes Ahead again at once; the writes the
// stream still holds are marked for the next cycle. A cycle still running when the next is
// due delays it: the next starts when this one ends (`cyclesLate`). A link lost mid-cycle, or
// a buffer that fills, is handled as in async mode and the cycle goes on until it completes.
// The decisions are here, driven by each event's `nowNs` (the driver's ticks); no clock.

extension PrimaryNode {
    /// What periodic mode has done; nil-free so that status reads it without optionals.
    public struct PeriodicCycles: Sendable, Equatable {
        /// A cycle runs: from its dial until its catch-up is complete.
        public internal(set) var running = false
        /// When the running cycle started (its first dial).
        public internal(set) var runningSinceNs: UInt64 = 0
        /// When the next cycle is due: the last one's start + the period (0: at enable).
        public internal(set) var nextDueNs: UInt64 = 0
        /// The last completed cycle: its start, duration and bytes copied (0 before the first).
        public internal(set) var lastStartedNs: UInt64 = 0
        public internal(set) var lastDurationNs: UInt64 = 0
        public internal(set) var lastBytes: UInt64 = 0
        public internal(set) var completed: UInt64 = 0
        /// Cycles that started after their due time because the one before was still running.
        public internal(set) var late: UInt64 = 0
        /// The period as `set` last changed it (nil: the config's).
        var periodOverrideNs: UInt64?
    }

    /// `period_s` as it stands now, in ns; nil: not periodic.
    public var periodNs: UInt64? {
        guard let configured = config.periodNs else { return nil }
        return periodic.periodOverrideNs ?? configured
    }

    /// Periodic mode between cycles: Ahead and the link closed by design, nothing wrong.
    public var isBetweenCycles: Bool { periodNs != nil && !periodic.running && isAhead }

    /// Periodic mode and no cycle running: the node tracks instead of streaming. Not while a
    /// drain (planned failover) wants the peer to hold everything.
    var periodicAheadReason: String? {
        guard periodNs != nil, !periodic.running, !draining, !handingOver else { return nil }
        return Self.periodicTrackingReason
    }

    /// Why a periodic node goes Ahead after each cycle (and closes its link).
    static let periodicTrackingReason = "periodic mode: writes are tracked until the next cycle"

    /// Whether a dial may go now: outside periodic mode always; in it, only within a cycle, or
    /// when the next is due (or a drain wants the peer at once).
    func periodicLetsDial(nowNs: UInt64) -> Bool {
        guard periodNs != nil, !periodic.running else { return true }
        return nowNs >= periodic.nextDueNs || draining || handingOver
    }

    /// A dial in periodic mode outside a cycle starts one.
    mutating func startCycleIfIdle(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard periodNs != nil, !periodic.running else { return }
        periodic.running = true
        periodic.runningSinceNs = nowNs
        actions.append(.notice(.cycleStarted(bytes: bitmap.outOfSyncBytes)))
    }

    /// After every event: the running cycle is complete once its catch-up is (the copy done,
    /// the peer ready). Returns true when it completed (the node then goes Ahead).
    mutating func completeCycleIfDone(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) -> Bool {
        guard let period = periodNs, periodic.running, isPeerReady, !isAhead, !copyWanted, !restartPending,
            pendingSession == nil, peerInconsistentThroughEpoch == nil, confirmedOnLink != nil, !awaitingCaughtUp
        else { return false }
        periodic.running = false
        periodic.lastStartedNs = periodic.runningSinceNs
        periodic.lastDurationNs = nowNs - min(periodic.runningSinceNs, nowNs)
        periodic.lastBytes = copiedBytes
        periodic.completed += 1
        periodic.nextDueNs = periodic.runningSinceNs + period
        if nowNs >= periodic.nextDueNs { periodic.late += 1 }
        actions.append(.notice(.cycleCompleted(bytes: copiedBytes, durationNs: periodic.lastDurationNs)))
        return true
    }

    /// Milliseconds until the next cycle (0: due, or waiting for the running one to end).
    public func nextCycleInNs(nowNs: UInt64) -> UInt64 {
        guard periodNs != nil, !periodic.running else { return 0 }
        return periodic.nextDueNs - min(periodic.nextDueNs, nowNs)
    }

    /// The running cycle has passed the time the next one was due: it starts when this ends.
    public func cycleOverran(nowNs: UInt64) -> Bool {
        guard let period = periodNs, periodic.running else { return false }
        return nowNs >= periodic.runningSinceNs + period
    }

    /// `.setPeriod`: the next cycle is due one new period after the last one started.
    mutating func setPeriod(_ periodNs: UInt64) {
        precondition(periodNs > 0, "period 0")
        guard config.periodNs != nil else { return }
        periodic.periodOverrideNs = periodNs
        if periodic.completed > 0 { periodic.nextDueNs = periodic.lastStartedNs + periodNs }
    }
}
