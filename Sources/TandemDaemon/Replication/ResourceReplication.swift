// The replication side of a Resource: enable/disable, planned and forced failover, demote,
// and role changes. Loop thread only; every transition ends in `done` with nil or an error.
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO

extension Resource {
    private var enabledMarker: String { "\(context.config.stateDir)/\(spec.name).enabled" }
    private var metadataPath: String { "\(context.config.stateDir)/\(spec.name).meta" }
    /// Present while the peer's copy lacks writes because its disk failed: the next enable
    /// of this primary copies the whole volume.
    private var peerFailedMarker: String { "\(context.config.stateDir)/\(spec.name).peer-failed" }

    /// What a stopped secondary's metadata says about its volume.
    var secondaryDiskStateAtRest: String {
        guard let metadata = try? ReplicationMetadata(path: metadataPath, loop: context.loop, logger: logger) else {
            return "Unknown"
        }
        defer { metadata.close() }
        return metadata.record.synced || spec.initialSync == .none ? "UpToDate" : "Inconsistent"
    }

    func enable(initialSync: InitialSync? = nil) throws(ControlError) {
        guard spec.role != .standalone else {
            throw ControlError(.wrongState, "resource '\(spec.name)' is standalone: it has no peer to replicate to")
        }
        guard !enabled else { throw ControlError(.wrongState, "resource '\(spec.name)' is already enabled") }
        guard !transitioning else { throw ControlError(.busy, "resource '\(spec.name)' is changing state") }
        // Enabling is how the operator says the disk is fixed: it is used again.
        health.clear()
        backend.refusesMutations = false
        peerDiskFailure = nil
        let peerLacksWrites = spec.role == .primary && access(peerFailedMarker, F_OK) == 0
        try startReplication(initialSync: peerLacksWrites ? .full : initialSync ?? spec.initialSync)
        enabled = true
        writeMarker(true)
        context.events.publish(resource: spec.name, "enabled", ["role": .string(spec.role.rawValue)])
    }

    private func startReplication(initialSync: InitialSync) throws(ControlError) {
        switch spec.role {
        case .primary:
            _ = try context.clientConnection(peerName: spec.peer!.name)  // fail early on bad TLS config
            let replicator = PrimaryReplicator(spec: spec, volume: volume, buffers: backend.buffers, context: context,
                                               initialSync: initialSync, counters: counters, health: health,
                                               logger: logger)
            replicator.onFailoverRequested = { [unowned self] in self.plannedDemote() }
            replicator.onPeerDiskFailed = { [unowned self] reason in self.peerDiskFailed(reason) }
            replicator.onPeerSynced = { [unowned self] in unlink(self.peerFailedMarker) }
            primary = replicator
            backend.readOnly = false
            backend.sink = replicator
            replicator.enable()
        case .secondary:
            _ = try context.serverConnection()
            secondary = try SecondaryReplicator(spec: spec, volume: volume, context: context, counters: counters,
                                                health: health, logger: logger, handedOver: demotedInProcess)
            demotedInProcess = false
            backend.readOnly = true
        case .standalone:
            preconditionFailure("standalone resources do not replicate")
        }
    }

    func disable(_ done: @escaping (ControlError?) -> Void) {
        guard enabled else { return done(ControlError(.wrongState, "resource '\(spec.name)' is not enabled")) }
        guard !transitioning else { return done(ControlError(.busy, "resource '\(spec.name)' is changing state")) }
        enabled = false
        writeMarker(false)
        transitioning = true
        stopReplication { [self] in
            transitioning = false
            context.events.publish(resource: spec.name, "disabled", [:])
            done(nil)
        }
    }

    /// Stops the replicator; a primary keeps serving its volume locally.
    func stopReplication(_ done: @escaping () -> Void) {
        backend.sink = nil
        if let primary {
            self.primary = nil
            primary.disable()
            return primary.stop(done)
        }
        if let secondary {
            self.secondary = nil
            return secondary.stop(done)
        }
        done()
    }

    // MARK: disk failures (docs/replication.md "Disk failures")

    /// This node's disk failed: it takes no more writes. A secondary also stops replicating
    /// (and refuses its primary with `disk-failed`); a primary keeps its link so that what is
    /// in flight is settled, and answers every later write and flush with EIO.
    func diskFailed() {
        backend.refusesMutations = true
        secondary?.diskFailed()
    }

    /// The secondary's disk failed: detach it and serve alone (DRBD's on-io-error detach on
    /// the peer). Writes waiting for the peer are answered from this node's disk.
    func peerDiskFailed(_ reason: String) {
        guard primary != nil, !transitioning else { return }
        peerDiskFailure = reason
        let fd = open(peerFailedMarker, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        if fd >= 0 { fsync(fd); close(fd) }
        context.events.publish(resource: spec.name, "peer-disk-failed", [
            "peer_disk_state": .string("Failed"), "redundant": .bool(false), "message": .string(reason),
        ])
        transitioning = true
        stopReplication { [self] in transitioning = false }
    }

    // MARK: failover

    func failover(force: Bool, _ done: @escaping (ControlError?) -> Void) {
        guard spec.role == .secondary else {
            return done(ControlError(.wrongState, "resource '\(spec.name)' is \(spec.role.rawValue): failover is run on the secondary"))
        }
        guard !transitioning else { return done(ControlError(.busy, "resource '\(spec.name)' is changing state")) }
        if let failure = health.failure {
            return done(ControlError(.wrongState,
                "this node's disk failed (\(failure.operation): \(failure.message)); it cannot become primary"))
        }
        if force { return promote(reason: "forced failover", done) }
        guard let secondary, secondary.isConnectedToPeer else {
            return done(ControlError(.wrongState,
                "the peer is not connected, so it may hold newer data; use force: true if it is really gone"))
        }
        transitioning = true
        context.events.publish(resource: spec.name, "failover-started", [:])
        secondary.requestFailover { [self] demoted in
            transitioning = false
            guard demoted else {
                return done(ControlError(.wrongState, "the peer went away before it demoted; use force: true if it is gone"))
            }
            promote(reason: "planned failover", done)
        }
    }

    private func promote(reason: String, _ done: @escaping (ControlError?) -> Void) {
        if let secondary, !secondary.machine.isConsistent, reason != "forced failover" {
            return done(ControlError(.wrongState, "this node's volume is not consistent"))
        }
        transitioning = true
        let wasEnabled = enabled
        stopReplication { [self] in
            transitioning = false
            changeRole(to: .primary)
            context.events.publish(resource: spec.name, "promoted", ["reason": .string(reason)])
            enabled = false
            writeMarker(false)
            if wasEnabled && reason == "planned failover" {
                // The old primary is now secondary and holds the same data: no copy needed.
                do throws(ControlError) { try enable(initialSync: InitialSync.none) } catch { return done(error) }
            }
            done(nil)
        }
    }

    /// `demote` from the control socket: drain, then become secondary.
    func demote(_ done: @escaping (ControlError?) -> Void) {
        guard spec.role == .primary else {
            return done(ControlError(.wrongState, "resource '\(spec.name)' is \(spec.role.rawValue), not primary"))
        }
        guard !transitioning else { return done(ControlError(.busy, "resource '\(spec.name)' is changing state")) }
        guard let primary else {
            becomeSecondary(enable: false)
            return done(nil)
        }
        guard primary.isDrained || primary.isConnectedToPeer else {
            return done(ControlError(.wrongState, "writes are waiting for the peer, which is not connected"))
        }
        transitioning = true
        primary.drain { [self] in
            transitioning = false
            primary.sendDemotedAndClose()
            becomeSecondary(enable: enabled)
            done(nil)
        }
    }

    /// The secondary asked for a planned failover.
    private func plannedDemote() {
        demote { [self] error in
            if let error { logger.warning("planned failover refused", metadata: ["error": "\(error.message)"]) }
        }
    }

    private func becomeSecondary(enable wanted: Bool) {
        transitioning = true
        stopReplication { [self] in
            transitioning = false
            changeRole(to: .secondary)
            context.events.publish(resource: spec.name, "demoted", [:])
            enabled = false
            writeMarker(false)
            // The old peer becomes primary and sends everything from now on.
            writeSyncedRecord()
            demotedInProcess = true
            if wanted { try? enable() }
        }
    }

    private func changeRole(to role: ResourceRole) {
        spec.role = role
        if role == .primary { demotedInProcess = false }
        backend.readOnly = role == .secondary
        if role == .secondary { stopServing() } else { startServing() }
        persist?(spec)
        context.events.publish(resource: spec.name, "role", ["role": .string(role.rawValue)])
    }

    /// A demoted primary's volume is the newest there is: record it as synced.
    private func writeSyncedRecord() {
        let metadata: ReplicationMetadata
        do {
            metadata = try ReplicationMetadata(path: metadataPath, loop: context.loop, logger: logger)
        } catch {
            return health.record("metadata open", errno: error.errno)
        }
        var record = metadata.record
        record.synced = true
        record.generation += 1
        metadata.close()
        let code = writeRecordSynchronously(record)
        if code != 0 { health.record("metadata write", errno: code) }
    }

    /// 0, or the errno of the failed open, write or fsync.
    private func writeRecordSynchronously(_ record: ReplicationRecord) -> Int32 {
        // Rare (role changes): a blocking write keeps the role change simple.
        let fd = open(metadataPath, O_RDWR)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: ReplicationMetadata.slotBytes)
        buffer.withUnsafeMutableBytes { ReplicationMetadata.encode(record, into: $0.baseAddress!) }
        let written = buffer.withUnsafeBytes {
            pwrite(fd, $0.baseAddress, $0.count, off_t(Int(record.generation % 2) * ReplicationMetadata.slotBytes))
        }
        guard written == ReplicationMetadata.slotBytes else { return written < 0 ? errno : EIO }
        return fsync(fd) == 0 ? 0 : errno
    }

    func writeMarker(_ on: Bool) {
        if on {
            let fd = open(enabledMarker, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            if fd >= 0 { fsync(fd); close(fd) }
        } else {
            unlink(enabledMarker)
        }
    }

    var markerSaysEnabled: Bool { access(enabledMarker, F_OK) == 0 }

    func removeReplicationFiles() {
        unlink(enabledMarker)
        unlink(peerFailedMarker)
        unlink(metadataPath)
    }

    // MARK: incoming connections

    func validateIncoming(_ hello: WireHello, link: PeerLink) -> PeerLinkVerdict {
        guard spec.role == .secondary else {
            return .refuse(.roleConflict, "resource '\(spec.name)' is \(spec.role.rawValue) on this node")
        }
        guard let secondary, enabled else { return .refuse(.busy, "resource '\(spec.name)' is not enabled here") }
        return secondary.validate(hello, link: link)
    }
}
