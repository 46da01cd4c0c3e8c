// What `tandemctl status` and `tandemctl events` print for people, from fixed status fields:
// the table's shape, the reason given for every state that is not healthy, the progress bar,
// and the event line.
import Testing
import TandemControl

@Suite struct StatusReportTests {
    static let healthyPrimary: [String: JSONValue] = [
        "name": .string("r0"), "role": .string("primary"), "enabled": .bool(true),
        "connection_state": .string("Connected"), "disk_state": .string("UpToDate"),
        "peer_disk_state": .string("UpToDate"), "replication_state": .string("Established"),
        "out_of_sync_bytes": .int(0), "lag_bytes": .int(1536), "rpo_ms": .int(350), "writes_blocked": .bool(false),
        "resync_progress": .double(1),
    ]

    @Test func sizesRatesAndDurationsUseHumanUnits() {
        #expect(HumanUnits.bytes(0) == "0B")
        #expect(HumanUnits.bytes(1023) == "1023B")
        #expect(HumanUnits.bytes(1536) == "1.5KiB")
        #expect(HumanUnits.bytes(64 << 20) == "64MiB")
        #expect(HumanUnits.bytes(3 << 30 + 1 << 29) == "3.5GiB")
        #expect(HumanUnits.rate(bytesPerSecond: 12 << 20) == "12MiB/s")
        #expect(HumanUnits.duration(milliseconds: 350) == "350ms")
        #expect(HumanUnits.duration(milliseconds: 1250) == "1.2s")
        #expect(HumanUnits.duration(milliseconds: 42_000) == "42s")
        #expect(HumanUnits.duration(seconds: 125) == "2m05s")
        #expect(HumanUnits.duration(seconds: 3720) == "1h02m")
        #expect(HumanUnits.duration(seconds: 3 * 86400 + 4 * 3600) == "3d04h")
    }

    /// `consistent_as_of`: a Consistent or Outdated copy says what point it holds (the
    /// secondary's own, the primary's view of its peer); an Inconsistent one says nothing of it.
    @Test func aConsistentCopyThatLagsNamesThePointItsImageHolds() {
        var primary = Self.healthyPrimary
        primary["replication_state"] = .string("SyncSource")
        primary["peer_disk_state"] = .string("Consistent")
        primary["peer_consistent_as_of"] = .object(["session": .string("123"), "epoch": .int(45)])
        let lines = StatusReport.problems(primary)
        #expect(lines.contains("the peer's image holds session 123 through epoch 45"), "\(lines)")
        var secondary = primary
        secondary["role"] = .string("secondary")
        secondary["disk_state"] = .string("Outdated")
        secondary["consistent_as_of"] = .object(["session": .string("7"), "whole_session": .bool(true)])
        #expect(StatusReport.problems(secondary).contains("this copy's image holds all of session 7"))
        secondary["disk_state"] = .string("Inconsistent")
        #expect(!StatusReport.problems(secondary).contains { $0.contains("image holds") })
    }

    /// Between cycles a periodic primary is Ahead with no link on purpose: the report says when
    /// the secondary catches up, not that the peer is lost or needs a resync.
    @Test func aPeriodicPrimaryBetweenCyclesIsExplainedByItsSchedule() {
        var fields = Self.healthyPrimary
        fields["connection_state"] = .string("Connecting")
        fields["peer_disk_state"] = .string("Outdated")
        fields["replication_state"] = .string("Ahead")
        fields["periodic"] = .object([
            "cycle_running": .bool(false), "next_cycle_in_ms": .int(42_000),
            "last_cycle_bytes": .int(256 << 10), "last_cycle_duration_ms": .int(350),
        ])
        let reasons = StatusReport.problems(fields)
        #expect(reasons == ["periodic: between cycles, the secondary lacks what was written since the last one; "
            + "next cycle in 42s (last: 256KiB in 350ms)"], "\(reasons)")
        fields["replication_state"] = .string("SyncSource")
        fields["periodic"] = .object(["cycle_running": .bool(true), "next_cycle_in_ms": .int(0)])
        #expect(StatusReport.problems(fields).contains { $0.hasPrefix("peer not connected") }, "a cycle that cannot connect is a problem")
    }

    @Test func aHealthyPairIsOneTableRowAndNoReasons() {
        let text = StatusReport.render([Self.healthyPrimary])
        #expect(text == """
            NAME  ROLE     CONNECTION  DISK      PEER-DISK  REPLICATION  OUT-OF-SYNC  LAG     RPO
            r0    primary  Connected   UpToDate  UpToDate   Established  0B           1.5KiB  350ms
            """)
        #expect(StatusReport.problems(Self.healthyPrimary).isEmpty)
    }

    @Test func aLostPeerIsExplainedWithItsLastError() {
        var fields = Self.healthyPrimary
        fields["connection_state"] = .string("Connecting")
        fields["replication_state"] = .string("Off")
        fields["last_error"] = .string("connect to 10.0.0.2:7788: Connection refused")
        #expect(StatusReport.problems(fields) == ["peer not connected: connect to 10.0.0.2:7788: Connection refused"])
        fields["last_error"] = nil
        #expect(StatusReport.problems(fields) == ["peer not connected (Connecting)"])
    }

    @Test func aRunningCopyShowsItsProgressRateAndETA() {
        var fields = Self.healthyPrimary
        fields["peer_disk_state"] = .string("Inconsistent")
        fields["replication_state"] = .string("SyncSource")
        fields["resync_progress"] = .double(0.42)
        fields["out_of_sync_bytes"] = .int(58 << 20)
        fields["resync_rate_bytes_per_second"] = .int(10 << 20)
        fields["resync_eta_seconds"] = .int(6)
        #expect(StatusReport.problems(fields) == ["secondary is Inconsistent: full copy 42% done"])
        #expect(StatusReport.progress(fields) == "sync [########............] 42.0%  10MiB/s  ETA 6s")
        // Without the daemon's rate, a rate measured between two refreshes gives the ETA.
        fields["resync_rate_bytes_per_second"] = .int(0)
        fields["resync_eta_seconds"] = nil
        #expect(StatusReport.progress(fields, measuredRate: 29 << 20) == "sync [########............] 42.0%  29MiB/s  ETA 2s")
        #expect(StatusReport.progress(fields) == "sync [########............] 42.0%  rate -  ETA -")
        let lines = StatusReport.render([fields]).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(Array(lines.suffix(3)) == ["", "r0: secondary is Inconsistent: full copy 42% done",
                                           "r0: sync [########............] 42.0%  rate -  ETA -"])
        // A capped copy names its cap; 0 (the dynamic controller) names none.
        fields["resync_rate"] = .int(8 << 20)
        #expect(StatusReport.progress(fields) == "sync [########............] 42.0%  rate -  ETA -  cap 8MiB/s")
        fields["resync_rate_bytes_per_second"] = .int(8 << 20)
        #expect(StatusReport.progress(fields) == "sync [########............] 42.0%  8MiB/s  ETA 8s  cap 8MiB/s")
        fields["resync_rate"] = .int(0)
        #expect(StatusReport.progress(fields) == "sync [########............] 42.0%  8MiB/s  ETA 8s")
    }

    @Test func aPausedCopySaysItWaitsForASlot() {
        var fields = Self.healthyPrimary
        fields["peer_disk_state"] = .string("Inconsistent")
        fields["replication_state"] = .string("PausedSync")
        fields["resync_progress"] = .double(0)
        #expect(StatusReport.problems(fields) == [
            "secondary is Inconsistent: full copy 0% done",
            "resync paused: the daemon's resync_concurrency_max copies run; this one waits for a slot",
        ])
    }

    @Test func everyUnhealthyStateHasAReasonAndUnknownWordsPassThrough() {
        let secondary: [String: JSONValue] = [
            "name": .string("r1"), "role": .string("secondary"), "enabled": .bool(true),
            "connection_state": .string("Connected"), "disk_state": .string("Inconsistent"),
            "replication_state": .string("SyncTarget"),
        ]
        #expect(StatusReport.problems(secondary) == ["this copy is Inconsistent: receiving the full copy from the primary"])
        var failed = secondary
        failed["disk_state"] = .string("Failed")
        failed["disk_error"] = .string("write EIO at offset 4096")
        failed["replication_state"] = .string("Established")
        #expect(StatusReport.problems(failed) == ["disk failed: write EIO at offset 4096"])
        let metadata: [String: JSONValue] = [
            "name": .string("r0"), "role": .string("secondary"), "disk_state": .string("Failed"),
            "disk_error": .object(["operation": .string("metadata open"), "errno": .int(2)]),
            "last_error": .string("metadata /var/lib/tandem/r0.md: metadata file missing"),
        ]
        #expect(StatusReport.problems(metadata).first?.contains("'tandemctl create-md r0 --force'") == true)
        #expect(StatusReport.problems(metadata).first?.contains("metadata file missing") == true)
        var outdated = secondary
        outdated["disk_state"] = .string("Outdated")
        #expect(StatusReport.problems(outdated) == ["this copy is Outdated: the peer holds newer data"])
        var strange = secondary
        strange["disk_state"] = .string("Diskless")
        strange["connection_state"] = .string("WFReportParams")
        #expect(StatusReport.problems(strange) == ["peer not connected (WFReportParams)", "disk state Diskless"])
        #expect(StatusReport.table([strange]).contains("WFReportParams"))
        var disabled = secondary
        disabled["enabled"] = .bool(false)
        disabled["disk_state"] = .string("UpToDate")
        #expect(StatusReport.problems(disabled) == ["replication disabled: 'tandemctl enable r1' starts it"])
        var blocked = Self.healthyPrimary
        blocked["replication_state"] = .string("Blocked")
        blocked["unconfirmed_bytes"] = .int(256 << 20)
        #expect(StatusReport.problems(blocked) == [
            "writes blocked: the replication buffer is full (256MiB not yet confirmed by the peer)",
        ])
    }

    @Test func anEventIsOneLineWithItsUTCTime() {
        let event: [String: JSONValue] = [
            "event": .string("peer-error"), "resource": .string("r0"), "seq": .int(7), "time_ms": .int(1_795_982_541_583),
            "message": .string("TLS handshake failed"), "code": .string("tls"),
        ]
        #expect(EventText.line(event) == #"2026-11-29T20:02:21.583Z r0 peer-error code=tls message="TLS handshake failed""#)
        #expect(EventText.line(["event": .string("initial-done"), "time_ms": .int(0)]) == "1970-01-01T00:00:00.000Z - initial-done")
        #expect(EventText.line(["event": .string("heartbeat")]) == nil)
        #expect(EventText.line(["event": .string("subscribed")]) == nil)
    }
}

@Suite struct TraceReportTests {
    @Test func phasesPrintAsRowsInTheOrderGivenWithQuantilesBelowOneMicrosecondAsAnUpperBound() {
        let phase: [String: JSONValue] = [
            "op": .string("write"), "phase": .string("admit"), "count": .int(12), "mean_us": .double(0.3),
            "p50_us": .double(0.5), "p90_us": .double(1.4), "p99_us": .double(250.4), "turns_mean": .double(0),
            "turns_p50": .int(0), "turns_p99": .int(2),
        ]
        let text = TraceReport.render(["name": .string("r0"), "enabled": .bool(true), "age_ms": .int(2500),
                                       "phases": .array([.object(phase)])])
        let lines = text.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(lines[0] == ["trace", "r0:", "on,", "counting", "for", "2.5s"])
        #expect(lines[1].first == "op" && lines[2] == ["write", "admit", "12", "0.3", "≤1", "1.4", "250", "0.0", "0/2"])
        let off = TraceReport.render(["name": .string("r0"), "enabled": .bool(false), "age_ms": .int(0), "phases": .array([])])
        #expect(off.contains("nothing counted"))
    }
}

extension StatusReportTests {
    @Test func aSplitBrainSaysWhatEachSideChangedAndHowToEndIt() {
        var fields = Self.healthyPrimary
        fields["connection_state"] = .string("StandAlone")
        fields["split_brain"] = .bool(true)
        fields["split_brain_detail"] = .object([
            "local_changed_bytes": .int(40960), "peer_changed_bytes": .int(1 << 20),
        ])
        let reasons = StatusReport.problems(fields)
        #expect(reasons.contains("split brain: both nodes wrote while apart (40KiB here, 1MiB on the peer); end it with "
            + "'tandemctl resolve r0 --discard local' on the node whose changes go, then '--discard peer' on the other"),
            "\(reasons)")
        var demoted = Self.healthyPrimary
        demoted["demoted_by_promotion"] = .string("the peer is primary with promotion number 1")
        #expect(StatusReport.problems(demoted).contains(
            "takes no writes: the peer is primary with promotion number 1; 'tandemctl resolve r0 --discard local' makes it the peer's secondary"))
    }
}
