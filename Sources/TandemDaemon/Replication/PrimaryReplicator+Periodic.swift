// PrimaryReplicator's side of periodic mode (PrimaryNode+Periodic decides): the period from
// the spec, a loop timer that wakes the node when the next cycle is due (the loop's tick is
// once a second), the `cycle-started` / `cycle-completed` events and the `periodic` status
// object. Loop thread only.
import TandemControl
import TandemCore

extension PrimaryReplicator {
    /// `period_s` in ns for `mode: periodic`; nil otherwise.
    static func periodNs(_ spec: ResourceSpec) -> UInt64? {
        guard spec.mode == .periodic, let seconds = spec.periodS else { return nil }
        return UInt64(seconds) * 1_000_000_000
    }

    /// `set period_s`: the next cycle is due one new period after the last one started.
    func setPeriod(seconds: UInt32) { feed(.setPeriod(ns: UInt64(seconds) * 1_000_000_000)) }

    /// After every event: between cycles, a timer at the instant the next one is due.
    func armCycleTimer() {
        guard peekNode({ $0.periodNs != nil && $0.enabled && !$0.periodic.running && !$0.stopping }) else { return }
        let dueNs = node.periodic.nextDueNs
        guard dueNs > ReplicationContext.nowNs(), cycleTimerArmedNs != dueNs else { return }
        cycleTimerArmedNs = dueNs
        context.loop.runAt(deadlineNs: dueNs) { [weak self] in
            // A superseded timer (the period changed) finds another deadline armed.
            guard let self, self.cycleTimerArmedNs == dueNs else { return }
            self.cycleTimerArmedNs = 0
            self.feed(.tick)
        }
    }

    func noticedCycle(_ notice: PrimaryNotice) {
        switch notice {
        case let .cycleStarted(bytes):
            logger.info("periodic cycle starts", metadata: ["resource": "\(resource)", "out_of_sync_bytes": "\(bytes)"])
            context.events.publish(resource: resource, "cycle-started", ["out_of_sync_bytes": .int(Int64(clamping: bytes))])
        case let .cycleCompleted(bytes, durationNs):
            logger.info("periodic cycle completed: the peer holds every write acknowledged before it started",
                        metadata: ["resource": "\(resource)", "bytes": "\(bytes)", "duration_ms": "\(durationNs / 1_000_000)"])
            context.events.publish(resource: resource, "cycle-completed", [
                "bytes": .int(Int64(clamping: bytes)), "duration_ms": .int(Int64(clamping: durationNs / 1_000_000)),
            ])
        default:
            break
        }
    }

    /// The `periodic` status object (mode periodic only).
    var periodicStatus: JSONValue? {
        guard let periodNs = node.periodNs else { return nil }
        let now = ReplicationContext.nowNs()
        let cycles = node.periodic
        var fields: [String: JSONValue] = [
            "period_s": .int(Int64(periodNs / 1_000_000_000)),
            "cycle_running": .bool(cycles.running),
            "cycles_completed": .int(Int64(clamping: cycles.completed)),
            "cycles_late": .int(Int64(clamping: cycles.late)),
            "next_cycle_in_ms": .int(Int64(clamping: node.nextCycleInNs(nowNs: now) / 1_000_000)),
            // The running cycle outlasted its period: the next starts when it ends.
            "next_cycle_waits_for_running": .bool(node.cycleOverran(nowNs: now)),
        ]
        if cycles.running {
            fields["cycle_running_ms"] = .int(Int64(clamping: (now - min(cycles.runningSinceNs, now)) / 1_000_000))
        }
        if cycles.completed > 0 {
            // Monotonic instants as wall-clock milliseconds since the epoch, as events' `time_ms`.
            let ageMs = Int64(clamping: (now - min(cycles.lastStartedNs, now)) / 1_000_000)
            fields["last_cycle_started_time_ms"] = .int(EventHub.wallClockMs() - ageMs)
            fields["last_cycle_duration_ms"] = .int(Int64(clamping: cycles.lastDurationNs / 1_000_000))
            fields["last_cycle_bytes"] = .int(Int64(clamping: cycles.lastBytes))
        }
        return .object(fields)
    }
}
