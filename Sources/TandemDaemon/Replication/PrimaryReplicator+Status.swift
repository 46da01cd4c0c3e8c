// PrimaryReplicator's status fields and peer-disk-state events, read from the node. The disk
// states themselves are decided by `ReportedDiskStates` (Resource.status).
import TandemControl
import TandemCore

extension PrimaryReplicator {
    var session: UInt64 { node.session }
    var basis: SessionBasis { node.basis }
    var enabled: Bool { node.enabled }
    var peerSynced: Bool { node.peerSynced }

    /// Status fields other than the disk states (`peerView`).
    var statusFields: [String: JSONValue] {
        let now = ReplicationContext.nowNs()
        let primary = node.primary
        var fields: [String: JSONValue] = [:]
        fields["connection_state"] = .string(node.connectionState.rawValue)
        fields["replication_state"] = .string(node.streamState.rawValue)
        fields["lag_bytes"] = .int(Int64(clamping: node.lagBytes))
        fields["rpo_ms"] = .int(Int64(node.rpoAgeNs(nowNs: now) / 1_000_000))
        fields["unconfirmed_bytes"] = .int(Int64(primary.unconfirmedBytes))
        fields["writes_blocked"] = .bool(node.isBlocked)
        fields["out_of_sync_bytes"] = .int(Int64(node.outOfSyncBytes))
        // 1 when no copy is due (nothing is out of sync), not 0: "nothing done" would read as
        // a copy that has not started.
        let total = node.copiedBytes + node.outOfSyncBytes
        let copied = node.outOfSyncBytes == 0 || total == 0
        fields["resync_progress"] = .double(copied ? 1 : Double(node.copiedBytes) / Double(total))
        let rate = node.copyRateBytesPerSecond
        fields["resync_rate_bytes_per_second"] = .int(Int64(clamping: rate))
        fields["resync_rate_target_bytes_per_second"] = .int(Int64(clamping: node.peerSynced ? 0 : node.resyncTargetBytesPerSecond))
        if rate > 0, !node.peerSynced {
            fields["resync_eta_seconds"] = .int(Int64(clamping: (node.outOfSyncBytes + rate - 1) / rate))
        }
        fields["retained_writes"] = .int(Int64(retained.count))
        if let group = context.groups.primaryStatus(of: spec.group) { fields["group_epochs"] = group }
        fields["spilled_writes"] = .int(Int64(clamping: retained.spilledWrites))
        // The activity log: 0 extents when there is none (al_extents 0).
        fields["activity_log_extents"] = .int(Int64(node.activityLog?.residentCount ?? 0))
        fields["activity_log_writes"] = .int(Int64(clamping: counters.activityLogWrites))
        fields["activity_log_held_writes"] = .int(Int64(clamping: node.activityLogHeldWrites))
        fields["activity_log_volume_flushes"] = .int(Int64(clamping: counters.activityLogVolumeFlushes))
        fields["activity_log_write_latency"] = Self.activityLogLatencyFields(counters.activityLogLatency.snapshot)
        fields["activity_log_hold_latency"] = Self.activityLogLatencyFields(counters.activityLogHoldLatency.snapshot)
        fields["activity_log_overlapping_writes"] = .int(Int64(clamping: counters.activityLogOverlappingWrites))
        fields["activity_log_blocked_admissions"] = .int(Int64(clamping: node.activityLogBlockedAdmissions))
        fields["enabled"] = .bool(node.enabled)
        fields["session_start"] = .string(basis.word)
        fields["session_start_reason"] = .string(sessionStartReason)
        if let lastError { fields["last_error"] = .string(lastError) }
        // A rolling upgrade's check: the protocol the connected peer's Hello named.
        if link?.isEstablished == true { fields["peer_protocol_version"] = .int(Int64(peerHelloVersion)) }
        if let verify = node.verifyProgress { fields["verify"] = Self.verifyFields(verify) }
        // A crash restart's compare of its activity-log extents (PrimaryNode+Checksum).
        if let checksum = node.checksumResyncProgress { fields["checksum_resync"] = Self.checksumResyncFields(checksum) }
        profileStatusFields(into: &fields, nowNs: now)
        if let periodic = periodicStatus { fields["periodic"] = periodic }
        readStatusFields(into: &fields)
        // The peer's image as this node knows it (stagefix: consistent_as_of).
        fields["peer_consistent_as_of"] = ConsistentPoint.statusValue(node.peerConsistentAsOf)
        return fields
    }

    var peerDiskState: DiskState { node.peerDiskState }

    /// What the node says of the peer's copy; the resource's status reports it through
    /// `ReportedDiskStates`.
    var peerView: PrimaryPeerView {
        PrimaryPeerView(peerDiskState: node.peerDiskState, peerReady: node.isPeerReady, peerSynced: node.peerSynced)
    }

    /// One event per change of the peer's disk state as this node sees it (changes between
    /// UpToDate and Consistent coalesced, see `DiskState.publishesNow`; `tick` catches up).
    func publishPeerDiskState() {
        let state = peekNode { $0.peerDiskState }  // once per event: not copied (NodeReads)
        peerStateAnnouncer.announce(state, resource: resource, events: context.events)
        // The peer holds every acknowledged write: the generations stop tracking (B := 0).
        let upToDate = state == .upToDate
        if upToDate && !peerWasUpToDate { onPeerUpToDate?() }
        peerWasUpToDate = upToDate
    }
}
