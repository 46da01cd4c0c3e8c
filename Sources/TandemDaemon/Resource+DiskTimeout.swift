// Resource+DiskTimeout: puts the resource's `disk_timeout_ms` on its volume and its metadata
// file, so that an I/O of either that hangs longer fails the resource's disk (DiskHealth)
// the way an error result does (docs/replication.md "Disk failures"). The ages are kept and
// checked by the event loop (VolumeIOWatch, DiskTimeout). Loop thread only.
import TandemIO

extension Resource {
    /// Called at open, when the metadata file is reopened, and by `set disk_timeout_ms`: I/Os
    /// submitted from now on are watched under the new bound (0: not at all), and those in
    /// flight are judged by it at the next tick.
    func applyDiskTimeout() {
        let timeoutNs = UInt64(spec.diskTimeoutMs) * 1_000_000
        let health = self.health
        volume.ioTimeoutNs = timeoutNs
        volume.onIOOverdue = { operation, ageNs, boundNs in
            health.timedOut(operation.name, ageNs: ageNs, timeoutNs: boundNs)
        }
        metadata.watchIO(timeoutNs: timeoutNs) { operation, ageNs, boundNs in
            health.timedOut("metadata \(operation.name)", ageNs: ageNs, timeoutNs: boundNs)
        }
    }
}
