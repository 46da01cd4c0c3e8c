// Resource's part of a crash restart's digest compare across a second crash and a failed
// flush (docs/replication.md, *Checksum resync of the extents*). The plan is TandemCore's
// (ChecksumResync.plan(…resuming:)); here the record of the compare is kept and read
// (CrashCompareRecordFile), and a failed flush before the compare fails the disk.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import TandemControl
import TandemCore

extension Resource {
    var crashCompareRecordPath: String { CrashCompareRecordFile.path(stateDir: context.config.stateDir, name: spec.name) }

    /// At a crash restart: the regions of the compare this crash interrupted (nil: none ran,
    /// or its record cannot be proven — then what it had left is copied whole, and the log
    /// and an event say why).
    func loadCrashCompareRecord(newest: UInt64, geometry: DirtyBitmap) -> DirtyBitmap? {
        do throws(ResourceStoreError) {
            return try CrashCompareRecordFile.load(from: crashCompareRecordPath, newest: newest, geometry: geometry)
        } catch {
            logger.error("the record of the interrupted compare cannot be proven: what it had left is copied whole",
                         metadata: ["error": "\(error)"])
            context.events.publish(resource: spec.name, "checksum-resync-record-unreadable", ["message": .string("\(error)")])
            return nil
        }
    }

    /// The compare's regions, durable before the session that compares them starts. A write
    /// that fails costs a second crash a copy of them, nothing more: it is logged.
    func keepCrashCompareRecord(_ regions: [ChecksumRegion], transaction: UInt64, geometry: DirtyBitmap) {
        do throws(ResourceStoreError) {
            try CrashCompareRecordFile.write(regions, transaction: transaction, geometry: geometry, to: crashCompareRecordPath)
        } catch {
            logger.warning("the compare's record could not be kept: a crash before it ends copies its regions whole",
                           metadata: ["error": "\(error)"])
            removeCrashCompareRecord()
        }
    }

    func removeCrashCompareRecord() { CrashCompareRecordFile.remove(crashCompareRecordPath, logger: logger) }

    /// The flush before the compare failed. On Linux a failed fdatasync may have dropped dirty
    /// pages (marked clean, never written): this copy may then not hold what it acknowledged,
    /// and a second flush would succeed without bringing them back. So the disk fails, as at
    /// any failed flush (disk_state Failed, `disk_error`, event `disk-failed`): replication does
    /// not start from it. No compare is planned; should the operator re-enable this disk, its
    /// extents are copied whole, as they read.
    /// The daemon's start does not re-enable a disk whose flush failed as it opened (an
    /// `enable` would clear the failure: that is the operator's word that the disk is fixed).
    /// A flush is the only I/O on the volume at open: a failure named so is this one.
    func refuseEnableAfterFailedCompareFlush() throws(ControlError) {
        guard let failure = health.failure, failure.operation == "flush" else { return }
        throw ControlError(.ioError, "this node's disk failed: \(failure.operation): \(failure.message)")
    }

    func failDiskAtCompareFlush(_ code: Int32) {
        let reason = String(cString: strerror(code))
        health.record("flush", errno: code, detail:
            "flushing the volume before the crash restart's compare failed: \(reason); this copy may not hold what it acknowledged")
    }
}
