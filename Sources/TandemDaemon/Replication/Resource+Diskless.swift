// Resource's side of a diskless primary (PrimaryNode+Diskless): the record's flag that this
// disk lacks writes its peer holds, written before the first write goes through the peer and
// cleared once the disk is resynced from it; the disk state status reports meanwhile. The
// metadata file lives on another device than the volume by default; internal metadata lives
// on the failed disk itself, so nothing durable can say it: writes are refused (EIO), and
// status `diskless.writes_refused_because` says why. Loop thread only.
import Glibc
import TandemControl
import TandemCore
import TandemNBD

extension Resource {
    func wireDiskless(_ replicator: PrimaryReplicator) {
        replicator.onRecordLocalLacks = { [unowned self] set in recordLocalLacksWrites(set) }
        replicator.onPersistLackingRegions = { [unowned self] runs, blockBytes, fresh in
            persistLackingRegions(runs, blockBytes: blockBytes, fresh: fresh)
        }
    }

    /// Writes the flag durably; nil when it is, else why it cannot be.
    private func recordLocalLacksWrites(_ set: Bool) -> String? {
        if set && metadata.latest.placement == .internal {
            return "the metadata is internal: it lives on the failed disk"
        }
        // Cleared: the regions' mark goes with the flag (Resource+DisklessRegions).
        guard updateNode({
            $0.set(.localLacksWrites, set)
            if !set { $0.flags.remove(.localLackingRegions) }
        }) else {
            return "the metadata write failed (\(health.failure.map { "\($0.operation): \($0.message)" } ?? "unknown"))"
        }
        if !set { lackingRecord = nil }
        logger.notice(set ? "diskless: the record says this disk lacks writes its peer holds"
                          : "diskless: the record says this disk holds every write again")
        return nil
    }

    /// A disk that lacks writes and did not fail (a restart, a re-enable) is `Inconsistent`
    /// until it is resynced from the peer; the pair is not redundant meanwhile.
    func mergeDisklessDiskState(into fields: inout [String: JSONValue]) {
        guard !health.isFailed, let primary, primary.node.localLacksWrites else { return }
        fields["disk_state"] = .string(DiskState.inconsistent.rawValue)
        fields["redundant"] = .bool(false)
    }
}

/// The export's reads while no replicator runs and the record says this disk lacks writes:
/// every one fails with EIO (the disk would answer with older content).
final class LackingDiskReadRefuser: NBDReadRouter {
    func route(_ read: NBDPendingRead) -> Bool {
        read.fail(errno: EIO)
        return true
    }

    func localReadEnded() {}
}

extension Resource {
    /// The replicator stopped: what its disk lacked stays known to the next one of this process
    /// (a restart pulls the whole volume), and the export serves nothing alone meanwhile.
    func keepLackingAtStop(_ replicator: PrimaryReplicator) {
        lackingAtStop = replicator.node.localLacksWrites ? replicator.node.localDisk.lacking : nil
        refuseLackingDiskWhileStopped()
    }

    func takeLackingAtStop() -> DirtyBitmap? {
        defer { lackingAtStop = nil }
        return lackingAtStop
    }

    /// No replicator runs and the record says this disk lacks writes: reads fail, mutations are
    /// refused (EIO) until an enable resyncs it from the peer.
    func refuseLackingDiskWhileStopped() {
        guard spec.role == .primary, primary == nil, metadata.latest.flags.contains(.localLacksWrites) else { return }
        backend.refusesMutations = true
        backend.readRouter = LackingDiskReadRefuser()
    }
}
