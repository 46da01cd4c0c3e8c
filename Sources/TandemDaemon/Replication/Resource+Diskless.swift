// Resource's side of a diskless primary (PrimaryNode+Diskless): the record's flag that this
// disk lacks writes its peer holds, written before the first write goes through the peer and
// cleared once the disk is resynced from it; the disk state status reports meanwhile. The
// metadata file lives on another device than the volume by default; internal metadata lives
// on the failed disk itself, so nothing durable can say it: writes are refused (EIO), and
// status `diskless.writes_refused_because` says why. Loop thread only.
import TandemControl
import TandemCore

extension Resource {
    func wireDiskless(_ replicator: PrimaryReplicator) {
        replicator.onRecordLocalLacks = { [unowned self] set in recordLocalLacksWrites(set) }
    }

    /// Writes the flag durably; nil when it is, else why it cannot be.
    private func recordLocalLacksWrites(_ set: Bool) -> String? {
        if set && metadata.latest.placement == .internal {
            return "the metadata is internal: it lives on the failed disk"
        }
        guard updateNode({ $0.set(.localLacksWrites, set) }) else {
            return "the metadata write failed (\(health.failure.map { "\($0.operation): \($0.message)" } ?? "unknown"))"
        }
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
