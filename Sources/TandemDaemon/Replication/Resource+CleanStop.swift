// A secondary's clean stop (flag `secondary-clean-stop`, docs/replication.md *Disk states and
// sessions*): when its replicator stops with nothing in flight and an epoch prefix applied
// (`SecondaryNode.stopLeavesConsistentCopy`, TandemCore's decision), the volume is flushed
// and the flag written after the flush; the next start reads it (its copy is Consistent, not
// Inconsistent, until its first write) and clears it durably before the node can write. A
// crash in between therefore never finds the flag. Loop thread only.
import Glibc
import TandemCore

extension Resource {
    /// At a secondary replicator's start: whether the last run stopped cleanly. The flag is
    /// cleared (durably) before the replicator exists, so that no write of this run can
    /// reach the volume while it still says "clean".
    func takeSecondaryCleanStop() -> Bool {
        guard metadata.latest.flags.contains(.secondaryCleanStop) else { return false }
        return updateNode { $0.set(.secondaryCleanStop, false) }
    }

    /// After a secondary replicator stopped: flush the volume, then record the clean stop.
    /// A failed flush records nothing (the copy counts as restarted, as after a crash) and
    /// fails the disk, as any failed flush does.
    func recordSecondaryCleanStop(_ node: SecondaryNode) {
        guard spec.role == .secondary, node.stopLeavesConsistentCopy, !health.isFailed else { return }
        while fdatasync(volume.fd) != 0 {
            guard errno == EINTR else {
                let code = errno
                logger.error("flushing the volume at the replicator's stop failed", metadata: ["errno": "\(code)"])
                health.record("flush", errno: code)
                return
            }
        }
        _ = updateNode { $0.set(.secondaryCleanStop, true) }
    }
}
